// Command valuer shows, for the native runtime's tests, that calls between native modules and the base pass Go
// values as they are: it reports whether an answer came back as the very slice it sent.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/kv"
)

func init() {
	mux := http.NewServeMux()
	// /same?target=T sends a slice to T's method "same", which answers what it got.
	mux.HandleFunc("GET /same", func(w http.ResponseWriter, r *http.Request) {
		in := []byte("payload")
		var out []byte
		if err := sdk.Call(r.Context(), r.URL.Query().Get("target"), "same", in, &out); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "%s shared=%v", out, unsafe.SliceData(out) == unsafe.SliceData(in))
	})
	// /grow?target=T sends a map to T's method "grow", which adds to it.
	mux.HandleFunc("GET /grow", func(w http.ResponseWriter, r *http.Request) {
		in := map[string]int{"n": 1}
		var out map[string]int
		if err := sdk.Call(r.Context(), r.URL.Query().Get("target"), "grow", in, &out); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "sent n=%d got n=%d", in["n"], out["n"])
	})
	// /shape?target=T calls T's "shape" with a type of this module's own: it cannot pass as it is.
	mux.HandleFunc("GET /shape", func(w http.ResponseWriter, r *http.Request) {
		type point struct{ X, Y int }
		var out struct{ Sum int }
		if err := sdk.Call(r.Context(), r.URL.Query().Get("target"), "shape", point{2, 3}, &out); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "sum=%d", out.Sum)
	})
	mux.HandleFunc("GET /kv", func(w http.ResponseWriter, r *http.Request) {
		if err := kv.Put(r.Context(), "k", []byte(r.URL.Query().Get("v"))); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		v, found, err := kv.Get(r.Context(), "k")
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "%s %v", v, found)
	})
	// /loop?target=T&n=N&mode=value|json makes N calls of T's "same" and answers the nanoseconds per call:
	// with a []byte (passed as it is) or with JSON (a json.RawMessage, which no method takes as it is).
	mux.HandleFunc("GET /loop", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, _ := strconv.Atoi(q.Get("n"))
		var in any = []byte("payload")
		if q.Get("mode") == "json" {
			in = json.RawMessage(`"cGF5bG9hZA=="`)
		}
		began := time.Now()
		for range n {
			var out []byte
			if err := sdk.Call(r.Context(), q.Get("target"), "same", in, &out); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		fmt.Fprint(w, time.Since(began).Nanoseconds()/int64(max(n, 1)))
	})
	sdk.Handle(mux)
	sdk.Export("same", func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
	sdk.Export("grow", func(ctx context.Context, in map[string]int) (map[string]int, error) {
		in["n"]++
		return in, nil
	})
}

func main() { sdk.Serve() }
