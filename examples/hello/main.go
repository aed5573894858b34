// Command hello is the smallest Kouple module: a greeting that names the module's version (also exported as
// the method "greeting" for other modules), a request that waits on a timer without holding the module, and a
// stream of server-sent events.
package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kouple/kouple/sdk"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", greet)
	mux.HandleFunc("GET /wait", wait)
	mux.HandleFunc("GET /events", events)
	sdk.Handle(sdk.LogRequests(mux)) // one structured log line per request: `kouple logs hello`
	sdk.Export("greeting", func(ctx context.Context, _ struct{}) (string, error) {
		sdk.Logger(ctx).Info("greeting asked") // carries the caller's request and trace ids
		return greeting(), nil
	})
}

func main() { sdk.Serve() }

// Greeting is the text hello answers with; other modules quote it. The config GREETING (a pod's env, say)
// replaces its first word.
func greeting() string {
	return fmt.Sprintf("%s from %s %s!", cmp.Or(sdk.Getenv("GREETING"), "Hello"), sdk.Name(), sdk.Version())
}

func greet(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, greeting())
}

// wait answers after ms milliseconds: the timer parks only this request.
func wait(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > 60_000 {
		http.Error(w, "give ms=N, 0 to 60000", http.StatusBadRequest)
		return
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		fmt.Fprintf(w, "waited %d ms\n", ms)
	case <-r.Context().Done():
	}
}

// events streams n server-sent events, one every ms milliseconds.
func events(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	n, ms = min(max(n, 1), 1000), min(max(ms, 0), 10_000)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	for i := range n {
		if i > 0 {
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "id: %d\ndata: tick %d from %s %s\n\n", i, i, sdk.Name(), sdk.Version())
		if flusher != nil {
			flusher.Flush()
		}
	}
}
