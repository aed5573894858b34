package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// method is one exported method: called with JSON (wasm, standalone, or a caller whose types differ), or, in a
// native base, with the caller's Go value as it is.
type method struct {
	json  func(ctx context.Context, payload []byte) ([]byte, error)
	value func(ctx context.Context, in any) (any, error) // ErrNoValuePath when in is not the method's argument type
}

var methods = map[string]method{}

// Export makes fn callable by other modules and by the base as method name of this module. Call it from init().
// Its argument and answer travel as JSON, except between native modules and the base (the native runtime) when
// the caller passes a value of type In: then fn gets that very value and the caller gets fn's answer itself, with
// nothing encoded or copied — so neither side may change a value it passed on after the call.
func Export[In, Out any](name string, fn func(context.Context, In) (Out, error)) {
	if name == "" || strings.ContainsAny(name, " /\n") {
		panic(fmt.Sprintf("sdk.Export: bad method name %q", name))
	}
	fn2 := method{json: func(ctx context.Context, payload []byte) ([]byte, error) {
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
	}, value: func(ctx context.Context, in any) (any, error) {
		v, ok := valueOf[In](in)
		if !ok {
			return nil, ErrNoValuePath
		}
		return fn(ctx, v)
	}}
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
	if fn.json == nil {
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
	return fn.json(ctx, payload)
}

func invokeValue(ctx context.Context, name string, fn method, in any) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("method %s panicked: %v", name, r)
		}
	}()
	return fn.value(ctx, in)
}

// valueOf is in as an In: in itself, what it points to, or In's zero value for nil.
func valueOf[In any](in any) (In, bool) {
	switch v := in.(type) {
	case In:
		return v, true
	case *In:
		if v != nil {
			return *v, true
		}
	}
	var zero In
	return zero, in == nil
}
