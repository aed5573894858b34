// Command caller is the bench's module-to-module pair: GET /calls?n=N&size=S makes N calls to the peer's (config
// PEER) echo with an S-byte payload and answers how many nanoseconds they took, timed inside the module so the
// gateway request that starts them is not counted.
package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kouple/kouple/sdk"
)

func init() {
	// Read while the module loads: in a native module sdk.Getenv knows whose configuration to answer during
	// init, and os.Getenv would read the base's environment.
	peer := sdk.Getenv("PEER")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /calls", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		payload := strings.Repeat("x", size)
		began := time.Now()
		for range n {
			var out string
			if err := sdk.Call(r.Context(), peer, "echo", payload, &out); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			if len(out) != size {
				http.Error(w, fmt.Sprintf("echo answered %d bytes, want %d", len(out), size), http.StatusBadGateway)
				return
			}
		}
		fmt.Fprint(w, time.Since(began).Nanoseconds())
	})
	sdk.Handle(mux)
	sdk.Export("echo", func(ctx context.Context, s string) (string, error) { return s, nil })
}

func main() { sdk.Serve() }
