package sdk

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"
)

// Trace context: the base's gateway gives every request an X-Request-Id and a W3C traceparent; the SDK puts
// them in the handler's context, Logger writes them into each line, and Call carries them to the callee.

type traceKey struct{}

type trace struct {
	traceparent string // W3C: 00-TRACEID-SPANID-FLAGS
	requestID   string
}

func withTraceValues(ctx context.Context, traceparent, requestID string) context.Context {
	if traceparent == "" && requestID == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, trace{traceparent: traceparent, requestID: requestID})
}

func traceOf(ctx context.Context) trace {
	t, _ := ctx.Value(traceKey{}).(trace)
	return t
}

// RequestID is the id the base gave the request ctx belongs to (X-Request-Id), or "".
func RequestID(ctx context.Context) string { return traceOf(ctx).requestID }

// Traceparent is the W3C traceparent of the request or call ctx belongs to, or "".
func Traceparent(ctx context.Context) string { return traceOf(ctx).traceparent }

// TraceID is the W3C trace id of the request or call ctx belongs to, or "".
func TraceID(ctx context.Context) string {
	parts := strings.Split(traceOf(ctx).traceparent, "-")
	if len(parts) < 4 {
		return ""
	}
	return parts[1]
}

// encodeTrace is the context string of a call (kouple_v1.call_ctx): header lines.
func encodeTrace(t trace) string {
	var b strings.Builder
	if t.traceparent != "" {
		b.WriteString("traceparent: " + t.traceparent + "\n")
	}
	if t.requestID != "" {
		b.WriteString("x-request-id: " + t.requestID + "\n")
	}
	return b.String()
}

func decodeTrace(ctx context.Context, s string) context.Context {
	var tp, id string
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "traceparent":
			tp = strings.TrimSpace(v)
		case "x-request-id":
			id = strings.TrimSpace(v)
		}
	}
	return withTraceValues(ctx, tp, id)
}

// withTrace puts the request's X-Request-Id and traceparent in its context.
func withTrace(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := withTraceValues(r.Context(), r.Header.Get("Traceparent"), r.Header.Get("X-Request-Id"))
		if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}

// Logger is a structured logger for the request or call ctx belongs to: it writes one JSON object per line
// to stderr, with request_id and trace_id, which the base keeps as structured records of this module
// (`kouple logs NAME`). slog's default logger writes the same way inside a base, and adds the ids whenever
// a record is logged with a context (slog.InfoContext).
//
// In a native module the records go straight to the base's log of this module.
func Logger(ctx context.Context) *slog.Logger {
	l := moduleLogger()
	if l == nil {
		l = slog.New(logHandler(os.Stderr))
	}
	var attrs []any
	if id := RequestID(ctx); id != "" {
		attrs = append(attrs, "request_id", id)
	}
	if id := TraceID(ctx); id != "" {
		attrs = append(attrs, "trace_id", id)
	}
	return l.With(attrs...)
}

func logHandler(w io.Writer) slog.Handler {
	return ctxHandler{slog.NewJSONHandler(w, nil)}
}

// ctxHandler adds the request and trace ids of a record's context.
type ctxHandler struct{ slog.Handler }

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if t := traceOf(ctx); t != (trace{}) {
			r = r.Clone()
			if t.requestID != "" {
				r.AddAttrs(slog.String("request_id", t.requestID))
			}
			if id := TraceID(ctx); id != "" {
				r.AddAttrs(slog.String("trace_id", id))
			}
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h ctxHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(as)}
}
func (h ctxHandler) WithGroup(n string) slog.Handler { return ctxHandler{h.Handler.WithGroup(n)} }

// LogRequests wraps h so that every request logs one structured line when it ends: method, path, status,
// duration, with the request and trace ids.
func LogRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		Logger(r.Context()).Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"ms", float64(time.Since(began).Microseconds())/1000)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (flushing, deadlines, hijacking).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes when the underlying writer can, for streaming handlers.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
