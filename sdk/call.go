package sdk

import (
	"context"
	"encoding/json"
	"fmt"
)

// Call calls method on target — another module, or a service of the base — with in encoded as JSON, and
// decodes the JSON answer into out (which may be nil). In a base the call stays in the process and waits only
// the calling goroutine; it carries ctx's deadline and is abandoned when ctx ends.
func Call(ctx context.Context, target, method string, in, out any) error {
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
