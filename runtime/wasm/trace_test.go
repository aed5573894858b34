package wasm

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestJSONLines: a JSON line with msg and level (slog's JSONHandler) becomes a structured record; any other
// line is a message as before.
func TestJSONLines(t *testing.T) {
	var out bytes.Buffer
	l := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := newLineLogger(l, "stderr")
	w.Write([]byte(`{"time":"2026-01-01T00:00:00Z","level":"WARN","msg":"slow","request_id":"r1","ms":12.5}` + "\n"))
	w.Write([]byte("plain {not json}\n{\"msg\":\"no level\"}\n"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d records:\n%s", len(lines), out.String())
	}
	if l := lines[0]; !strings.Contains(l, "level=WARN msg=slow stream=stderr ms=12.5 request_id=r1") || strings.Contains(l, "2026-01-01") {
		t.Errorf("structured line: %s", l)
	}
	if !strings.Contains(lines[1], `msg="plain {not json}" stream=stderr`) || !strings.Contains(lines[2], `level=INFO msg="{\"msg\":\"no level\"}"`) {
		t.Errorf("plain lines:\n%s\n%s", lines[1], lines[2])
	}
}
