package bench

import (
	"context"
	"fmt"
)

// serving: requests/s and p50/p99 of hello's greeting through the gateway against the same handler as its own
// process, from a load generator in a third process, at concurrency 1 and 32.
func (r *runner) serving(ctx context.Context, rt string) error {
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
	for _, c := range []int{1, 32} {
		k, err := r.load(ctx, b.gateway+hello.contextPath+"/", c, r.sizes.ServeFor)
		if err != nil {
			return err
		}
		n, err := r.load(ctx, nativeURL+"/", c, r.sizes.ServeFor)
		if err != nil {
			return err
		}
		cmp := fmt.Sprintf("serving (%s), c=%d", rt, c)
		want := 0.4 // issue 6 (wasm); issue 7 (native)
		if rt != "wasm" {
			want = 0.9
		}
		r.add(Row{Comparison: cmp, Metric: "requests/s through the gateway", Kouple: fmt.Sprintf("%.0f", k.RPS), Baseline: fmt.Sprintf("%.0f native process", n.RPS),
			Ratio: k.RPS / n.RPS, Target: fmt.Sprintf("≥ %gx native", want), Status: metIf(k.RPS/n.RPS >= want)})
		r.add(Row{Comparison: cmp, Metric: "p50 latency", Kouple: fmt.Sprintf("%.0f µs", k.P50us), Baseline: fmt.Sprintf("%.0f µs", n.P50us), Ratio: k.P50us / n.P50us})
		r.add(Row{Comparison: cmp, Metric: "p99 latency", Kouple: fmt.Sprintf("%.0f µs", k.P99us), Baseline: fmt.Sprintf("%.0f µs", n.P99us), Ratio: k.P99us / n.P99us})
	}
	return nil
}
