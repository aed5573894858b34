package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestDefaultSlogRecognised: Serve replaces slog's default only while it is Go's own; it recognises it by
// its type's name, which this test pins.
func TestDefaultSlogRecognised(t *testing.T) {
	if n := fmt.Sprintf("%T", slog.Default().Handler()); n != "*slog.defaultHandler" {
		t.Errorf("slog's default handler is %s: update serve_wasip1.go", n)
	}
}

// TestTraceInContext: the request's X-Request-Id and traceparent reach the handler's context and every line
// its logger writes; a call's context string carries them on.
func TestTraceInContext(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	var buf bytes.Buffer
	h := withTrace(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slog.New(logHandler(&buf)).InfoContext(r.Context(), "hi", "k", "v")
		if got := decodeTrace(r.Context(), encodeTrace(traceOf(r.Context()))); TraceID(got) != "0af7651916cd43dd8448eb211c80319c" || RequestID(got) != "r-1" {
			t.Errorf("context string round trip lost the trace: %q", encodeTrace(traceOf(r.Context())))
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Traceparent", tp)
	req.Header.Set("X-Request-Id", "r-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	if line["msg"] != "hi" || line["level"] != "INFO" || line["request_id"] != "r-1" || line["trace_id"] != "0af7651916cd43dd8448eb211c80319c" || line["k"] != "v" {
		t.Errorf("log line %v", line)
	}
}
