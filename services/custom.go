package services

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// Service is a set of typed methods a Go program embedding a base offers to modules (Koupleless's
// @AutowiredFromBase). A module reaches it only with the capability "service:NAME", granted by the operator.
type Service struct {
	name    string
	policy  *Policy
	methods host
}

// NewService makes an empty service called name; add methods with Method.
func NewService(name string, policy *Policy) *Service {
	return &Service{name: name, policy: policy, methods: host{}}
}

// Method adds a typed method: its argument and answer travel as JSON.
func Method[In, Out any](s *Service, name string, fn func(ctx context.Context, caller string, in In) (Out, error)) {
	s.methods[name] = func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
		if caller != nil {
			if err := s.policy.granted(caller, "service:"+s.name); err != nil {
				return nil, err
			}
		}
		var in In
		if err := decode(p, &in); err != nil {
			return nil, err
		}
		who := "base"
		if caller != nil {
			who = caller.Name
		}
		return fn(ctx, who, in)
	}
}

// Call implements runtime.Host.
func (s *Service) Call(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error) {
	return s.methods.Call(ctx, caller, target, method, payload)
}

var _ runtime.Host = (*Service)(nil)

// CallModule calls a module's exported method from the base with typed values (Koupleless's
// SpringServiceFinder), through caller (the base's registry).
func CallModule[Out any](ctx context.Context, h runtime.Host, module, method string, in any) (Out, error) {
	var out Out
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
