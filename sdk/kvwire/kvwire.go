// Package kvwire is the form of the kv service's calls, shared by the SDK's kv package and the base: JSON between
// a wasm module and the base, the same Go values passed as they are to and from a native module.
package kvwire

// Request is the argument of every kv method.
type Request struct {
	Namespace string `json:"namespace,omitempty"` // empty: the module's own
	Key       string `json:"key,omitempty"`
	Value     []byte `json:"value,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
}

// Entry is what get answers.
type Entry struct {
	Value []byte `json:"value"`
	Found bool   `json:"found"`
}
