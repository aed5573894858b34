// Package httpwire is the form of the base's http service calls (outbound HTTP), shared by the SDK's Transport
// and the base: JSON between a wasm module and the base, the same Go values passed as they are for a native one.
package httpwire

import "net/http"

// Request is an outbound request as the SDK sends it.
type Request struct {
	Method string      `json:"method"`
	URL    string      `json:"url"`
	Host   string      `json:"host,omitempty"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

// Response is its answer.
type Response struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}
