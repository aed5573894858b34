//go:build !wasip1

package sdk

import (
	"cmp"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
)

// Serve, in a program built natively, serves the registered handler on its own port: the address of a parsed
// flag named "addr" if the program defines one, else $KOUPLE_ADDR, else :$PORT, else :8080. It exits the
// program if the listener fails.
func Serve() {
	h := withTrace(withCalls(mustHandler()))
	addr := listenAddr()
	slog.Info("serving standalone", "addr", addr)
	err := http.ListenAndServe(addr, h)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Error("serve failed", "addr", addr, "err", err)
		os.Exit(1)
	}
}

func listenAddr() string {
	if f := flag.Lookup("addr"); f != nil && flag.Parsed() && f.Value.String() != "" {
		return f.Value.String()
	}
	if port := os.Getenv("PORT"); port != "" && os.Getenv("KOUPLE_ADDR") == "" {
		return ":" + port
	}
	return cmp.Or(os.Getenv("KOUPLE_ADDR"), ":8080")
}
