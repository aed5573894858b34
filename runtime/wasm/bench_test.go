package wasm_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/runtime"
)

// BenchmarkServe: requests per second and latency of hello's greeting, served from the sandbox through a real
// HTTP listener, against the same handler built natively as its own process. Run with -benchtime=3s.
//
//	go test ./runtime/wasm -run '^$' -bench Serve -benchtime 3s
//
// cpu-µs/req is the CPU time of this process (the client, and for wasm the proxy and the guest) plus, for
// native, the server process's, per request: on a machine busy with other work it varies less than req/s.
func BenchmarkServe(b *testing.B) {
	_, srv := start(b, "examples/hello", runtime.Spec{})
	native, pid := startNative(b, "examples/hello")
	for _, target := range []struct {
		name, url string
		pid       int // the server's process if not this one, else 0
	}{{"wasm", srv.URL, 0}, {"native", native, pid}} {
		for _, c := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/c%d", target.name, c), func(b *testing.B) {
				cpu0 := selfCPU(b) + processCPU(b, target.pid)
				moduletest.Load(b, target.url+"/", c)
				cpu := selfCPU(b) + processCPU(b, target.pid) - cpu0
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
			})
		}
	}
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the user and system CPU time another process has used; 0 for pid 0.
func processCPU(b *testing.B, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skip("no /proc: ", err)
	}
	// Fields after the command's closing parenthesis; utime and stime are the 12th and 13th, in clock ticks.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / clockTicks)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux.
const clockTicks = 100

// BenchmarkInstallCached: from artifact bytes to the first answered request, with compiled code in the cache.
//
//	go test ./runtime/wasm -run '^$' -bench InstallCached
func BenchmarkInstallCached(b *testing.B) {
	wasm := moduletest.Build(b, "examples/hello", "")
	r := newRuntime(b)
	warm, err := r.Load(context.Background(), runtime.Spec{Artifact: wasm}) // fills the cache
	if err != nil {
		b.Fatal(err)
	}
	warm.Close(context.Background())
	b.ResetTimer()
	for b.Loop() {
		m, err := r.Load(context.Background(), runtime.Spec{Artifact: wasm})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		rec := &recorder{header: http.Header{}}
		req, _ := http.NewRequest("GET", "/", nil)
		m.ServeHTTP(rec, req)
		if rec.code != 200 {
			b.Fatalf("first request: %d", rec.code)
		}
		m.Close(context.Background())
	}
}

// BenchmarkMemory: resident memory of one idle hello module (compiled code and instance), and with 100
// requests waiting in it. RSS is the process's; it is read after a GC, with the module loaded last.
//
//	go test ./runtime/wasm -run '^$' -bench Memory -benchtime 1x
func BenchmarkMemory(b *testing.B) {
	for b.Loop() {
		wasm := moduletest.Build(b, "examples/hello", "")
		r := newRuntime(b)
		// Load once and close, so the comparison below does not count one-time process growth.
		if m, err := r.Load(context.Background(), runtime.Spec{Artifact: wasm}); err == nil {
			m.Close(context.Background())
		}
		before := rss(b)
		m, err := r.Load(context.Background(), runtime.Spec{Artifact: wasm})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		srv := newServer(m)
		defer srv.Close()
		if code, _ := get(b, srv.URL+"/"); code != 200 {
			b.Fatal(code)
		}
		idle := rss(b) - before
		var wg sync.WaitGroup
		client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 100, MaxIdleConnsPerHost: 100}}
		for range 100 {
			wg.Go(func() {
				resp, err := client.Get(srv.URL + "/wait?ms=2000")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		for m.Stats().InFlight < 100 {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		busy := rss(b) - before
		wg.Wait()
		m.Close(context.Background())
		b.ReportMetric(idle/(1<<20), "MB-idle")
		b.ReportMetric(busy/(1<<20), "MB-100waits")
		b.ReportMetric(busy/idle, "x-idle")
	}
}

func rss(b *testing.B) float64 {
	debug.FreeOSMemory()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb * 1024
		}
	}
	b.Skip("no VmRSS")
	return 0
}

type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return len(p), nil
}
func (r *recorder) WriteHeader(code int) { r.code = code }
