// Package sdk is what a Kouple module is written against. A module registers its HTTP handler (and, later, the
// methods it exports) in init() and calls Serve in main:
//
//	func init() { sdk.Handle(newMux()) }
//	func main() { sdk.Serve() }
//
// The same source then builds three ways: as a WebAssembly command (GOOS=wasip1) that serves on the listener its
// base hands it; as a Go plugin, where main never runs and the base takes what init registered; and as an
// ordinary program that listens on a port by itself, a standalone microservice.
package sdk

import (
	"net/http"
	"os"
	"sync"
)

// ABIVersion is the module ABI version this SDK speaks (docs/abi.md in the Kouple repository).
const ABIVersion = 1

var (
	mu      sync.Mutex
	handler http.Handler
)

// Handle registers the module's HTTP handler. Call it once, from init(). The handler sees paths below the
// module's context path: the base strips the prefix and sets X-Forwarded-Prefix.
func Handle(h http.Handler) {
	if h == nil {
		panic("sdk.Handle: nil handler")
	}
	if l := registering(); l != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.handler != nil {
			panic("sdk.Handle: called twice: register one handler (an http.ServeMux can hold many routes)")
		}
		l.handler = h
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if handler != nil {
		panic("sdk.Handle: called twice: register one handler (an http.ServeMux can hold many routes)")
	}
	handler = h
}

// Handler returns the handler registered outside a native base (standalone, wasm), or nil.
func Handler() http.Handler {
	mu.Lock()
	defer mu.Unlock()
	return handler
}

func mustHandler() http.Handler {
	h := Handler()
	if h == nil {
		panic("sdk.Serve: no handler registered: call sdk.Handle from init()")
	}
	return h
}

// Name is the module's name, as its base knows it ("standalone" when the program runs by itself and
// KOUPLE_MODULE_NAME is unset).
func Name() string {
	if l := current(); l != nil {
		return l.spec.Name
	}
	return envOr("KOUPLE_MODULE_NAME", "standalone")
}

// Version is the module's version, as its base knows it ("dev" when the program runs by itself and
// KOUPLE_MODULE_VERSION is unset).
func Version() string {
	if l := current(); l != nil {
		return l.spec.Version
	}
	return envOr("KOUPLE_MODULE_VERSION", "dev")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
