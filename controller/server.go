package controller

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
)

// Handler serves the controller's HTTP API: POST /heartbeat (a base's BaseStatus), GET /healthz and
// GET /vnodes. With a token, /heartbeat requires `Authorization: Bearer <token>`.
func (c *Controller) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /heartbeat", func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				http.Error(w, "this controller requires a token: start the base with --controller-token or $KOUPLE_CONTROLLER_TOKEN", http.StatusUnauthorized)
				return
			}
		}
		var st BaseStatus
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&st); err != nil {
			http.Error(w, "heartbeat: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := c.Heartbeat(st); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, ErrNotRunning) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"code":"SUCCESS"}`))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /vnodes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.VNodes())
	})
	return mux
}

// LoopbackOnly reports whether addr listens only on loopback; an unspecified host listens everywhere.
func LoopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
