package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
	mu.Lock()
	defer mu.Unlock()
	if _, dup := methods[name]; dup {
		panic(fmt.Sprintf("sdk.Export: method %q exported twice", name))
	}
	methods[name] = func(ctx context.Context, payload []byte) ([]byte, error) {
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
	}
}

// Methods lists the exported methods' names.
func Methods() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Invoke runs the exported method name with a JSON payload. A panic in the method becomes its error. The
// runtimes call it; modules call each other with Call.
func Invoke(ctx context.Context, name string, payload []byte) (res []byte, err error) {
	mu.Lock()
	fn := methods[name]
	mu.Unlock()
	if fn == nil {
		return nil, fmt.Errorf("no method %q: this module exports %v", name, Methods())
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("method %s panicked: %v", name, r)
		}
	}()
	return fn(ctx, payload)
}
