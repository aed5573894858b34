package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// calls: a module-to-module round trip in one base (ping calls pong's echo, timed inside ping) against the same
// echo over loopback HTTP keep-alive to the service as its own process, gRPC between two processes, and an
// Extism host calling a plugin.
func (r *runner) calls(ctx context.Context, rt string) error {
	ping, pong, err := r.callers(ctx, rt)
	if err != nil {
		return err
	}
	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return err
	}
	defer b.stop()
	for _, a := range []*artifactFile{ping, pong} {
		if err := b.install(a); err != nil {
			return err
		}
	}
	callerBin, err := r.buildNative(ctx, "bench/testdata/caller")
	if err != nil {
		return err
	}
	p, nativeURL, err := r.startNative(ctx, callerBin, "/calls?n=0", "KOUPLE_MODULE_NAME=pong")
	if err != nil {
		return err
	}
	defer p.stop()
	grpcEcho, stopGRPC, grpcErr := r.startGRPC(ctx)
	if stopGRPC != nil {
		defer stopGRPC()
	}
	extismCall, stopExtism, extismErr := r.startExtism(ctx)
	if stopExtism != nil {
		defer stopExtism()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Minute}
	defer client.CloseIdleConnections()
	n := r.sizes.Calls
	modCalls := n
	if rt != "wasm" {
		modCalls = 10 * n // microseconds each: more of them, so a batch outlasts a scheduler tick
	}
	for _, size := range []int{8, 4096} {
		// Warm up each path, then time n calls.
		if _, err := r.moduleCalls(client, b, 100, size); err != nil {
			return err
		}
		mod, err := batches(modCalls, func(k int) (time.Duration, error) { return r.moduleCalls(client, b, k, size) })
		if err != nil {
			return err
		}
		httpCall := func() error { return httpEcho(client, nativeURL, size) }
		loop, err := timeCalls(httpCall, n)
		if err != nil {
			return err
		}
		cmp := fmt.Sprintf("calls (%s), %s payload", rt, sizeName(size))
		faster := 2 // issue 6 (wasm); issue 7 (native)
		if rt != "wasm" {
			faster = 100
		}
		r.add(Row{Comparison: cmp, Metric: "module-to-module round trip vs loopback HTTP keep-alive", Kouple: us(mod), Baseline: us(loop) + " HTTP/1.1 between two processes",
			Ratio: ratio(mod, loop), Target: fmt.Sprintf("≥ %dx faster than loopback HTTP", faster), Status: metIf(mod*time.Duration(faster) <= loop)})
		if grpcErr != nil {
			r.add(Row{Comparison: cmp, Metric: "module-to-module round trip vs loopback gRPC", Kouple: us(mod), Baseline: "not measured: " + firstLine(grpcErr.Error())})
		} else {
			d, err := timeCalls(func() error { return grpcEcho(size) }, n)
			if err != nil {
				return err
			}
			r.add(Row{Comparison: cmp, Metric: "module-to-module round trip vs loopback gRPC", Kouple: us(mod), Baseline: us(d) + " gRPC between two processes", Ratio: ratio(mod, d)})
		}
		if extismErr != nil {
			r.add(Row{Comparison: cmp, Metric: "module-to-module round trip vs Extism host → plugin", Kouple: us(mod), Baseline: "not measured: " + firstLine(extismErr.Error())})
		} else {
			d, err := timeCalls(func() error { return extismCall(size) }, n)
			if err != nil {
				return err
			}
			r.add(Row{Comparison: cmp, Metric: "module-to-module round trip vs Extism host → plugin", Kouple: us(mod), Baseline: us(d) + " Extism Go SDK calling its noop.wasm plugin", Ratio: ratio(mod, d)})
		}
	}
	return nil
}

// moduleCalls has ping make n calls to pong's echo and answers the time per call, as ping measured it.
func (r *runner) moduleCalls(client *http.Client, b *baseProc, n, size int) (time.Duration, error) {
	body, err := get(client, fmt.Sprintf("%s/ping/calls?n=%d&size=%d", b.gateway, n, size))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ping answered %q", body)
	}
	return time.Duration(ns / int64(max(n, 1))), nil
}

func httpEcho(client *http.Client, url string, size int) error {
	payload, _ := json.Marshal(strings.Repeat("x", size))
	resp, err := client.Post(url+"/.kouple/call/echo", "application/json", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) < size {
		return fmt.Errorf("echo over HTTP: %d, %d bytes", resp.StatusCode, len(body))
	}
	return nil
}

func timeCalls(call func() error, n int) (time.Duration, error) {
	for range min(n, 100) {
		if err := call(); err != nil {
			return 0, err
		}
	}
	return batches(n, func(k int) (time.Duration, error) {
		began := time.Now()
		for range k {
			if err := call(); err != nil {
				return 0, err
			}
		}
		return time.Since(began) / time.Duration(max(k, 1)), nil
	})
}

// batches runs n calls as 10 batches (each timed by per, which answers the time per call) and answers the
// median batch's time per call: on a shared machine one batch that waited for a CPU does not set the row.
func batches(n int, per func(k int) (time.Duration, error)) (time.Duration, error) {
	const count = 10
	var ds []time.Duration
	for range count {
		d, err := per(max(n/count, 1))
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
	}
	return median(ds), nil
}

func sizeName(size int) string {
	if size >= 1024 {
		return fmt.Sprintf("%d KB", size/1024)
	}
	return fmt.Sprintf("%d B", size)
}
