package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	goruntime "runtime"
	"sync"
	"time"
)

// density: N hello modules (each its own name and context path; the same wasm code, or for native a plugin
// version each) in one base against N hello processes; resident and anonymous memory after each has answered
// once.
func (r *runner) density(ctx context.Context, rt string) error {
	client := &http.Client{Timeout: 2 * time.Minute}
	for _, n := range r.sizes.Density {
		variants, err := r.hellos(ctx, rt, n)
		if err != nil {
			return err
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
		time.Sleep(settle)
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
		total := Row{Comparison: cmp, Metric: "total RSS", Kouple: mb(full.RSS) + " (one base)", Baseline: mb(native.RSS) + fmt.Sprintf(" (%d processes)", n), Ratio: full.RSS / native.RSS}
		if rt != "wasm" {
			total.Target, total.Status = "≤ 0.9x", metIf(full.RSS <= 0.9*native.RSS)
		}
		r.add(total)
		r.add(Row{Comparison: cmp, Metric: "total anonymous memory", Kouple: mb(full.Anon), Baseline: mb(native.Anon), Ratio: full.Anon / native.Anon})
		r.add(Row{Comparison: cmp, Metric: "RSS per service", Kouple: mb(full.RSS / nn), Baseline: mb(native.RSS / nn), Ratio: full.RSS / native.RSS})
		per := (full.RSS - empty.RSS) / nn
		if rt == "wasm" {
			r.add(Row{Comparison: cmp, Metric: "RSS per idle module, base's own excluded", Kouple: mb(per),
				Baseline: mb(native.RSS/nn) + " per process", Ratio: per / (native.RSS / nn),
				Target: "≤ 30 MB", Status: metIf(per <= 30<<20)})
			continue
		}
		anon := (full.Anon - empty.Anon) / nn
		r.add(Row{Comparison: cmp, Metric: "anonymous memory per module, base's own excluded", Kouple: mb(anon),
			Baseline: mb(native.Anon/nn) + " per process", Ratio: anon / (native.Anon / nn),
			Target: "≤ 0.3x a process", Status: metIf(anon <= 0.3*native.Anon/nn)})
		r.add(Row{Comparison: cmp, Metric: "RSS per module, base's own excluded (mostly the plugin's mapped code)", Kouple: mb(per),
			Baseline: mb(native.RSS/nn) + " per process", Ratio: per / (native.RSS / nn)})
	}
	if len(r.sizes.Density) > 0 && rt == "wasm" {
		r.add(Row{Comparison: "density (reference)", Metric: "Koupleless memory per module (published)", Kouple: "see rows above", Baseline: "33–39 MB per module (Koupleless, published)"})
	}
	return nil
}
