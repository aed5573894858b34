// Command svcprobe is a test module that uses the base's services on request.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/kv"
)

func init() {
	mux := http.NewServeMux()
	ns := func(r *http.Request) kv.Namespace { return kv.Shared(r.URL.Query().Get("ns")) }
	mux.HandleFunc("GET /kv/put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := ns(r).Put(r.Context(), q.Get("k"), []byte(q.Get("v"))); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /kv/get", func(w http.ResponseWriter, r *http.Request) {
		v, found, err := ns(r).Get(r.Context(), r.URL.Query().Get("k"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "%s %v\n", v, found)
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		v, found, err := sdk.Config(r.Context(), r.URL.Query().Get("k"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "%s %v\n", v, found)
	})
	mux.HandleFunc("GET /call", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var out json.RawMessage
		if err := sdk.Call(r.Context(), q.Get("target"), q.Get("method"), json.RawMessage(q.Get("arg")), &out); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "%s\n", out)
	})
	sdk.Handle(mux)
	type pair struct{ A, B int }
	sdk.Export("add", func(ctx context.Context, p pair) (int, error) { return p.A + p.B, nil })
}

func main() { sdk.Serve() }
