//go:build wasip1

package sdk

import "net/http"

// A wasm module has no sockets: its HTTP clients go through the base.
func init() { http.DefaultTransport = Transport{} }

func inBase() bool { return true }
