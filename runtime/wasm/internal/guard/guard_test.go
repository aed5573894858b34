package guard

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
)

// sameOutput runs a guest plain and instrumented and compares the output.
func sameOutput(t *testing.T, name string, args ...string) {
	wasm := guest(t, name)
	fueled := instrument(t, wasm)
	t.Logf("%s: %d bytes, instrumented %d bytes (+%.2f%%)", name, len(wasm), len(fueled),
		100*float64(len(fueled)-len(wasm))/float64(len(wasm)))

	plain := newHost(t, 0)
	var want bytes.Buffer
	if err := plain.run(plain.compile(t, wasm), &want, args...); err != nil {
		t.Fatalf("plain run: %v\n%s", err, want.String())
	}

	h := newHost(t, 100_000)
	var got bytes.Buffer
	if err := h.run(h.compile(t, fueled), &got, args...); err != nil {
		t.Fatalf("instrumented run: %v\n%s", err, got.String())
	}
	if got.String() != want.String() {
		t.Errorf("output differs:\ninstrumented:\n%s\nplain:\n%s", got.String(), want.String())
	}
	if h.yields.Load() == 0 {
		t.Error("yield was never called")
	}
	t.Logf("%s: %d yields; output %q", name, h.yields.Load(), firstLine(want.String()))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestFibOutputUnchanged(t *testing.T) {
	sameOutput(t, "fib", "25", "200000")
}

func TestWebOutputUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("large module; slow to compile")
	}
	sameOutput(t, "web", "300")
}

// signalWriter signals once its contents contain want.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func TestSpinningGuestIsStoppableAndLetsGCRun(t *testing.T) {
	wasm := instrument(t, guest(t, "spin"))
	h := newHost(t, 100_000)
	c := h.compile(t, wasm)

	start := time.Now()
	runtime.GC()
	idleGC := time.Since(start)

	out := &signalWriter{want: "spinning\n", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		cfg := newModuleConfig(out)
		mod, err := h.rt.InstantiateModule(t.Context(), c, cfg)
		if mod != nil {
			mod.Close(t.Context())
		}
		done <- err
	}()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("guest ended before spinning: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("guest did not start spinning")
	}
	time.Sleep(50 * time.Millisecond) // let it spin for a while

	// A stop-the-world GC must not wait for the guest forever.
	gcDone := make(chan time.Duration, 1)
	stopping := gcStopping()
	go func() {
		start := time.Now()
		runtime.GC()
		gcDone <- time.Since(start)
	}()
	select {
	case d := <-gcDone:
		t.Logf("runtime.GC() while the guest spins took %v (%v before it started); "+
			"longest time to stop the world: %v", d, idleGC, stopping())
	case <-time.After(2 * time.Second):
		t.Fatal("runtime.GC() blocked for 2s by a spinning guest")
	}

	before := h.yields.Load()
	stopAt := time.Now()
	h.stop.Store(true)
	select {
	case err := <-done:
		t.Logf("stopped %v after the host decided; %d yields before", time.Since(stopAt), before)
		if !errors.Is(err, errStop) {
			t.Fatalf("guest ended with %v, want %v", err, errStop)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("spinning guest did not stop")
	}
	if n := h.yieldsAfterStop.Load(); n != 1 {
		t.Errorf("%d yields saw the stop request, want 1", n)
	}
	if before == 0 {
		t.Error("yield was never called while spinning")
	}
}

func TestDeterministic(t *testing.T) {
	wasm := guest(t, "fib")
	a, b := instrument(t, wasm), instrument(t, wasm)
	if !bytes.Equal(a, b) {
		t.Fatal("instrumenting the same module twice gave different bytes")
	}
}

func TestInstrumentTwiceFails(t *testing.T) {
	_, err := Instrument(instrument(t, guest(t, "fib")))
	if !errors.Is(err, ErrAlreadyInstrumented) {
		t.Fatalf("got %v, want ErrAlreadyInstrumented", err)
	}
	t.Log(err)
}

// gcStopping starts watching how long GCs take to stop the world; the
// returned func gives the upper bound of the slowest bucket since.
func gcStopping() func() time.Duration {
	const name = "/sched/pauses/stopping/gc:seconds"
	read := func() *metrics.Float64Histogram {
		s := []metrics.Sample{{Name: name}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindFloat64Histogram {
			return nil
		}
		return s[0].Value.Float64Histogram()
	}
	before := read()
	return func() time.Duration {
		after := read()
		if before == nil || after == nil {
			return -1
		}
		for i := len(after.Counts) - 1; i >= 0; i-- {
			if after.Counts[i] > before.Counts[i] {
				upper := after.Buckets[i+1]
				if math.IsInf(upper, 1) {
					upper = after.Buckets[i]
				}
				return time.Duration(upper * float64(time.Second))
			}
		}
		return 0
	}
}
