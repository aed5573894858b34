// Package observe is what lets every log line, metric and span of a base know its module: W3C trace context
// and request ids carried in a context.Context (trace.go), and the log hub — a bounded ring of structured
// records per module version, fed by a slog.Handler, followed by subscription and optionally written to
// rotated files (logs.go). It depends on the standard library only, so runtimes may import it.
package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Trace is the trace context of one request: a W3C trace id and the current span id
// (https://www.w3.org/TR/trace-context/), and the request id the gateway gave the request.
type Trace struct {
	TraceID   string // 32 lower-case hex digits
	SpanID    string // 16 lower-case hex digits
	Flags     string // 2 hex digits; "01" is sampled
	RequestID string
}

// Header names.
const (
	HeaderTraceparent = "Traceparent"
	HeaderRequestID   = "X-Request-Id"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewTrace starts a trace with a fresh trace id and span id.
func NewTrace() Trace { return Trace{TraceID: randHex(16), SpanID: randHex(8), Flags: "01"} }

// NewRequestID makes a request id: 16 hex digits.
func NewRequestID() string { return randHex(8) }

// Child continues the trace with a new span id.
func (t Trace) Child() Trace {
	t.SpanID = randHex(8)
	return t
}

// Valid says whether t has a usable trace id and span id.
func (t Trace) Valid() bool { return isHex(t.TraceID, 32) && isHex(t.SpanID, 16) }

// Traceparent is t as a W3C traceparent header value.
func (t Trace) Traceparent() string {
	if !t.Valid() {
		return ""
	}
	flags := t.Flags
	if !isHex(flags, 2) {
		flags = "01"
	}
	return "00-" + t.TraceID + "-" + t.SpanID + "-" + flags
}

// ParseTraceparent reads a W3C traceparent header value (version 00, or a later version's first four fields).
func ParseTraceparent(s string) (Trace, bool) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) < 4 || !isHex(parts[0], 2) || parts[0] == "ff" || parts[0] == "00" && len(parts) != 4 {
		return Trace{}, false
	}
	t := Trace{TraceID: parts[1], SpanID: parts[2], Flags: parts[3]}
	if !t.Valid() || !isHex(t.Flags, 2) || t.TraceID == strings.Repeat("0", 32) || t.SpanID == strings.Repeat("0", 16) {
		return Trace{}, false
	}
	return t, true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Encode is t as the context string of a call (docs/abi.md, kouple_v1.call_ctx): HTTP-style header lines,
// "traceparent: VALUE\nx-request-id: VALUE".
func (t Trace) Encode() string {
	var b strings.Builder
	if tp := t.Traceparent(); tp != "" {
		b.WriteString("traceparent: " + tp + "\n")
	}
	if t.RequestID != "" {
		b.WriteString("x-request-id: " + t.RequestID + "\n")
	}
	return b.String()
}

// Decode reads a call's context string; unknown lines are ignored.
func Decode(s string) Trace {
	var t Trace
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "traceparent":
			if p, ok := ParseTraceparent(v); ok {
				p.RequestID = t.RequestID
				t = p
			}
		case "x-request-id":
			t.RequestID = cleanID(v)
		}
	}
	return t
}

// cleanID bounds a request id taken from outside: at most 128 printable ASCII characters.
func cleanID(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return -1
		}
		return r
	}, s)
}

// CleanRequestID is a request id from a client's header, bounded and printable, or "".
func CleanRequestID(s string) string { return cleanID(s) }

type traceKey struct{}

// WithTrace returns ctx carrying t.
func WithTrace(ctx context.Context, t Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFrom is the trace ctx carries, if any.
func TraceFrom(ctx context.Context) (Trace, bool) {
	t, ok := ctx.Value(traceKey{}).(Trace)
	return t, ok
}
