// Command orders takes orders: POST /orders {"item": "apple", "qty": 2} asks inventory (a call to another
// module) whether the stock suffices, keeps the order in the kv namespace "shop" that it shares with
// inventory, and publishes order.placed; inventory reserves the stock and calls back setStatus. GET
// /orders/{id} shows the order, "placed" until inventory reserved it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/events"
	"github.com/kouple/kouple/sdk/kv"
)

// Order is what orders and inventory share in kv:shop under order/ID.
type Order struct {
	ID     string `json:"id"`
	Item   string `json:"item"`
	Qty    int    `json:"qty"`
	Status string `json:"status"` // placed, reserved, rejected
}

var shop = kv.Shared("shop")

func load(ctx context.Context, id string) (Order, bool, error) {
	var o Order
	b, found, err := shop.Get(ctx, "order/"+id)
	if err != nil || !found {
		return o, found, err
	}
	return o, true, json.Unmarshal(b, &o)
}

func save(ctx context.Context, o Order) error {
	b, _ := json.Marshal(o)
	return shop.Put(ctx, "order/"+o.ID, b)
}

func place(w http.ResponseWriter, r *http.Request) {
	var o Order
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.Item == "" || o.Qty <= 0 {
		http.Error(w, `give {"item": NAME, "qty": N > 0}`, http.StatusBadRequest)
		return
	}
	var available int
	if err := sdk.Call(r.Context(), "inventory", "available", map[string]string{"item": o.Item}, &available); err != nil {
		http.Error(w, "asking inventory: "+err.Error(), http.StatusBadGateway)
		return
	}
	if available < o.Qty {
		http.Error(w, fmt.Sprintf("only %d %s in stock", available, o.Item), http.StatusConflict)
		return
	}
	id := make([]byte, 8)
	rand.Read(id)
	o.ID, o.Status = hex.EncodeToString(id), "placed"
	if err := save(r.Context(), o); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := events.Publish(r.Context(), "order.placed", map[string]string{"id": o.ID}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(o)
}

func show(w http.ResponseWriter, r *http.Request) {
	o, found, err := load(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case !found:
		http.Error(w, "no such order", http.StatusNotFound)
	default:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(o)
	}
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", place)
	mux.HandleFunc("GET /{id}", show)
	sdk.Handle(mux)
	// inventory calls this once it handled an order.
	sdk.Export("setStatus", func(ctx context.Context, in struct{ ID, Status string }) (Order, error) {
		o, found, err := load(ctx, in.ID)
		if err != nil || !found {
			return o, fmt.Errorf("order %q: not found (%v)", in.ID, err)
		}
		o.Status = in.Status
		return o, save(ctx, o)
	})
}

func main() { sdk.Serve() }
