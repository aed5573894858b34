// Command greeter calls the hello module in-process and quotes its greeting. Standalone, set
// KOUPLE_CALL_URL_HELLO to where hello runs.
package main

import (
	"fmt"
	"net/http"

	"github.com/kouple/kouple/sdk"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		var greeting string
		if err := sdk.Call(r.Context(), "hello", "greeting", nil, &greeting); err != nil {
			http.Error(w, "greeter could not reach hello: "+err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "greeter %s relays: %s\n", sdk.Version(), greeting)
	})
	sdk.Handle(sdk.LogRequests(mux)) // one structured log line per request: `kouple logs greeter`
}

func main() { sdk.Serve() }
