package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// Service is a set of typed methods a Go program embedding a base offers to modules (Koupleless's
// @AutowiredFromBase). A module reaches it only with the capability "service:NAME", granted by the operator.
type Service struct {
	name    string
	policy  *Policy
	methods valueHost
}

// NewService makes an empty service called name; add methods with Method.
func NewService(name string, policy *Policy) *Service {
	return &Service{name: name, policy: policy, methods: newValueHost()}
}

// Method adds a typed method. A wasm module's argument and answer travel as JSON; a native module that passes
// an In gets fn's Out itself, nothing encoded or copied (Koupleless's beans shared with modules), so fn must not
// keep or change a value it was given, nor the module one it got back, beyond what the two agree on.
func Method[In, Out any](s *Service, name string, fn func(ctx context.Context, caller string, in In) (Out, error)) {
	s.methods.add(name, typed(func(ctx context.Context, caller *manifest.Manifest, in In) (any, error) {
		who := "base"
		if caller != nil {
			if err := s.policy.granted(caller, "service:"+s.name); err != nil {
				return nil, err
			}
			who = caller.Name
		}
		return fn(ctx, who, in)
	}))
}

// Call implements runtime.Host.
func (s *Service) Call(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error) {
	return s.methods.Call(ctx, caller, target, method, payload)
}

// CallValue implements runtime.ValueHost.
func (s *Service) CallValue(ctx context.Context, caller, target, method string, in any) (any, error) {
	return s.methods.CallValue(ctx, caller, target, method, in)
}

var (
	_ runtime.Host      = (*Service)(nil)
	_ runtime.ValueHost = (*Service)(nil)
)

// CallModule calls a module's exported method from the base with typed values (Koupleless's
// SpringServiceFinder), through h (the base's registry). A native module whose method takes in's type gets in
// itself and answers its Out itself, nothing encoded; a wasm module gets JSON.
func CallModule[Out any](ctx context.Context, h runtime.Host, module, method string, in any) (Out, error) {
	var out Out
	if vh, ok := h.(runtime.ValueHost); ok {
		res, err := vh.CallValue(ctx, "base", module, method, in)
		if !errors.Is(err, runtime.ErrNoValuePath) {
			if err != nil {
				return out, err
			}
			if v, ok := res.(Out); ok || res == nil {
				return v, nil
			}
			// Another type of the same shape (declared in the module): convert it through JSON.
			b, err := json.Marshal(res)
			if err == nil {
				err = json.Unmarshal(b, &out)
			}
			if err != nil {
				return out, fmt.Errorf("%s.%s answered a %T: %w", module, method, res, err)
			}
			return out, nil
		}
	}
	payload, err := json.Marshal(in)
	if err != nil {
		return out, err
	}
	res, err := h.Call(ctx, "base", module, method, payload)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return out, fmt.Errorf("%s.%s answered: %w", module, method, err)
	}
	return out, nil
}
