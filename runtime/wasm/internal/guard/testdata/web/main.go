// Command web exercises a large slice of the standard library: an
// net/http handler served through httptest.NewRecorder, encoding/json and
// log/slog. Usage: web [rounds].
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
)

type order struct {
	ID    int               `json:"id"`
	Items []string          `json:"items"`
	Total float64           `json:"total"`
	Tags  map[string]string `json:"tags,omitempty"`
}

func handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var o order
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			log.Warn("bad order", "err", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.Total *= 1.25
		o.Items = append(o.Items, "receipt")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(o)
	})
	return mux
}

func main() {
	rounds := 1
	if len(os.Args) > 1 {
		rounds, _ = strconv.Atoi(os.Args[1])
	}
	// Drop the time so that the output is reproducible.
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	h := handler(log)
	var sum float64
	for i := range rounds {
		body, _ := json.Marshal(order{ID: i, Items: []string{"a", "b", strings.Repeat("c", i%7)},
			Total: float64(i) / 3, Tags: map[string]string{"k": strconv.Itoa(i)}})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/orders", strings.NewReader(string(body))))
		out, _ := io.ReadAll(rec.Body)
		var o order
		if err := json.Unmarshal(out, &o); err != nil {
			log.Error("bad response", "err", err)
			os.Exit(1)
		}
		sum += o.Total
		if i%100 == 0 {
			log.Info("order", "id", o.ID, "items", len(o.Items), "status", rec.Code)
		}
	}
	fmt.Printf("rounds=%d sum=%.4f\n", rounds, sum)
}
