package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/kouple/kouple/manifest"
)

// density: N hello modules (same code, each its own name and context path) in one base against N hello
// processes; resident and anonymous memory after each has answered once.
func (r *runner) density(ctx context.Context, rt string) error {
	client := &http.Client{Timeout: 2 * time.Minute}
	var variants []*artifactFile
	for _, n := range r.sizes.Density {
		for i := len(variants); i < n; i++ {
			a, err := r.variant(r.helloBytes, func(m *manifest.Manifest) {
				m.Name = fmt.Sprintf("hello-d%d", i+1)
				m.ContextPath = fmt.Sprintf("/hello-d%d", i+1)
			})
			if err != nil {
				return err
			}
			variants = append(variants, a)
		}
		b, err := r.startBase(ctx, r.cacheDir)
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		empty, err := b.memory()
		if err != nil {
			b.stop()
			return err
		}
		// Installs run side by side, one per CPU, as a base's static modules of one priority do.
		errs := make([]error, n)
		sem := make(chan struct{}, goruntime.NumCPU())
		var wg sync.WaitGroup
		for i, a := range variants[:n] {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if errs[i] = b.install(a); errs[i] == nil {
					_, errs[i] = get(client, b.gateway+a.contextPath+"/")
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.stop()
			return err
		}
		time.Sleep(time.Second)
		full, err := b.memory()
		b.stop()
		if err != nil {
			return err
		}
		var native memory
		var procs []*proc
		for range n {
			p, _, err := r.startNative(ctx, r.helloBin, "/")
			if err != nil {
				return err
			}
			procs = append(procs, p)
		}
		time.Sleep(time.Second)
		for _, p := range procs {
			m, err := readMemory(p.pid())
			if err != nil {
				return err
			}
			native.RSS += m.RSS
			native.Anon += m.Anon
		}
		for _, p := range procs {
			p.stop()
		}
		cmp := fmt.Sprintf("density (%s), N=%d", rt, n)
		nn := float64(n)
		r.add(Row{Comparison: cmp, Metric: "total RSS", Kouple: mb(full.RSS) + " (one base)", Baseline: mb(native.RSS) + fmt.Sprintf(" (%d processes)", n), Ratio: full.RSS / native.RSS})
		r.add(Row{Comparison: cmp, Metric: "total anonymous memory", Kouple: mb(full.Anon), Baseline: mb(native.Anon), Ratio: full.Anon / native.Anon})
		r.add(Row{Comparison: cmp, Metric: "RSS per service", Kouple: mb(full.RSS / nn), Baseline: mb(native.RSS / nn), Ratio: full.RSS / native.RSS})
		per := (full.RSS - empty.RSS) / nn
		r.add(Row{Comparison: cmp, Metric: "RSS per idle module, base's own excluded", Kouple: mb(per),
			Baseline: mb(native.RSS/nn) + " per process", Ratio: per / (native.RSS / nn),
			Target: "≤ 30 MB", Status: metIf(per <= 30<<20)})
	}
	if len(r.sizes.Density) > 0 {
		r.add(Row{Comparison: "density (reference)", Metric: "Koupleless memory per module (published)", Kouple: "see rows above", Baseline: "33–39 MB per module (Koupleless, published)"})
	}
	return nil
}
