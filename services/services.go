// Package services are the base's built-in services that modules reach through sdk.Call (and the SDK's
// kv, config and database/sql wrappers): a key-value store, configuration, and SQL on a pool the base owns.
// Each is available to a module only if its manifest asks for it (capabilities) and the base grants it.
package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/module"
	"github.com/kouple/kouple/runtime"
)

// Policy is what the operator allows. By default a base grants every built-in service a manifest requests.
type Policy struct {
	// Deny lists capabilities the base refuses even when requested ("sql", "kv:shared-ns", ...).
	Deny []string
	// Allow grants capabilities that need the operator: "CAPABILITY" for every module that asks, or
	// "MODULE=CAPABILITY" for one.
	Allow []string
}

// granted reports whether the calling module may use capability (like "kv" or "kv:orders"), and why not.
// Built-in services are granted when requested; custom services ("service:NAME") only when the operator
// grants them too (Allow).
func (p *Policy) granted(m *manifest.Manifest, capability string) error {
	if m == nil {
		return nil // the base itself
	}
	if err := p.operatorAllows(m, capability); err != nil {
		return err
	}
	if !slices.Contains(m.Capabilities, capability) {
		return fmt.Errorf("permission denied: module %s did not ask for %q: add it to capabilities in its kouple.yaml", m.ID(), capability)
	}
	return nil
}

// operatorAllows is the operator's half of a grant: not denied, and granted by the operator unless built in.
func (p *Policy) operatorAllows(m *manifest.Manifest, capability string) error {
	if slices.Contains(p.Deny, capability) || slices.Contains(p.Deny, service(capability)) {
		return fmt.Errorf("permission denied: this base's operator denies %q to modules", capability)
	}
	if !builtin[service(capability)] && !slices.Contains(p.Allow, m.Name+"="+capability) && !slices.Contains(p.Allow, capability) {
		return fmt.Errorf("permission denied: %q needs the operator's grant (--grant %s=%s)", capability, m.Name, capability)
	}
	return nil
}

func service(capability string) string {
	s, _, _ := strings.Cut(capability, ":")
	return s
}

// Granted lists the capabilities of m that this base grants.
func (p *Policy) Granted(m *manifest.Manifest) []string {
	out := []string{}
	for _, c := range m.Capabilities {
		if p.granted(m, c) == nil {
			out = append(out, c)
		}
	}
	return out
}

var builtin = map[string]bool{"kv": true, "config": true, "sql": true, "events": true, "timers": true}

// handler is one method of a service: it decodes its argument, checks the grant, and answers.
type handler func(ctx context.Context, caller *manifest.Manifest, payload []byte) (any, error)

// host serves a set of methods as a runtime.Host.
type host map[string]handler

func (h host) Call(ctx context.Context, _, target, method string, payload []byte) ([]byte, error) {
	fn := h[method]
	if fn == nil {
		return nil, &runtime.CallError{Module: target, Method: method, Message: fmt.Sprintf("the %s service has no method %q", target, method)}
	}
	out, err := fn(ctx, module.Caller(ctx), payload)
	if err != nil {
		return nil, &runtime.CallError{Module: target, Method: method, Message: err.Error()}
	}
	return json.Marshal(out)
}

// valueHandler is one method taking its argument as a Go value (from a native module); it answers
// runtime.ErrNoValuePath, doing nothing, when in is not of its argument type.
type valueHandler func(ctx context.Context, caller *manifest.Manifest, in any) (any, error)

// endpoint is one method in both forms.
type endpoint struct {
	json  handler
	value valueHandler
}

// typed makes both forms of a method from one typed function: its argument decoded from JSON, or taken as it is.
func typed[In any](fn func(ctx context.Context, caller *manifest.Manifest, in In) (any, error)) endpoint {
	return endpoint{func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
		var in In
		if err := decode(p, &in); err != nil {
			return nil, err
		}
		return fn(ctx, caller, in)
	}, func(ctx context.Context, caller *manifest.Manifest, in any) (any, error) {
		switch v := in.(type) {
		case In:
			return fn(ctx, caller, v)
		case *In:
			if v != nil {
				return fn(ctx, caller, *v)
			}
		}
		return nil, runtime.ErrNoValuePath
	}}
}

// valueHost serves a set of methods both encoded (runtime.Host) and as Go values (runtime.ValueHost).
type valueHost struct {
	host
	values map[string]valueHandler
}

func newValueHost() valueHost { return valueHost{host: host{}, values: map[string]valueHandler{}} }

func (h valueHost) add(name string, e endpoint) {
	h.host[name], h.values[name] = e.json, e.value
}

// CallValue implements runtime.ValueHost.
func (h valueHost) CallValue(ctx context.Context, _, target, method string, in any) (any, error) {
	fn := h.values[method]
	if fn == nil {
		return nil, runtime.ErrNoValuePath
	}
	out, err := fn(ctx, module.Caller(ctx), in)
	if err != nil && !errors.Is(err, runtime.ErrNoValuePath) {
		return nil, &runtime.CallError{Module: target, Method: method, Message: err.Error()}
	}
	return out, err
}

func decode(payload []byte, v any) error {
	if len(payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("bad argument: %w", err)
	}
	return nil
}
