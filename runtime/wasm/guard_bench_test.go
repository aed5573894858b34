package wasm_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/wasm"
)

// BenchmarkNeighbour: hello's latency while runaway computes in bursts of ~0.3 s, with the fuel guard and
// without it. Unguarded, a computing guest holds up every stop-the-world GC of the process, and so every
// request of every module; guarded, it yields each quantum.
//
//	go test ./runtime/wasm -run '^$' -bench Neighbour -benchtime 300x
func BenchmarkNeighbour(b *testing.B) {
	for _, guarded := range []bool{true, false} {
		name := "guard"
		if !guarded {
			name = "noguard"
		}
		b.Run(name, func(b *testing.B) {
			r, err := wasm.New(wasm.Config{CacheDir: moduletest.CacheDir(), NoGuard: !guarded, CPUBudget: time.Minute,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			hello := loadStarted(b, r, "examples/hello")
			runaway := loadStarted(b, r, "examples/runaway")
			helloSrv, runawaySrv := newServer(hello), newServer(runaway)
			defer helloSrv.Close()
			defer runawaySrv.Close()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { // bursts of computing, one after the other
				for {
					select {
					case <-stop:
						return
					default:
					}
					get(b, runawaySrv.URL+"/compute?n=30000000")
				}
			})
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if code, _ := get(b, helloSrv.URL+"/"); code != 200 {
					b.Fatal(code)
				}
				lat = append(lat, time.Since(t0))
				garbage = make([]byte, 64<<10) // the host allocates, so its GC runs
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			hello.Close(context.Background())
			runaway.Close(context.Background())
		})
	}
}

var garbage []byte

// BenchmarkStopPastBudget: how long after its CPU budget (runaway's manifest: 1 s) a spinning instance is
// stopped: the request's duration minus the budget.
//
//	go test ./runtime/wasm -run '^$' -bench StopPastBudget -benchtime 5x
func BenchmarkStopPastBudget(b *testing.B) {
	const budget = time.Second // examples/runaway/kouple.yaml
	r, err := wasm.New(wasm.Config{CacheDir: moduletest.CacheDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	m := loadStarted(b, r, "examples/runaway")
	defer m.Close(context.Background())
	srv := newServer(m)
	defer srv.Close()
	var worst time.Duration
	var total time.Duration
	for range b.N {
		for { // wait for a serving instance
			if code, _ := get(b, srv.URL+"/ok"); code == 200 {
				break
			}
		}
		t0 := time.Now()
		code, body := get(b, srv.URL+"/spin")
		over := time.Since(t0) - budget
		if code != 502 || !strings.Contains(body, "past its CPU budget") {
			b.Fatalf("spin: %d %s", code, body)
		}
		total += over
		worst = max(worst, over)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-past-budget")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-past-budget-worst")
}

func loadStarted(b *testing.B, r *wasm.Runtime, dir string) runtime.Module {
	b.Helper()
	m, err := r.Load(context.Background(), runtime.Spec{Artifact: moduletest.Build(b, dir, "")})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m
}
