package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kouple/kouple/manifest"
)

// The guard comparison's workloads.
const (
	computeN      = 30_000_000 // rounds of runaway's /compute, timed for the overhead and run in bursts beside hello: ~0.3 s without waiting
	tightBudget   = 100 * time.Millisecond
	notesCount    = 20 // notes listed by GET /notes/items, the JSON workload
	neighbourLoad = 2 * time.Second
)

// guard: what the fuel guard (issue 11) costs and buys, in a guarded base against one started with
// --no-guard: the base's CPU time per request of runaway's /compute and of hello's and notes' handlers (CPU
// time, not wall time, so that a machine shared with other work does not decide); hello's p99 while runaway
// computes in back-to-back bursts; and how long past its CPU budget a spinning runaway is stopped (guarded
// only: without the guard it never is). Native modules have no guard: Go's scheduler preempts them, and
// nothing stops one that spins.
func (r *runner) guard(ctx context.Context, rt string) error {
	cmp := "guard (" + rt + ")"
	if rt != "wasm" {
		r.add(Row{Comparison: cmp, Metric: "not measured: native modules have no fuel guard or CPU budget",
			Kouple: "-", Baseline: "- (a native module is goroutines of the base, preempted by Go; one that spins holds a core until the base restarts)"})
		return nil
	}
	runaway, runawayBytes, err := r.buildWasm(ctx, "examples/runaway")
	if err != nil {
		return err
	}
	notes, _, err := r.buildWasm(ctx, "examples/notes")
	if err != nil {
		return err
	}
	tight, err := r.variant(runawayBytes, func(m *manifest.Manifest) {
		m.Name, m.ContextPath, m.Limits.CPUBudget = "runaway-tight", "/runaway-tight", tightBudget.String()
	})
	if err != nil {
		return err
	}
	var sides [2]guardSide // guarded, unguarded
	var stops []time.Duration
	for i, guarded := range []bool{true, false} {
		var flags []string
		if !guarded {
			flags = []string{"--no-guard"}
		}
		b, err := r.startBase(ctx, r.cacheDir, flags...)
		if err != nil {
			return err
		}
		sides[i], err = r.guardSide(ctx, b, runaway, notes)
		if err == nil && guarded {
			stops, err = r.spinStops(b, tight)
		}
		b.stop()
		if err != nil {
			return fmt.Errorf("%s base: %w", map[bool]string{true: "guarded", false: "unguarded"}[guarded], err)
		}
	}
	g, u := sides[0], sides[1]
	overhead := func(metric string, gd, ud time.Duration) {
		metric += ", base CPU time per request"
		x := ratio(gd, ud)
		r.add(Row{Comparison: cmp, Metric: metric, Kouple: ms(gd), Baseline: ms(ud) + " without the guard",
			Ratio: x, Target: "≤ 1.3x", Status: metIf(x <= 1.3)})
	}
	overhead(fmt.Sprintf("runaway /compute (%d M rounds, %d requests)", computeN/1_000_000, r.sizes.GuardTrials), g.compute, u.compute)
	overhead("hello / (HTTP handler, c=1)", g.hello, u.hello)
	overhead(fmt.Sprintf("notes /items (JSON, %d notes, c=1)", notesCount), g.notes, u.notes)
	gp, up := time.Duration(g.neighbour.P99us*1e3), time.Duration(u.neighbour.P99us*1e3)
	r.add(Row{Comparison: cmp, Metric: fmt.Sprintf("hello p99 (c=1) while runaway computes in back-to-back %d M-round bursts", computeN/1_000_000),
		Kouple: ms(gp), Baseline: ms(up) + " without the guard", Ratio: ratio(gp, up), Target: "≤ 5 ms", Status: metIf(gp <= 5*time.Millisecond)})
	gm, um := time.Duration(g.neighbour.MaxUs*1e3), time.Duration(u.neighbour.MaxUs*1e3)
	r.add(Row{Comparison: cmp, Metric: "hello's slowest request (c=1) while runaway computes in the same bursts",
		Kouple: ms(gm), Baseline: ms(um) + " without the guard", Ratio: ratio(gm, um)})
	if len(stops) > 0 {
		med := median(stops)
		r.add(Row{Comparison: cmp, Metric: fmt.Sprintf("/spin stopped past its %s CPU budget (median of %d; request time − budget)", ms(tightBudget), len(stops)),
			Kouple: ms(med) + " (worst " + ms(slices.Max(stops)) + ")", Baseline: "- (without the guard: never)",
			Target: "≤ 10 ms", Status: metIf(med <= 10*time.Millisecond)})
	}
	return nil
}

// guardSide is what one base (guarded or not) measured.
type guardSide struct {
	compute, hello, notes time.Duration // the base's CPU time per request
	neighbour             LoadResult
}

func (r *runner) guardSide(ctx context.Context, b *baseProc, runaway, notes *artifactFile) (guardSide, error) {
	var s guardSide
	for _, a := range []*artifactFile{r.helloWasm, runaway, notes} {
		if err := b.install(a); err != nil {
			return s, err
		}
	}
	client := &http.Client{Timeout: time.Minute}
	for i := range notesCount {
		body := fmt.Sprintf(`{"text": "note %d: a line of text to list as JSON"}`, i)
		resp, err := client.Post(b.gateway+notes.contextPath+"/items", "application/json", strings.NewReader(body))
		if err != nil {
			return s, err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return s, fmt.Errorf("POST %s/items: %s", notes.contextPath, resp.Status)
		}
	}
	computeURL := fmt.Sprintf("%s%s/compute?n=%d", b.gateway, runaway.contextPath, computeN)
	if _, err := get(client, computeURL); err != nil { // warm
		return s, err
	}
	cpu0, err := readCPU(b.pid())
	if err != nil {
		return s, err
	}
	for range r.sizes.GuardTrials {
		if _, err := get(client, computeURL); err != nil {
			return s, err
		}
	}
	cpu1, err := readCPU(b.pid())
	if err != nil {
		return s, err
	}
	s.compute = (cpu1 - cpu0) / time.Duration(max(r.sizes.GuardTrials, 1))
	if s.hello, err = r.cpuPerRequest(ctx, b, r.helloWasm.contextPath+"/"); err != nil {
		return s, err
	}
	if s.notes, err = r.cpuPerRequest(ctx, b, notes.contextPath+"/items"); err != nil {
		return s, err
	}
	// The neighbour: hello under load while runaway computes in bursts, one after the other, never waiting.
	// At least 2 s, so that bursts of ~0.3 s leave requests to count.
	stop := make(chan struct{})
	var bursts sync.WaitGroup
	burstErr := make(chan error, 1)
	bursts.Go(func() {
		url := fmt.Sprintf("%s%s/compute?n=%d", b.gateway, runaway.contextPath, computeN)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := get(client, url); err != nil {
				burstErr <- err
				return
			}
		}
	})
	s.neighbour, err = r.load(ctx, b.gateway+r.helloWasm.contextPath+"/", 1, max(r.sizes.ServeFor, neighbourLoad))
	close(stop)
	bursts.Wait()
	select {
	case e := <-burstErr:
		return s, fmt.Errorf("runaway's bursts: %w", e)
	default:
	}
	return s, err
}

// spinStops installs the tight-budget runaway and times GET /spin GuardTrials times: each must end with a
// 5xx once the instance has computed past its budget; the time past the budget is the request's duration
// minus the budget (so it includes the round trip through the gateway).
func (r *runner) spinStops(b *baseProc, tight *artifactFile) ([]time.Duration, error) {
	if err := b.install(tight); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Minute}
	var over []time.Duration
	for range r.sizes.GuardTrials {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) { // a serving instance
			if _, err := get(client, b.gateway+tight.contextPath+"/ok"); err == nil {
				break
			} else if time.Now().After(deadline) {
				return nil, err
			}
		}
		began := time.Now()
		resp, err := client.Get(b.gateway + tight.contextPath + "/spin")
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		took := time.Since(began)
		if resp.StatusCode < 500 {
			return nil, fmt.Errorf("GET %s/spin answered %s, not a 5xx", tight.contextPath, resp.Status)
		}
		over = append(over, took-tightBudget)
	}
	return over, nil
}

// cpuPerRequest loads path on the base at concurrency 1 for ServeFor and answers the base's CPU time per
// request.
func (r *runner) cpuPerRequest(ctx context.Context, b *baseProc, path string) (time.Duration, error) {
	before, err := readCPU(b.pid())
	if err != nil {
		return 0, err
	}
	l, err := r.load(ctx, b.gateway+path, 1, r.sizes.ServeFor)
	if err != nil {
		return 0, err
	}
	after, err := readCPU(b.pid())
	if err != nil {
		return 0, err
	}
	return (after - before) / time.Duration(l.Requests), nil
}
