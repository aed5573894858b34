package module_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kouple/kouple/module"
	"github.com/kouple/kouple/observe"
	"github.com/kouple/kouple/runtime"
)

// TestTraceReachesService: a module's call made while serving a request carries the request's trace id and
// request id (kouple_v1.call_ctx) through the registry to a base service.
func TestTraceReachesService(t *testing.T) {
	reg := newRegistry(t)
	seen := make(chan observe.Trace, 1)
	reg.RegisterService("hello", runtime.HostFunc(func(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error) {
		tr, _ := observe.TraceFrom(ctx)
		seen <- tr
		return []byte(`"hi from the base"`), nil
	}))
	v := install(t, reg, "examples/greeter", "1.0.0", module.ActivateIfNone)
	want := observe.NewTrace()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Traceparent", want.Traceparent())
	req.Header.Set("X-Request-Id", "req-42")
	rec := httptest.NewRecorder()
	v.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "hi from the base") {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Body)
	}
	got := <-seen
	if got.TraceID != want.TraceID || got.RequestID != "req-42" {
		t.Errorf("the service saw trace %+v, want trace id %s and request id req-42", got, want.TraceID)
	}
}
