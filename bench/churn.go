package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// churn: install and uninstall hello Churn times in one base, each install answering once; the base's RSS
// before (after one warm-up cycle) and after.
func (r *runner) churn(ctx context.Context, rt string) error {
	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return err
	}
	defer b.stop()
	client := &http.Client{Timeout: time.Minute}
	url := b.gateway + r.helloWasm.contextPath + "/"
	cycle := func() error {
		if err := b.install(r.helloWasm); err != nil {
			return err
		}
		if _, err := get(client, url); err != nil {
			return err
		}
		return b.uninstall(r.helloWasm)
	}
	if err := cycle(); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	before, err := b.memory()
	if err != nil {
		return err
	}
	// The RSS half-way tells a high-water mark (growth that stops) from a leak (growth with the cycles).
	mid := before
	began := time.Now()
	for i := range r.sizes.Churn {
		if err := cycle(); err != nil {
			return err
		}
		if i == r.sizes.Churn/2-1 {
			if mid, err = b.memory(); err != nil {
				return err
			}
		}
	}
	took := time.Since(began)
	time.Sleep(500 * time.Millisecond)
	after, err := b.memory()
	if err != nil {
		return err
	}
	growth := (after.RSS - before.RSS) / before.RSS
	cmp := fmt.Sprintf("churn (%s), %d cycles", rt, r.sizes.Churn)
	r.add(Row{Comparison: cmp, Metric: "base RSS before → half-way → after", Kouple: fmt.Sprintf("%s → %s → %s (%+.1f%%)", mb(before.RSS), mb(mid.RSS), mb(after.RSS), growth*100),
		Baseline: "- (a process per service frees all at exit)", Target: "growth ≤ 5%", Status: metIf(growth <= 0.05)})
	r.add(Row{Comparison: cmp, Metric: "base anonymous memory before → after", Kouple: fmt.Sprintf("%s → %s", mb(before.Anon), mb(after.Anon)), Baseline: "-"})
	r.add(Row{Comparison: cmp, Metric: "install + first response + uninstall, per cycle", Kouple: ms(took / time.Duration(max(r.sizes.Churn, 1))), Baseline: "-"})
	return nil
}
