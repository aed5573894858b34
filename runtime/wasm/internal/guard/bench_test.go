package guard

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// benchGuest runs a Go guest to completion per iteration, uninstrumented
// ("plain") and instrumented at several quanta. Each iteration
// instantiates the module, so the guest's runtime start-up is included in
// both.
func benchGuest(b *testing.B, name string, args ...string) {
	wasm := guest(b, name)
	fueled := instrument(b, wasm)
	run := func(b *testing.B, wasm []byte, quantum int64, opts ...hostOption) {
		h := newHost(b, quantum, opts...)
		c := h.compile(b, wasm)
		var out bytes.Buffer
		cpu := cpuTime()
		for b.Loop() {
			out.Reset()
			if err := h.run(c, &out, args...); err != nil {
				b.Fatalf("%v\n%s", err, out.String())
			}
		}
		// CPU time is steadier than wall time on a shared machine.
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(h.yields.Load())/float64(b.N), "yields/op")
	}
	b.Run("plain", func(b *testing.B) { run(b, wasm, 0) })
	// wazero's own answer: check at loop headers and function entries,
	// leaving the machine code for Go at every one of them.
	b.Run("closeOnContextDone", func(b *testing.B) { run(b, wasm, 0, withCloseOnContextDone) })
	for _, q := range []int64{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("fuel=%d", q), func(b *testing.B) { run(b, fueled, q) })
	}
}

// BenchmarkFib: recursion, fib(32): many calls to a small function.
func BenchmarkFib(b *testing.B) { benchGuest(b, "fib", "32", "0") }

// BenchmarkSieve: tight loops, a sieve of Eratosthenes up to 10M.
func BenchmarkSieve(b *testing.B) { benchGuest(b, "fib", "0", "10000000") }

// BenchmarkJSON: 500 rounds of JSON through a net/http handler, with slog.
func BenchmarkJSON(b *testing.B) { benchGuest(b, "web", "500") }

// BenchmarkInstrument instruments the net/http + encoding/json + slog
// guest (about 6.5 MB).
func BenchmarkInstrument(b *testing.B) {
	wasm := guest(b, "web")
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(wasm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOverhead runs each workload plain and instrumented (quantum
// 100k) alternately, measuring the CPU time of the thread that runs the
// guest, and reports the median of the per-pair ratios: alternating
// cancels most of the drift of a shared machine.
func BenchmarkOverhead(b *testing.B) {
	for _, w := range []struct {
		name, guest string
		args        []string
	}{
		{"fib", "fib", []string{"32", "0"}},
		{"sieve", "fib", []string{"0", "10000000"}},
		{"json", "web", []string{"500"}},
	} {
		b.Run(w.name, func(b *testing.B) {
			wasm := guest(b, w.guest)
			hp, hf := newHost(b, 0), newHost(b, 100_000)
			cp, cf := hp.compile(b, wasm), hf.compile(b, instrument(b, wasm))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var out bytes.Buffer
			measure := func(h *host, c wazero.CompiledModule) time.Duration {
				out.Reset()
				start := threadCPUTime()
				if err := h.run(c, &out, w.args...); err != nil {
					b.Fatal(err)
				}
				return threadCPUTime() - start
			}
			var ratios []float64
			var plain []float64
			for b.Loop() {
				p, f := measure(hp, cp), measure(hf, cf)
				ratios = append(ratios, float64(f)/float64(p))
				plain = append(plain, float64(p))
			}
			b.ReportMetric(median(ratios), "fuel/plain")
			b.ReportMetric(median(plain), "plain-thread-cpu-ns")
		})
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}
