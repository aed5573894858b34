//go:build !wasip1

package sdk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct{ addr, port, want string }{
		{"", "", ":8080"},
		{"127.0.0.1:9000", "", "127.0.0.1:9000"},
		{"", "7000", ":7000"},
		{"127.0.0.1:9000", "7000", "127.0.0.1:9000"},
	} {
		t.Setenv("KOUPLE_ADDR", tc.addr)
		t.Setenv("PORT", tc.port)
		if got := listenAddr(); got != tc.want {
			t.Errorf("KOUPLE_ADDR=%q PORT=%q: %q, want %q", tc.addr, tc.port, got, tc.want)
		}
	}
}

func TestHandleOnce(t *testing.T) {
	defer func() { handler = nil }()
	Handle(http.NotFoundHandler())
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "called twice") {
			t.Errorf("second Handle: %v", r)
		}
	}()
	Handle(http.NotFoundHandler())
}

func TestCallStandaloneSaysWhy(t *testing.T) {
	err := Call(context.Background(), "hello", "greet", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "runs standalone") {
		t.Errorf("err = %v", err)
	}
}

func TestIdentityDefaults(t *testing.T) {
	t.Setenv("KOUPLE_MODULE_NAME", "")
	t.Setenv("KOUPLE_MODULE_VERSION", "2.0.0")
	if Name() != "standalone" || Version() != "2.0.0" {
		t.Errorf("Name, Version = %q, %q", Name(), Version())
	}
}

func TestExportAndStandaloneCall(t *testing.T) {
	Export("double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil })
	Export("boom", func(ctx context.Context, _ struct{}) (int, error) { panic("on purpose") })
	srv := httptest.NewServer(withCalls(http.NotFoundHandler()))
	defer srv.Close()
	t.Setenv("KOUPLE_CALL_URL_OTHER_MOD", srv.URL)
	var out int
	if err := Call(context.Background(), "other-mod", "double", 21, &out); err != nil || out != 42 {
		t.Fatalf("double(21) = %d, %v", out, err)
	}
	err := Call(context.Background(), "other-mod", "boom", nil, nil)
	if ce, ok := err.(*CallError); !ok || !strings.Contains(ce.Message, "method boom panicked: on purpose") {
		t.Errorf("boom: %v", err)
	}
	err = Call(context.Background(), "other-mod", "nope", nil, nil)
	if err == nil || !strings.Contains(err.Error(), `no method "nope": this module exports [boom double]`) {
		t.Errorf("nope: %v", err)
	}
}
