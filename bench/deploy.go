package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/kouple/kouple/manifest"
)

// deploy: from installBiz to the first 200 through the gateway, against starting the same service as its own
// process until it answers. Wasm: with the compiled code in the cache (the same artifact uninstalled and
// installed again) and with an empty cache. Native: each trial a version of its own (a process loads a Go
// plugin path once), after a first plugin that brings the packages the base lacks.
func (r *runner) deploy(ctx context.Context, rt string) error {
	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return err
	}
	defer b.stop()
	client := &http.Client{Timeout: 30 * time.Second}
	// Each trial's artifact, and the one installed first (not counted).
	trial := func(i int) *artifactFile { return r.helloWasm }
	if rt != "wasm" {
		hs, err := r.hellos(ctx, rt, r.sizes.DeployTrials+1)
		if err != nil {
			return err
		}
		trial = func(i int) *artifactFile { return hs[i+1] }
	}
	first, err := r.hello(ctx, rt)
	if err != nil {
		return err
	}
	began := time.Now()
	if err := b.install(first); err != nil {
		return err
	}
	if _, err := get(client, b.gateway+first.contextPath+"/"); err != nil {
		return err
	}
	firstTook := time.Since(began)
	var cached []time.Duration
	last := first
	for i := range r.sizes.DeployTrials {
		if err := b.uninstall(last); err != nil {
			return err
		}
		last = trial(i)
		d, err := timeInstall(b, last, client, b.gateway+last.contextPath+"/")
		if err != nil {
			return err
		}
		cached = append(cached, d)
	}
	// Uncached (wasm): a variant never compiled before (its bytes differ) into a fresh cache dir, in a fresh base.
	var uncached []time.Duration
	for i := range r.sizes.UncachedTrials {
		if rt != "wasm" {
			break
		}
		dir, err := os.MkdirTemp(r.tmp, "cold-cache-")
		if err != nil {
			return err
		}
		cold, err := r.startBase(ctx, dir)
		if err != nil {
			return err
		}
		a, err := r.variant(r.helloBytes, func(m *manifest.Manifest) { m.Version = fmt.Sprintf("1.0.0-cold%d", i) })
		if err != nil {
			cold.stop()
			return err
		}
		d, err := timeInstall(cold, a, client, cold.gateway+a.contextPath+"/")
		cold.stop()
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
		uncached = append(uncached, d)
	}
	// Native: exec the binary until GET / answers.
	var native []time.Duration
	for range r.sizes.DeployTrials {
		began := time.Now()
		p, _, err := r.startNative(ctx, r.helloBin, "/")
		if err != nil {
			return err
		}
		native = append(native, time.Since(began))
		p.stop()
	}
	nat := median(native)
	c := median(cached)
	cmp := "deploy (" + rt + ")"
	natRow := ms(nat) + " native process start → first response"
	if rt == "wasm" {
		r.add(Row{Comparison: cmp, Metric: fmt.Sprintf("install → first response, compile cache hit (median of %d)", len(cached)),
			Kouple: ms(c), Baseline: natRow, Ratio: ratio(c, nat), Target: "≤ 150 ms", Status: metIf(c <= 150*time.Millisecond)})
		u := median(uncached)
		if len(uncached) > 0 {
			r.add(Row{Comparison: cmp, Metric: fmt.Sprintf("install → first response, empty compile cache (median of %d)", len(uncached)),
				Kouple: ms(u), Baseline: natRow, Ratio: ratio(u, nat)})
		}
		r.add(Row{Comparison: "deploy (reference)", Metric: "Koupleless module install (published)",
			Kouple: ms(c) + " cached / " + ms(u) + " uncached", Baseline: "3.3–4.4 s per module (Koupleless, published)",
			Ratio: float64(c) / float64(3300*time.Millisecond)})
		return nil
	}
	r.add(Row{Comparison: cmp, Metric: fmt.Sprintf("install → first response, a new plugin version each (median of %d)", len(cached)),
		Kouple: ms(c), Baseline: natRow, Ratio: ratio(c, nat), Target: "≤ 20 ms", Status: metIf(c <= 20*time.Millisecond)})
	r.add(Row{Comparison: cmp, Metric: "install → first response, the first plugin into a fresh base",
		Kouple: ms(firstTook), Baseline: natRow, Ratio: ratio(firstTook, nat)})
	return nil
}

func timeInstall(b *baseProc, a *artifactFile, client *http.Client, url string) (time.Duration, error) {
	began := time.Now()
	if err := b.install(a); err != nil {
		return 0, err
	}
	for {
		if _, err := get(client, url); err == nil {
			return time.Since(began), nil
		} else if time.Since(began) > 2*time.Minute {
			return 0, err
		}
		time.Sleep(time.Millisecond)
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio[T ~int64 | ~float64](a, b T) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
}

func us(d time.Duration) string {
	if d < 10*time.Microsecond {
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%.1f µs", float64(d)/1e3)
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/(1<<20)) }

func metIf(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}
