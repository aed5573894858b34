// Command inventory keeps the stock: PUT /inventory/{item} with a number sets it, GET /inventory/{item}
// reads it. orders calls its method available; on each order.placed event it reserves the order's quantity
// (once per event id: delivery is at least once) and calls orders' setStatus.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/events"
	"github.com/kouple/kouple/sdk/kv"
)

func stock(ctx context.Context, item string) (int, error) {
	v, _, err := kv.Get(ctx, "stock/"+item)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	return strconv.Atoi(string(v))
}

func setStock(ctx context.Context, item string, n int) error {
	return kv.Put(ctx, "stock/"+item, []byte(strconv.Itoa(n)))
}

// reserve handles an order.placed event.
func reserve(ctx context.Context, e events.Event) error {
	if _, seen, err := kv.Get(ctx, "event/"+e.ID); err != nil || seen {
		return err // a redelivery of an event already handled
	}
	var placed struct{ ID string }
	if err := e.Decode(&placed); err != nil {
		return err
	}
	b, found, err := kv.Shared("shop").Get(ctx, "order/"+placed.ID)
	if err != nil || !found {
		return fmt.Errorf("order %s: not in kv:shop (%v)", placed.ID, err)
	}
	var order struct {
		Item string
		Qty  int
	}
	if err := json.Unmarshal(b, &order); err != nil {
		return err
	}
	have, err := stock(ctx, order.Item)
	if err != nil {
		return err
	}
	status := "rejected"
	if have >= order.Qty {
		if err := setStock(ctx, order.Item, have-order.Qty); err != nil {
			return err
		}
		status = "reserved"
	}
	if err := kv.Put(ctx, "event/"+e.ID, []byte(placed.ID)); err != nil {
		return err
	}
	return sdk.Call(ctx, "orders", "setStatus", map[string]string{"ID": placed.ID, "Status": status}, nil)
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{item}", func(w http.ResponseWriter, r *http.Request) {
		n, err := stock(r.Context(), r.PathValue("item"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("PUT /{item}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 32))
		n, err := strconv.Atoi(strings.TrimSpace(string(body)))
		if err != nil || n < 0 {
			http.Error(w, "give the stock as a number", http.StatusBadRequest)
			return
		}
		if err := setStock(r.Context(), r.PathValue("item"), n); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, n)
	})
	sdk.Handle(mux)
	sdk.Export("available", func(ctx context.Context, in struct{ Item string }) (int, error) {
		return stock(ctx, in.Item)
	})
	events.Handle("order.placed", reserve)
}

func main() { sdk.Serve() }
