package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// concurrency: Waits requests at once to hello's /wait?ms=WaitMS; the serving process's peak memory while they
// wait, against its idle memory, and the time until all have answered; the same against the native process.
func (r *runner) concurrency(ctx context.Context, rt string) error {
	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return err
	}
	defer b.stop()
	hello, err := r.hello(ctx, rt)
	if err != nil {
		return err
	}
	if err := b.install(hello); err != nil {
		return err
	}
	p, nativeURL, err := r.startNative(ctx, r.helloBin, "/")
	if err != nil {
		return err
	}
	defer p.stop()
	k, err := r.waits(b.pid(), b.gateway+hello.contextPath)
	if err != nil {
		return err
	}
	n, err := r.waits(p.pid(), nativeURL)
	if err != nil {
		return err
	}
	cmp := fmt.Sprintf("concurrency (%s), %d × %d ms waits", rt, r.sizes.Waits, r.sizes.WaitMS)
	x := k.peak.RSS / k.idle.RSS
	r.add(Row{Comparison: cmp, Metric: "process RSS while waiting ÷ idle", Kouple: fmt.Sprintf("%.2fx (%s → %s)", x, mb(k.idle.RSS), mb(k.peak.RSS)),
		Baseline: fmt.Sprintf("%.2fx (%s → %s) native", n.peak.RSS/n.idle.RSS, mb(n.idle.RSS), mb(n.peak.RSS)),
		Ratio:    x / (n.peak.RSS / n.idle.RSS), Target: "≤ 1.5x idle", Status: metIf(x <= 1.5)})
	r.add(Row{Comparison: cmp, Metric: "peak anonymous memory", Kouple: mb(k.peak.Anon), Baseline: mb(n.peak.Anon), Ratio: k.peak.Anon / n.peak.Anon})
	r.add(Row{Comparison: cmp, Metric: "time until all answered", Kouple: ms(k.took), Baseline: ms(n.took), Ratio: ratio(k.took, n.took)})
	r.add(Row{Comparison: cmp, Metric: "waits on a base service", Kouple: "not measured: no base-service wait yet", Baseline: "-"})
	return nil
}

type waitResult struct {
	idle, peak memory
	took       time.Duration
}

func (r *runner) waits(pid int, url string) (waitResult, error) {
	var res waitResult
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: r.sizes.Waits, MaxConnsPerHost: r.sizes.Waits}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	if _, err := get(client, url+"/"); err != nil {
		return res, err
	}
	time.Sleep(500 * time.Millisecond)
	idle, err := readMemory(pid)
	if err != nil {
		return res, err
	}
	res.idle, res.peak = idle, idle
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if m, err := readMemory(pid); err == nil {
				res.peak.RSS = max(res.peak.RSS, m.RSS)
				res.peak.Anon = max(res.peak.Anon, m.Anon)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, r.sizes.Waits)
	began := time.Now()
	for i := range r.sizes.Waits {
		wg.Go(func() {
			_, errs[i] = get(client, fmt.Sprintf("%s/wait?ms=%d", url, r.sizes.WaitMS))
		})
	}
	wg.Wait()
	res.took = time.Since(began)
	close(done)
	sampler.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
