//go:build !wasip1

package sdk

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestLoadRegistersPerModule loads a "module" whose code is this package's tests (its module path is the
// SDK's), as the native runtime does with a plugin.
func TestLoadRegistersPerModule(t *testing.T) {
	called := ""
	l := BeginLoad(LoadSpec{Name: "m1", Version: "1.2.3", Path: "github.com/kouple/kouple/sdk", Env: map[string]string{"K": "v"},
		Call: func(ctx context.Context, target, method string, payload []byte) ([]byte, error) {
			called = target + "." + method + " " + string(payload)
			return []byte(`"ok"`), nil
		}})
	h := http.NotFoundHandler()
	Handle(h)
	Export("twice", func(ctx context.Context, n int) (int, error) { return 2 * n, nil })
	EndLoad()
	if Handler() != nil || slices.Contains(Methods(), "twice") {
		t.Fatalf("the load registered globally: %v %v", Handler(), Methods())
	}
	if l.Handler() == nil || len(l.Methods()) != 1 {
		t.Fatalf("the module registered %v %v", l.Handler(), l.Methods())
	}
	if res, err := l.Invoke(context.Background(), "twice", []byte("21")); err != nil || string(res) != "42" {
		t.Fatalf("twice(21) = %s, %v", res, err)
	}
	if Name() != "m1" || Version() != "1.2.3" || Getenv("K") != "v" {
		t.Fatalf("identity %s %s %q", Name(), Version(), Getenv("K"))
	}
	var out string
	if err := Call(context.Background(), "other", "m", 7, &out); err != nil || out != "ok" || called != "other.m 7" {
		t.Fatalf("Call: %q %v %q", out, err, called)
	}
	stopped := make(chan struct{})
	Go(func(ctx context.Context) { <-ctx.Done(); close(stopped) })
	Go(func(ctx context.Context) { panic("stray") }) // logged, not fatal
	if n := l.Stop(2 * time.Second); n != 0 {
		t.Fatalf("%d goroutines still running after Stop", n)
	}
	<-stopped
	if Name() == "m1" || Context().Err() != nil {
		t.Fatalf("after Stop the module is still found: %s", Name())
	}
}
