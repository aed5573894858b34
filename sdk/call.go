package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// ErrNoValuePath says a call cannot pass its values as they are (the callee is not a native module or typed
// base service, or takes another type); the call is then made with JSON. Modules never see it.
var ErrNoValuePath = errors.New("sdk: this call's values cannot pass as Go values")

// Call calls method on target — another module, or a service of the base — with in encoded as JSON, and
// decodes the JSON answer into out (which may be nil). In a base the call stays in the process and waits only
// the calling goroutine; it carries ctx's deadline and is abandoned when ctx ends.
//
// In a native module, when the callee is another native module's method (sdk.Export) or a typed base service
// whose argument type is in's type, nothing is encoded: the callee gets in itself, and out is set to the
// callee's answer itself when out points to its type (else the answer is converted through JSON). Values are
// then shared, not copied: neither side may change what it passed on after the call.
func Call(ctx context.Context, target, method string, in, out any) error {
	if res, err, ok := callValue(ctx, target, method, in); ok {
		if err != nil {
			return err
		}
		return setAnswer(target, method, res, out)
	}
	payload, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("sdk.Call %s.%s: encode argument: %w", target, method, err)
	}
	res, err := CallRaw(ctx, target, method, payload)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("sdk.Call %s.%s: decode answer: %w", target, method, err)
	}
	return nil
}

// CallError is an error the callee answered, as opposed to a failure to reach it.
type CallError struct {
	Target, Method, Message string
}

func (e *CallError) Error() string {
	return fmt.Sprintf("call %s.%s: %s", e.Target, e.Method, e.Message)
}

// callValue makes the call with Go values when this is a native module in a base and the callee takes in's
// type; ok is false when the call must be encoded instead.
func callValue(ctx context.Context, target, method string, in any) (res any, err error, ok bool) {
	l := currentIn(ctx)
	if l == nil {
		return nil, nil, false
	}
	l.mu.Lock()
	call := l.spec.CallValue
	l.mu.Unlock()
	if call == nil {
		return nil, nil, false
	}
	res, err = call(ctx, target, method, in)
	if errors.Is(err, ErrNoValuePath) {
		return nil, nil, false
	}
	return res, err, true
}

// setAnswer puts a callee's Go answer into out: itself when out points to its type, else through JSON (types
// of the same shape declared in two modules).
func setAnswer(target, method string, res, out any) error {
	if out == nil || res == nil {
		return nil
	}
	ov := reflect.ValueOf(out)
	if ov.Kind() == reflect.Pointer && !ov.IsNil() {
		if rv := reflect.ValueOf(res); rv.Type().AssignableTo(ov.Elem().Type()) {
			ov.Elem().Set(rv)
			return nil
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("sdk.Call %s.%s: encode answer: %w", target, method, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("sdk.Call %s.%s: decode answer: %w", target, method, err)
	}
	return nil
}
