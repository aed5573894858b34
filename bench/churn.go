package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// churn: install and uninstall hello Churn times in one base, each install answering once; the base's RSS
// before (after one warm-up cycle) and after. Native: a process loads a Go plugin path once and never unmaps
// one, so each cycle is another version of hello (those built for density, so fewer cycles), and the growth
// measured is the code every uninstalled version leaves behind.
func (r *runner) churn(ctx context.Context, rt string) error {
	cycles := r.sizes.Churn
	pick := func(i int) *artifactFile { return r.helloWasm }
	if rt != "wasm" {
		hs, err := r.hellos(ctx, rt, max(slices.Max(append([]int{1}, r.sizes.Density...)), 2))
		if err != nil {
			return err
		}
		cycles = min(cycles, len(hs)-1)
		pick = func(i int) *artifactFile { return hs[i] }
	}
	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return err
	}
	defer b.stop()
	client := &http.Client{Timeout: time.Minute}
	cycle := func(i int) error {
		a := pick(i)
		if err := b.install(a); err != nil {
			return err
		}
		if _, err := get(client, b.gateway+a.contextPath+"/"); err != nil {
			return err
		}
		return b.uninstall(a)
	}
	if err := cycle(0); err != nil {
		return err
	}
	time.Sleep(settle)
	before, err := b.memory()
	if err != nil {
		return err
	}
	// The RSS half-way tells a high-water mark (growth that stops) from a leak (growth with the cycles).
	mid := before
	began := time.Now()
	for i := range cycles {
		if err := cycle(i + 1); err != nil {
			return err
		}
		if i == cycles/2-1 {
			if mid, err = b.memory(); err != nil {
				return err
			}
		}
	}
	took := time.Since(began)
	time.Sleep(settle)
	after, err := b.memory()
	if err != nil {
		return err
	}
	growth := (after.RSS - before.RSS) / before.RSS
	cmp := fmt.Sprintf("churn (%s), %d cycles", rt, cycles)
	metric := "base RSS before → half-way → after"
	if rt != "wasm" {
		metric += " (each cycle a new plugin version; Go never unmaps a plugin's code)"
	}
	r.add(Row{Comparison: cmp, Metric: metric, Kouple: fmt.Sprintf("%s → %s → %s (%+.1f%%)", mb(before.RSS), mb(mid.RSS), mb(after.RSS), growth*100),
		Baseline: "- (a process per service frees all at exit)", Target: "growth ≤ 5%", Status: metIf(growth <= 0.05)})
	r.add(Row{Comparison: cmp, Metric: "base anonymous memory before → after", Kouple: fmt.Sprintf("%s → %s", mb(before.Anon), mb(after.Anon)), Baseline: "-"})
	r.add(Row{Comparison: cmp, Metric: "install + first response + uninstall, per cycle", Kouple: ms(took / time.Duration(max(cycles, 1))), Baseline: "-"})
	return nil
}
