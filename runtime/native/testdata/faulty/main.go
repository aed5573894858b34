// Command faulty misbehaves on request, for the native runtime's tests: handler and method panics, goroutines
// that stop with the module's context and one that does not, and its own identity and configuration.
package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kouple/kouple/sdk"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) { panic("on purpose") })
	mux.HandleFunc("GET /who", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", sdk.Name(), sdk.Version(), sdk.Getenv("GREETING"))
	})
	mux.HandleFunc("GET /stuck", func(w http.ResponseWriter, r *http.Request) {
		sdk.Go(func(ctx context.Context) { time.Sleep(time.Hour) }) // ignores its context
		fmt.Fprintln(w, "started")
	})
	sdk.Handle(mux)
	sdk.Export("boom", func(ctx context.Context, _ struct{}) (int, error) { panic("method on purpose") })
	sdk.Export("echo", func(ctx context.Context, s string) (string, error) { return sdk.Name() + ":" + s, nil })
	sdk.Go(func(ctx context.Context) { <-ctx.Done() }) // background work that ends at uninstall
}

func main() { sdk.Serve() }
