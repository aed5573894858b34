//go:build !wasip1

package sdk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// callPath is where a standalone module serves its exported methods, and where Call sends calls to another
// standalone module.
const callPath = "/.kouple/call/"

// CallRaw is Call with the payloads as bytes, not encoded. In a base (native runtime) the base carries the call.
// Standalone, a call to target goes over HTTP to the
// address in $KOUPLE_CALL_URL_<TARGET> (the name upper-cased, dashes as underscores), such as
// KOUPLE_CALL_URL_HELLO=http://hello:8080.
func CallRaw(ctx context.Context, target, method string, payload []byte) ([]byte, error) {
	if l := currentIn(ctx); l != nil {
		l.mu.Lock()
		call := l.spec.Call
		l.mu.Unlock()
		if call == nil {
			return nil, fmt.Errorf("call %s.%s: module %s is uninstalled", target, method, l.spec.Name)
		}
		return call(ctx, target, method, payload)
	}
	key := "KOUPLE_CALL_URL_" + strings.ToUpper(strings.ReplaceAll(target, "-", "_"))
	base := os.Getenv(key)
	if base == "" {
		return nil, fmt.Errorf("call %s.%s: this program runs standalone, outside a Kouple base, and no address is configured for %q: set %s", target, method, target, key)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+callPath+method, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("call %s.%s: %w", target, method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if t := traceOf(ctx); t.traceparent != "" || t.requestID != "" {
		if t.traceparent != "" {
			req.Header.Set("Traceparent", t.traceparent)
		}
		if t.requestID != "" {
			req.Header.Set("X-Request-Id", t.requestID)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("call %s.%s: %w", target, method, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("call %s.%s: %w", target, method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &CallError{Target: target, Method: method, Message: strings.TrimSpace(string(body))}
	}
	return body, nil
}

// withCalls serves exported methods at POST /.kouple/call/{method} beside the module's own handler.
func withCalls(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, callPath)
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodPost {
			http.Error(w, "calls are POST", http.StatusMethodNotAllowed)
			return
		}
		payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		res, err := Invoke(r.Context(), name, payload)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(res)
	})
}
