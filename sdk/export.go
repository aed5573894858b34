package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

type method func(ctx context.Context, payload []byte) ([]byte, error)

var methods = map[string]method{}

// Export makes fn callable by other modules and by the base as method name of this module, with its
// argument and answer carried as JSON. Call it from init().
func Export[In, Out any](name string, fn func(context.Context, In) (Out, error)) {
	if name == "" || strings.ContainsAny(name, " /\n") {
		panic(fmt.Sprintf("sdk.Export: bad method name %q", name))
	}
	fn2 := method(func(ctx context.Context, payload []byte) ([]byte, error) {
		var in In
		if len(payload) > 0 && string(payload) != "null" {
			if err := json.Unmarshal(payload, &in); err != nil {
				return nil, fmt.Errorf("decode argument of %s: %w", name, err)
			}
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	})
	table, lock := methods, &mu
	if l := registering(); l != nil {
		table, lock = l.methods, &l.mu
	}
	lock.Lock()
	defer lock.Unlock()
	if _, dup := table[name]; dup {
		panic(fmt.Sprintf("sdk.Export: method %q exported twice", name))
	}
	table[name] = fn2
}

// Methods lists the names of the methods exported outside a native base (standalone, wasm).
func Methods() []string {
	mu.Lock()
	defer mu.Unlock()
	return sortedNames(methods)
}

// Invoke runs the exported method name (registered outside a native base) with a JSON payload. A panic in the method becomes its error. The
// runtimes call it; modules call each other with Call.
func Invoke(ctx context.Context, name string, payload []byte) (res []byte, err error) {
	mu.Lock()
	fn := methods[name]
	mu.Unlock()
	if fn == nil {
		return nil, fmt.Errorf("no method %q: this module exports %v", name, Methods())
	}
	return invoke(ctx, name, fn, payload)
}

func invoke(ctx context.Context, name string, fn method, payload []byte) (res []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("method %s panicked: %v", name, r)
		}
	}()
	return fn(ctx, payload)
}
