package wasm

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// lineLogger turns a module's output stream into one log record per line.
type lineLogger struct {
	logger *slog.Logger
	stream string
	mu     sync.Mutex
	buf    []byte
}

const maxLine = 16 << 10

func newLineLogger(l *slog.Logger, stream string) *lineLogger {
	return &lineLogger{logger: l, stream: stream}
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLine {
				w.emit(w.buf)
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *lineLogger) emit(line []byte) {
	if len(line) == 0 {
		return
	}
	if logJSONLine(w.logger, line, w.stream) { // a structured line (trace.go)
		return
	}
	w.logger.Info(string(line), "stream", w.stream)
}

// tailWriter logs lines like lineLogger and keeps the last few for error messages, and the first line of a
// Go crash ("fatal error: ...", "panic: ...") however long the goroutine dump after it.
type tailWriter struct {
	*lineLogger
	mu        sync.Mutex
	last      []byte
	cause     []byte // the crash line, possibly still being written
	causeDone bool
}

const tailSize = 2 << 10

func newTailWriter(l *slog.Logger, stream string) *tailWriter {
	return &tailWriter{lineLogger: newLineLogger(l, stream)}
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	rest := p
	if t.cause == nil {
		rest = nil
		for _, prefix := range []string{"fatal error: ", "panic: ", "runtime: "} {
			if i := bytes.Index(p, []byte(prefix)); i >= 0 && (i == 0 || p[i-1] == '\n') {
				rest, t.cause = p[i:], []byte{}
				break
			}
		}
	}
	if rest != nil && !t.causeDone { // Go writes a crash line in pieces: "panic: ", then the value
		line, _, nl := bytes.Cut(rest, []byte("\n"))
		t.cause = append(t.cause, line[:min(len(line), 512-len(t.cause))]...)
		t.causeDone = nl || len(t.cause) >= 512
	}
	t.last = append(t.last, p...)
	if len(t.last) > tailSize {
		t.last = append(t.last[:0], t.last[len(t.last)-tailSize:]...)
	}
	t.mu.Unlock()
	return t.lineLogger.Write(p)
}

func (t *tailWriter) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(strings.ToValidUTF8(string(t.last), "?"))
}

// crash is the first line of a Go crash the module printed, or "".
func (t *tailWriter) crash() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.cause), "?")
}
