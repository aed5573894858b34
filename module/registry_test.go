package module_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/module"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/wasm"
)

func TestMain(m *testing.M) { moduletest.Main(m) }

func newRegistry(t testing.TB) *module.Registry {
	t.Helper()
	w, err := wasm.New(wasm.Config{CacheDir: moduletest.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	reg := module.NewRegistry(map[string]runtime.Runtime{"wasm": w}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		reg.Close(context.Background())
		w.Close(context.Background())
	})
	return reg
}

// router is the smallest gateway: the active version of the module whose context path matches.
func router(reg *module.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mod, _, rest := reg.Route(r.URL.Path)
		if mod == nil {
			http.NotFound(w, r)
			return
		}
		v := mod.Active()
		if v == nil {
			http.Error(w, mod.WhyInactive(), http.StatusServiceUnavailable)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + strings.TrimPrefix(rest, "/")
		v.ServeHTTP(w, r2)
	})
}

func install(t *testing.T, reg *module.Registry, dir, version string, act module.Activation) *module.Version {
	t.Helper()
	v, err := reg.Install(context.Background(), module.InstallRequest{Artifact: moduletest.Build(t, dir, version), Activate: act})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func states(v *module.Version) string {
	var s []string
	for _, r := range v.Records() {
		s = append(s, string(r.State))
	}
	return strings.Join(s, ">")
}

// TestLifecycle: install, call, second version, switch under constant load with zero failed requests, roll
// back, uninstall; the state records are checked at each step.
func TestLifecycle(t *testing.T) {
	reg := newRegistry(t)
	srv := httptest.NewServer(router(reg))
	defer srv.Close()

	v1 := install(t, reg, "examples/hello", "1.0.0", module.ActivateIfNone)
	if got := states(v1); got != "UNRESOLVED>RESOLVED>ACTIVATED" {
		t.Errorf("v1 records: %s", got)
	}
	out, err := reg.Call(context.Background(), "test", "hello", "greeting", nil)
	if err != nil || string(out) != `"Hello from hello 1.0.0!"` {
		t.Fatalf("call greeting: %s, %v", out, err)
	}

	// Constant load from 4 clients through the whole sequence.
	var failures, served atomic.Int64
	var seen sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(srv.URL + "/hello/")
				if err != nil {
					failures.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					t.Logf("failed: %d %s", resp.StatusCode, b)
					continue
				}
				served.Add(1)
				seen.Store(string(b), true)
			}
		})
	}
	waitServed := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			seen.Clear()
			time.Sleep(50 * time.Millisecond)
			if _, ok := seen.Load(want); ok {
				return
			}
		}
		t.Errorf("never served %q", want)
	}
	waitServed("Hello from hello 1.0.0!\n")

	v2 := install(t, reg, "examples/hello", "2.0.0", module.ActivateIfNone)
	if v2.State() != module.Deactivated || v1.State() != module.Activated {
		t.Errorf("after installing v2: v1 %s, v2 %s; want v1 still active", v1.State(), v2.State())
	}
	if _, err := reg.Switch(context.Background(), "hello", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	waitServed("Hello from hello 2.0.0!\n")
	if got := states(v2); got != "UNRESOLVED>RESOLVED>DEACTIVATED>ACTIVATED" {
		t.Errorf("v2 records: %s", got)
	}
	if got := states(v1); got != "UNRESOLVED>RESOLVED>ACTIVATED>DEACTIVATED" {
		t.Errorf("v1 records after the switch: %s", got)
	}
	// Roll back.
	if _, err := reg.Switch(context.Background(), "hello", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	waitServed("Hello from hello 1.0.0!\n")
	if _, err := reg.Switch(context.Background(), "hello", "1.0.0"); err != nil {
		t.Errorf("switching to the active version: %v", err)
	}
	if err := reg.Uninstall(context.Background(), "hello", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	if got := states(v2); !strings.HasSuffix(got, ">STOPPED") {
		t.Errorf("v2 records after uninstall: %s", got)
	}
	waitServed("Hello from hello 1.0.0!\n")
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Errorf("%d of %d requests failed during install, switch, roll back and uninstall", failures.Load(), served.Load()+failures.Load())
	}
	t.Logf("%d requests served, none failed", served.Load())

	if err := reg.Uninstall(context.Background(), "hello", ""); err != nil {
		t.Fatal(err)
	}
	if reg.Module("hello") != nil {
		t.Error("hello still listed after uninstalling every version")
	}
	resp, _ := http.Get(srv.URL + "/hello/")
	if resp.StatusCode != 404 {
		t.Errorf("after uninstall: %d, want 404", resp.StatusCode)
	}
}

func TestRepeatAndReplace(t *testing.T) {
	reg := newRegistry(t)
	install(t, reg, "examples/hello", "1.0.0", module.ActivateIfNone)
	art := moduletest.Build(t, "examples/hello", "1.0.0")
	_, err := reg.Install(context.Background(), module.InstallRequest{Artifact: art})
	if !errors.Is(err, module.ErrRepeat) {
		t.Fatalf("second install of 1.0.0: %v, want ErrRepeat", err)
	}
	v, err := reg.Install(context.Background(), module.InstallRequest{Artifact: art, Replace: true})
	if err != nil || v.State() != module.Activated {
		t.Fatalf("replace: %v %v", v, err)
	}
	_, err = reg.Install(context.Background(), module.InstallRequest{Artifact: art, ExpectName: "hello", ExpectVersion: "9.9.9"})
	if !errors.Is(err, module.ErrInvalid) || !strings.Contains(err.Error(), "the artifact is hello:1.0.0") {
		t.Errorf("mismatched version: %v", err)
	}
}

// TestConcurrentOperations: two operations on one module at once: one wins, the other gets a clear conflict;
// operations on another module are not held up.
func TestConcurrentOperations(t *testing.T) {
	reg := newRegistry(t)
	install(t, reg, "examples/hello", "1.0.0", module.ActivateIfNone)
	a, b := moduletest.Build(t, "examples/hello", "2.0.0"), moduletest.Build(t, "examples/hello", "3.0.0")
	for attempt := 0; attempt < 5; attempt++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, art := range [][]byte{a, b} {
			wg.Go(func() {
				_, errs[i] = reg.Install(context.Background(), module.InstallRequest{Artifact: art, Replace: true})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, module.ErrConflict):
				if !strings.Contains(err.Error(), "module hello: another operation on this module is in progress") {
					t.Errorf("conflict message: %v", err)
				}
			default:
				t.Fatal(err)
			}
		}
		if ok == 1 {
			return // one won, one was refused
		}
		// Both succeeded one after the other: the installs did not overlap; try again.
	}
	t.Error("two installs started together never conflicted in 5 attempts")
}

// TestCallCycle: ping calls pong calls ping ... in-process, without deadlock.
func TestCallCycle(t *testing.T) {
	reg := newRegistry(t)
	install(t, reg, "module/testdata/bounce", "", module.ActivateIfNone)
	install(t, reg, pongDir(t), "", module.ActivateIfNone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := reg.Call(ctx, "test", "ping", "bounce", []byte("5"))
	var path string
	if err == nil {
		err = json.Unmarshal(out, &path)
	}
	if err != nil || path != "ping>pong>ping>pong>ping>pong" {
		t.Fatalf("bounce 5: %s, %v", out, err)
	}
}

// pongDir is the bounce module again, named pong, with ping as its peer.
func pongDir(t *testing.T) string {
	return moduletest.Variant(t, "module/testdata/bounce", "name: pong\nversion: 1.0.0\ncontextPath: /pong\nconfig: {PEER: ping}\n")
}

func TestCallErrors(t *testing.T) {
	reg := newRegistry(t)
	_, err := reg.Call(context.Background(), "test", "nobody", "x", nil)
	if err == nil || err.Error() != "module nobody is not installed in this base" {
		t.Errorf("call to a missing module: %v", err)
	}
	install(t, reg, "examples/hello", "1.0.0", module.ActivateIfNone)
	install(t, reg, "examples/hello", "2.0.0", module.ActivateIfNone)
	reg.Uninstall(context.Background(), "hello", "1.0.0")
	_, err = reg.Call(context.Background(), "test", "hello", "greeting", nil)
	if err == nil || !strings.Contains(err.Error(), "module hello has no active version: 2.0.0 is DEACTIVATED") {
		t.Errorf("call to an inactive module: %v", err)
	}
	reg.Switch(context.Background(), "hello", "2.0.0")
	_, err = reg.Call(context.Background(), "test", "hello", "nope", nil)
	if err == nil || !strings.Contains(err.Error(), `no method "nope": this module exports [greeting]`) {
		t.Errorf("call to a missing method: %v", err)
	}
	_, err = reg.Switch(context.Background(), "hello", "7.0.0")
	if !errors.Is(err, module.ErrNotFound) || !strings.Contains(err.Error(), "installed versions are [2.0.0 (ACTIVATED)]") {
		t.Errorf("switch to a missing version: %v", err)
	}
}

func TestContextPathClaimed(t *testing.T) {
	reg := newRegistry(t)
	install(t, reg, "examples/hello", "1.0.0", module.ActivateIfNone)
	dir := moduletest.Variant(t, "examples/hello", "name: imposter\nversion: 1.0.0\ncontextPath: /hello\n")
	_, err := reg.Install(context.Background(), module.InstallRequest{Artifact: moduletest.Build(t, dir, "")})
	if !errors.Is(err, module.ErrInvalid) || !strings.Contains(err.Error(), "context path /hello, which module hello:1.0.0 already serves") {
		t.Errorf("second module on /hello: %v", err)
	}
	if reg.Module("imposter") != nil {
		t.Error("the refused module is listed")
	}
}
