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

// deploy: from installBiz to the first 200 through the gateway, with the compiled code in the cache and with an
// empty cache, against starting the same service as its own process until it answers.
func (r *runner) deploy(ctx context.Context, rt string) error {
	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return err
	}
	defer b.stop()
	client := &http.Client{Timeout: 30 * time.Second}
	url := b.gateway + r.helloWasm.contextPath + "/"
	// The first install fills the cache (and is not counted); each trial after it uninstalls and installs again.
	if err := b.install(r.helloWasm); err != nil {
		return err
	}
	if _, err := get(client, url); err != nil {
		return err
	}
	var cached []time.Duration
	for range r.sizes.DeployTrials {
		if err := b.uninstall(r.helloWasm); err != nil {
			return err
		}
		d, err := timeInstall(b, r.helloWasm, client, url)
		if err != nil {
			return err
		}
		cached = append(cached, d)
	}
	// Uncached: a variant never compiled before (its bytes differ) into a fresh cache dir, in a fresh base.
	var uncached []time.Duration
	for i := range r.sizes.UncachedTrials {
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
	r.add(Row{Comparison: "deploy (" + rt + ")", Metric: fmt.Sprintf("install → first response, compile cache hit (median of %d)", len(cached)),
		Kouple: ms(c), Baseline: ms(nat) + " native process start → first response", Ratio: ratio(c, nat),
		Target: "≤ 150 ms", Status: metIf(c <= 150*time.Millisecond)})
	u := median(uncached)
	if len(uncached) > 0 {
		r.add(Row{Comparison: "deploy (" + rt + ")", Metric: fmt.Sprintf("install → first response, empty compile cache (median of %d)", len(uncached)),
			Kouple: ms(u), Baseline: ms(nat) + " native process start → first response", Ratio: ratio(u, nat)})
	}
	r.add(Row{Comparison: "deploy (reference)", Metric: "Koupleless module install (published)",
		Kouple: ms(c) + " cached / " + ms(u) + " uncached", Baseline: "3.3–4.4 s per module (Koupleless, published)",
		Ratio: float64(c) / float64(3300*time.Millisecond)})
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

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/(1<<20)) }

func metIf(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}
