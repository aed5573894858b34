package native_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/native"
	"github.com/kouple/kouple/services"
)

// BenchmarkServe: hello's greeting served by a native module through a real HTTP listener; compare with
// runtime/wasm's BenchmarkServe (same handler, same client).
//
//	go test ./runtime/native -run '^$' -bench Serve -benchtime 3s
func BenchmarkServe(b *testing.B) {
	p := mustBuild(b, "examples/hello", "7.0.0")
	data, _ := os.ReadFile(p)
	info, err := artifact.ReadPlugin(data)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := native.New(native.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	m, err := rt.Load(context.Background(), runtime.Spec{Manifest: info.Manifest, Artifact: data})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(m)
	defer srv.Close()
	for _, c := range []int{1, 32} {
		b.Run(fmt.Sprintf("native-plugin/c%d", c), func(b *testing.B) { moduletest.Load(b, srv.URL+"/", c) })
	}
}

// BenchmarkCall: calls between native modules and from the base, with Go values and with JSON, against the
// same round trip over loopback HTTP with keep-alive.
//
//	go test ./runtime/native -run '^$' -bench Call -benchtime 2s
func BenchmarkCall(b *testing.B) {
	valuer := mustBuild(b, "runtime/native/testdata/valuer", "1.0.0")
	shaper := mustBuild(b, "runtime/native/testdata/shaper", "1.0.0")
	bs := newBaseWith(b, base.Config{})
	for _, p := range []string{valuer, shaper} {
		if _, err := bs.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + p}); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"value", "json"} {
		b.Run("module-to-module/"+mode, func(b *testing.B) {
			// One request makes all b.N calls inside valuer; its own cost is spread over them.
			resp, err := http.Get(fmt.Sprintf("%s/valuer/loop?target=shaper&mode=%s&n=%d", bs.GatewayURL(), mode, b.N))
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
	in := []byte("payload")
	b.Run("base-to-module/value", func(b *testing.B) {
		for b.Loop() {
			if _, err := services.CallModule[[]byte](context.Background(), bs.Registry(), "shaper", "same", in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("base-to-module/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := bs.Registry().Call(context.Background(), "base", "shaper", "same", []byte(`"cGF5bG9hZA=="`)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("loopback-http", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) }))
		defer srv.Close()
		for b.Loop() {
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`"cGF5bG9hZA=="`))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// TestMeasureModules loads N versions of hello (KOUPLE_MEASURE=N) and reports, per module, the time to open
// the plugin and the anonymous and file-backed resident memory it added (after a GC and one request each).
//
//	KOUPLE_MEASURE=8 go test ./runtime/native -run MeasureModules -v -count=1
func TestMeasureModules(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KOUPLE_MEASURE"))
	if n == 0 {
		t.Skip("set KOUPLE_MEASURE=N to measure N native modules")
	}
	var arts []string
	for i := range n {
		arts = append(arts, mustBuild(t, "examples/hello", fmt.Sprintf("100.%d", i)))
	}
	rt, err := native.New(native.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The first plugin brings the packages the test binary lacks (net/http's server side...): measure after it.
	var mods []runtime.Module
	var opens, loads []time.Duration
	anon0, file0 := rss(t)
	for i, path := range arts {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := artifact.ReadPlugin(data)
		began := time.Now()
		m, err := rt.Load(context.Background(), runtime.Spec{Manifest: info.Manifest, Artifact: data})
		if err != nil {
			t.Fatal(err)
		}
		loads = append(loads, time.Since(began))
		opens = append(opens, m.(*native.Module).OpenTook())
		data, info = nil, nil
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		mods = append(mods, m)
		if i == 0 {
			anon0, file0 = rss(t)
		}
	}
	anon, file := rss(t)
	per := float64(n - 1)
	t.Logf("%d modules: plugin.Open with init: first %s, then median %s; whole Load (checks, sha256 and write of the file, open): median %s",
		n, opens[0].Round(time.Microsecond), median(opens[1:]).Round(time.Microsecond), median(loads[1:]).Round(time.Microsecond))
	t.Logf("per module after the first: %+.2f MB anonymous, %+.2f MB file-backed RSS", (float64(anon)-float64(anon0))/per/1e6, (float64(file)-float64(file0))/per/1e6)
	for _, m := range mods {
		m.Close(context.Background())
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// rss is the process's anonymous and file-backed resident memory, in bytes, after a GC.
func rss(t *testing.T) (anon, file uint64) {
	goruntime.GC()
	debug.FreeOSMemory()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "RssAnon:":
			anon = v * 1024
		case "RssFile:":
			file = v * 1024
		}
	}
	return
}
