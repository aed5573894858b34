package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// LoadResult is what the load generator measured.
type LoadResult struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	MaxUs    float64 `json:"max_us"`
}

// Load sends GET url from c goroutines over keep-alive connections for d and measures requests/s and latency.
// `kouple bench-load` runs it, so the generator is a process of its own, neither the base nor the service.
func Load(ctx context.Context, url string, c int, d time.Duration) LoadResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lat := make([][]time.Duration, c)
	errs := make([]int, c)
	var wg sync.WaitGroup
	began := time.Now()
	for g := range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					errs[g]++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs[g]++
					continue
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := LoadResult{Requests: len(all)}
	for _, e := range errs {
		res.Errors += e
	}
	if len(all) > 0 {
		res.RPS = float64(len(all)) / elapsed.Seconds()
		res.P50us = float64(all[len(all)/2]) / 1e3
		res.P99us = float64(all[len(all)*99/100]) / 1e3
		res.MaxUs = float64(all[len(all)-1]) / 1e3
	}
	return res
}

// load runs the load generator as a child process: `kouple bench-load URL -c C -d D`.
func (r *runner) load(ctx context.Context, url string, c int, d time.Duration) (LoadResult, error) {
	cmd := exec.CommandContext(ctx, r.cfg.Exe, "bench-load", url, "-c", fmt.Sprint(c), "-d", d.String())
	out, err := cmd.Output()
	if err != nil {
		return LoadResult{}, fmt.Errorf("bench-load: %v: %s", err, out)
	}
	var res LoadResult
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("bench-load: %v: %s", err, out)
	}
	if res.Requests == 0 {
		return res, fmt.Errorf("bench-load %s: no request succeeded (%d errors)", url, res.Errors)
	}
	return res, nil
}
