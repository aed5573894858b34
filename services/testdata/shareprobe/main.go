// Command shareprobe is a test module for outbound HTTP, events and timers: it fetches URLs with an ordinary
// http.Client, publishes events, and records the events and timer runs it receives in its kv namespace.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/events"
	"github.com/kouple/kouple/sdk/kv"
	"github.com/kouple/kouple/sdk/timers"
)

func init() {
	mux := http.NewServeMux()
	// GET /fetch?url=U fetches U with http.Get (http.DefaultTransport: through the base in wasm); with
	// &client=sdk, with sdk.Transport, as a native module does.
	mux.HandleFunc("GET /fetch", func(w http.ResponseWriter, r *http.Request) {
		client := http.DefaultClient
		if r.URL.Query().Get("client") == "sdk" {
			client = &http.Client{Transport: sdk.Transport{}}
		}
		resp, err := client.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(w, "%d %s", resp.StatusCode, body)
	})
	mux.HandleFunc("GET /publish", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		id, err := events.Publish(r.Context(), q.Get("topic"), q.Get("data"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, id)
	})
	// GET /schedule?name=N&spec=S schedules a timer through the SDK; without spec, cancels it.
	mux.HandleFunc("GET /schedule", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		err := timers.Cancel(r.Context(), q.Get("name"))
		if q.Get("spec") != "" {
			err = timers.Schedule(r.Context(), q.Get("name"), q.Get("spec"), false)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// GET /seen?prefix=P lists the records key=value whose key starts with P.
	mux.HandleFunc("GET /seen", func(w http.ResponseWriter, r *http.Request) {
		keys, err := kv.Namespace{}.List(r.Context(), r.URL.Query().Get("prefix"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, k := range keys {
			v, _, _ := kv.Get(r.Context(), k)
			fmt.Fprintf(w, "%s=%s\n", k, v)
		}
	})
	sdk.Handle(mux)
	// An event is recorded once per id, with the version that handled it.
	events.Handle("ping", func(ctx context.Context, e events.Event) error {
		var data string
		if err := e.Decode(&data); err != nil {
			return err
		}
		if data == "fail" && e.Attempt < 2 {
			return fmt.Errorf("failing on purpose, attempt %d", e.Attempt)
		}
		return kv.Put(ctx, "event/"+data, []byte(sdk.Version()))
	})
	timers.Handle("tick", func(ctx context.Context, t timers.Tick) error {
		v, _, err := kv.Get(ctx, "ticks")
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(string(v))
		if err := kv.Put(ctx, "ticks", []byte(strconv.Itoa(n+1))); err != nil {
			return err
		}
		return kv.Put(ctx, "tick/"+t.Scheduled.UTC().Format("15:04")+"/"+strconv.FormatBool(t.CatchUp), []byte("1"))
	})
}

func main() { sdk.Serve() }
