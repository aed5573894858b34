// Package kv is the base's key-value store, seen from a module: a private namespace (capability "kv") and
// shared namespaces (capability "kv:NAME").
package kv

import (
	"context"

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/kvwire"
)

// Namespace is a namespace of the store; the zero value is the module's own.
type Namespace struct{ Name string }

// Shared is a shared namespace.
func Shared(name string) Namespace { return Namespace{name} }

// Get reads a key of the module's own namespace.
func Get(ctx context.Context, key string) ([]byte, bool, error) { return Namespace{}.Get(ctx, key) }

// Put writes a key of the module's own namespace.
func Put(ctx context.Context, key string, value []byte) error {
	return Namespace{}.Put(ctx, key, value)
}

// Get reads a key; found is false when it is absent.
func (n Namespace) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	var out kvwire.Entry
	err = sdk.Call(ctx, "kv", "get", kvwire.Request{Namespace: n.Name, Key: key}, &out)
	return out.Value, out.Found, err
}

// Put writes a key.
func (n Namespace) Put(ctx context.Context, key string, value []byte) error {
	return sdk.Call(ctx, "kv", "put", kvwire.Request{Namespace: n.Name, Key: key, Value: value}, nil)
}

// Delete removes a key.
func (n Namespace) Delete(ctx context.Context, key string) error {
	return sdk.Call(ctx, "kv", "delete", kvwire.Request{Namespace: n.Name, Key: key}, nil)
}

// List returns the keys that start with prefix, in order.
func (n Namespace) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := sdk.Call(ctx, "kv", "list", kvwire.Request{Namespace: n.Name, Prefix: prefix}, &keys)
	return keys, err
}
