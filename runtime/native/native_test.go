package native_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/builder"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/native"
	"github.com/kouple/kouple/services"
)

// Plugins are built with this test binary's own build information (toolchain, -race, -trimpath, dependency
// versions), so they load into it; each (module, version, flags) is built once per test process.
var (
	buildMu  sync.Mutex
	outDir   string
	built    = map[string]string{}
	buildErr = map[string]error{}
)

func TestMain(m *testing.M) {
	var err error
	outDir, err = os.MkdirTemp("", "kouple-native-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(outDir)
	os.Exit(code)
}

func root() string { return filepath.Join("..", "..") }

// build builds the module in dir (relative to the repository root) as a native artifact and returns its path.
func build(t testing.TB, dir, version string, bi *artifact.BuildInfo) (string, error) {
	t.Helper()
	key := fmt.Sprintf("%s@%s@%p", dir, version, bi)
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[key]; ok {
		return p, buildErr[key]
	}
	out := filepath.Join(outDir, fmt.Sprintf("%d.so", len(built)))
	began := time.Now()
	_, err := builder.Build(context.Background(), filepath.Join(root(), dir), builder.Options{Version: version, Runtime: "native", Out: out, Base: bi})
	t.Logf("built %s %s natively in %s", dir, version, time.Since(began).Round(time.Millisecond))
	built[key], buildErr[key] = out, err
	return out, err
}

func mustBuild(t testing.TB, dir, version string) string {
	t.Helper()
	p, err := build(t, dir, version, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newBase(t *testing.T) *base.Base { return newBaseWith(t, base.Config{}) }

func newBaseWith(t testing.TB, cfg base.Config) *base.Base {
	t.Helper()
	cfg.HTTPAddr, cfg.AgentAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := base.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

func install(t *testing.T, b *base.Base, path string, activate bool) error {
	t.Helper()
	_, err := b.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path, Activate: activate})
	return err
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestNativeInBase installs, calls, installs a second version, switches, rolls back and uninstalls native
// modules in a real base: the examples, built with only the runtime changed.
func TestNativeInBase(t *testing.T) {
	hello1 := mustBuild(t, "examples/hello", "1.0.0")
	hello2 := mustBuild(t, "examples/hello", "2.0.0")
	greeter := mustBuild(t, "examples/greeter", "1.0.0")
	notes := mustBuild(t, "examples/notes", "1.0.0")
	b := newBase(t)
	gw := b.GatewayURL()
	for _, p := range []string{hello1, greeter, notes} {
		if err := install(t, b, p, false); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := get(t, gw+"/hello/"); code != 200 || body != "Hello from hello 1.0.0!\n" {
		t.Fatalf("hello: %d %q", code, body)
	}
	if code, body := get(t, gw+"/greeter/"); code != 200 || body != "greeter 1.0.0 relays: Hello from hello 1.0.0!\n" {
		t.Fatalf("greeter: %d %q", code, body)
	}
	if code, body := get(t, gw+"/hello/events?n=3&ms=1"); code != 200 || !strings.Contains(body, "data: tick 2 from hello 1.0.0") {
		t.Fatalf("hello events (streamed through Flush): %d %q", code, body)
	}
	resp, err := http.Post(gw+"/notes/items", "application/json", strings.NewReader(`{"text":"native"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("notes create: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, body := get(t, gw+"/notes/items"); code != 200 || !strings.Contains(body, `"text":"native"`) {
		t.Fatalf("notes list: %d %q", code, body)
	}

	// A second version beside the first, activated: both are loaded, each with its own module path.
	if err := install(t, b, hello2, true); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, gw+"/greeter/"); body != "greeter 1.0.0 relays: Hello from hello 2.0.0!\n" {
		t.Fatalf("after switch to 2.0.0: %q", body)
	}
	if _, err := b.Switch(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, gw+"/hello/"); body != "Hello from hello 1.0.0!\n" {
		t.Fatalf("after rollback: %q", body)
	}
	if err := b.Uninstall(context.Background(), "hello", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, gw+"/hello/"); body != "Hello from hello 1.0.0!\n" {
		t.Fatalf("after uninstall of 2.0.0: %q", body)
	}
	h, _ := json.Marshal(b.Health(context.Background()))
	var nat struct {
		Native map[string]any `json:"native"`
	}
	json.Unmarshal(h, &nat)
	// Plugins are the process's: other tests' count too.
	if nat.Native["uninstalledPlugins"].(float64) < 1 || nat.Native["loadedPlugins"].(float64) < 3 || nat.Native["uninstalledCodeBytes"].(float64) < 1e6 {
		t.Errorf("health native: %v", nat.Native)
	}
	// The code of hello 2.0.0 is still in the process: installing it again is refused with the reason.
	err = install(t, b, hello2, false)
	if err == nil || !strings.Contains(err.Error(), "Go cannot unload a plugin") {
		t.Errorf("reinstall of an uninstalled native version: %v", err)
	}
	// Replacing the installed hello 1.0.0 with itself is refused before it is stopped: it keeps serving.
	_, err = b.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + hello1, Replace: true})
	if err == nil || !strings.Contains(err.Error(), "is already loaded, installed") {
		t.Errorf("replace of an installed native version: %v", err)
	}
	if _, body := get(t, gw+"/hello/"); body != "Hello from hello 1.0.0!\n" {
		t.Fatalf("after a refused replace: %q", body)
	}
}

// TestGoValues: between native modules, and between them and the base, a call's argument and answer are the
// caller's and callee's own Go values, nothing encoded or copied — when the types agree; a value of another type
// still arrives, through JSON.
func TestGoValues(t *testing.T) {
	valuer := mustBuild(t, "runtime/native/testdata/valuer", "1.0.0")
	shaper := mustBuild(t, "runtime/native/testdata/shaper", "1.0.0")
	b := newBaseWith(t, base.Config{Services: services.Policy{Allow: []string{"valuer=service:mem"}}})
	services.Method(b.Service("mem"), "same", func(ctx context.Context, caller string, in []byte) ([]byte, error) { return in, nil })
	for _, p := range []string{valuer, shaper} {
		if err := install(t, b, p, false); err != nil {
			t.Fatal(err)
		}
	}
	gw := b.GatewayURL()
	for _, c := range []struct{ path, want string }{
		{"/valuer/same?target=mem", "payload shared=true"},    // module -> base service
		{"/valuer/same?target=shaper", "payload shared=true"}, // module -> another module
		{"/valuer/grow?target=valuer", "sent n=2 got n=2"},    // the callee changed the caller's map
		{"/valuer/shape?target=shaper", "sum=5"},              // types of two modules: through JSON
		{"/valuer/kv?v=abc", "abc true"},                      // the kv service, as Go values
		{"/valuer/same?target=nosuch", "module nosuch is not installed in this base"},
	} {
		if _, body := get(t, gw+c.path); !strings.Contains(body, c.want) {
			t.Errorf("%s: %q, want %q", c.path, body, c.want)
		}
	}
	// base -> module
	in := []byte("from the base")
	out, err := services.CallModule[[]byte](context.Background(), b.Registry(), "valuer", "same", in)
	if err != nil || unsafe.SliceData(out) != unsafe.SliceData(in) {
		t.Errorf("base -> module: %q %v, shared=%v", out, err, unsafe.SliceData(out) == unsafe.SliceData(in))
	}
	// A value the method does not take, from the base: through JSON, as for a wasm module.
	sum, err := services.CallModule[map[string]int](context.Background(), b.Registry(), "shaper", "shape", map[string]int{"X": 4, "Y": 5})
	if err != nil || sum["Sum"] != 9 {
		t.Errorf("base -> module through JSON: %v %v", sum, err)
	}
}

func loadFaulty(t *testing.T) (runtime.Module, *native.Runtime) {
	t.Helper()
	p := mustBuild(t, "runtime/native/testdata/faulty", "1.0.0")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	info, err := artifact.ReadPlugin(data)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := native.New(native.Config{Dir: t.TempDir(), StopWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	m, err := rt.Load(context.Background(), runtime.Spec{Manifest: info.Manifest, Artifact: data, Env: map[string]string{"EXTRA": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded in %s", time.Since(began))
	return m, rt
}

// TestFaults: a panic in a handler or a method is that request's or call's error; goroutines started with
// sdk.Go end at uninstall, and one that ignores its context is reported.
func TestFaults(t *testing.T) {
	m, rt := loadFaulty(t)
	serve := func(path string) (int, string) {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code, w.Body.String()
	}
	if code, body := serve("/who"); code != 200 || body != "faulty 1.0.0 hi" {
		t.Errorf("/who: %d %q", code, body)
	}
	if code, body := serve("/panic"); code != 500 || !strings.Contains(body, "handler panicked: on purpose") {
		t.Errorf("/panic: %d %q", code, body)
	}
	_, err := m.Call(context.Background(), "boom", nil)
	if ce, ok := errors.AsType[*runtime.CallError](err); !ok || !strings.Contains(ce.Message, "method boom panicked: method on purpose") {
		t.Errorf("boom: %v", err)
	}
	if res, err := m.Call(context.Background(), "echo", []byte(`"x"`)); err != nil || string(res) != `"faulty:x"` {
		t.Errorf("echo: %s %v", res, err)
	}
	if s := m.Stats(); s.Errors != 1 || s.Requests != 4 || !strings.Contains(s.LastFailure, "on purpose") {
		t.Errorf("stats %+v", s)
	}
	held0, _, _, _ := rt.Held()
	if err := m.Close(context.Background()); err != nil {
		t.Errorf("close with only well-behaved goroutines: %v", err)
	}
	if code, _ := serve("/who"); code != 503 {
		t.Errorf("after close: %d", code)
	}
	if held, heldBytes, _, _ := rt.Held(); held != held0+1 || heldBytes < 1e6 {
		t.Errorf("held %d (%d bytes), before the close %d", held, heldBytes, held0)
	}
}

func loadFile(t *testing.T, path string) error {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := artifact.ReadPlugin(data)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := native.New(native.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rt.Load(context.Background(), runtime.Spec{Manifest: info.Manifest, Artifact: data})
	if err == nil {
		m.Close(context.Background())
	}
	return err
}

// TestRefused: plugins that cannot load into this base are refused with the reason, by the build, by the
// runtime's checks before opening, or by Go's plugin loader — never with a crash.
func TestRefused(t *testing.T) {
	self, err := artifact.SelfBuildInfo()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("dependency version at build", func(t *testing.T) {
		// A test binary carries no dependency list; a base built with go build does. Give it the base's yaml.
		withDeps := *self
		withDeps.Deps = append(slices.Clone(self.Deps), artifact.Dep{Path: "go.yaml.in/yaml/v3", Version: "v3.0.6"})
		_, err := build(t, "runtime/native/testdata/oldyaml", "1.0.0", &withDeps)
		if err == nil || !strings.Contains(err.Error(), "go.yaml.in/yaml/v3: the module needs v3.0.4, but the base has v3.0.6") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("dependency version at install, by the loader", func(t *testing.T) {
		p, err := build(t, "runtime/native/testdata/oldyaml", "1.0.0", nil)
		if err != nil {
			t.Fatal(err)
		}
		err = loadFile(t, p)
		if err == nil || !strings.Contains(err.Error(), "the Go plugin loader refused it") || !strings.Contains(err.Error(), "different version of package go.yaml.in/yaml/v3") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("flags", func(t *testing.T) {
		other := *self
		other.Settings = maps.Clone(self.Settings)
		other.Settings["-tags"] = "kouple_other"
		p, err := build(t, "examples/hello", "9.0.0", &other)
		if err != nil {
			t.Fatal(err)
		}
		err = loadFile(t, p)
		if err == nil || !strings.Contains(err.Error(), `-tags: the plugin "kouple_other", the base ""`) || !strings.Contains(err.Error(), "built differently from the base") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestInitPanic: a plugin whose init panics is refused with the panic; opening its file again is refused at
// once (Go would block forever), without holding the load lock.
func TestInitPanic(t *testing.T) {
	p := mustBuild(t, "runtime/native/testdata/badinit", "1.0.0")
	data, _ := os.ReadFile(p)
	info, err := artifact.ReadPlugin(data)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := native.New(native.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.Load(context.Background(), runtime.Spec{Manifest: info.Manifest, Artifact: data})
	if err == nil || !strings.Contains(err.Error(), "its init panicked: badinit refuses to start") {
		t.Fatalf("first load: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := rt.Load(context.Background(), runtime.Spec{Manifest: info.Manifest, Artifact: data})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cannot be opened again: ") {
			t.Errorf("second load: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second load of a plugin whose init panicked hangs")
	}
}
