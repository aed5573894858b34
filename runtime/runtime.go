// Package runtime is the boundary between the base and the code of a module. The lifecycle, agent, gateway and
// controller see modules only through Module; which runtime runs one (wasm in a sandbox, native as a Go plugin)
// is the manifest's choice.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/kouple/kouple/manifest"
)

// Runtime turns artifacts into runnable modules.
type Runtime interface {
	// Load checks and prepares (compiles) an artifact. The module does not run until Start.
	Load(ctx context.Context, spec Spec) (Module, error)
}

// Spec is everything a runtime needs to load one module version.
type Spec struct {
	Manifest *manifest.Manifest
	Artifact []byte
	// Env is the module's configuration, seen as its environment; nothing else of the base's is.
	Env map[string]string
	// Host answers the calls the module makes to other modules and to base services.
	Host Host
	// Logger receives the module's own output, one record per line; it should carry the module's identity.
	Logger *slog.Logger
	// Event, if set, is told of what happens to the module while it runs (an instance failed and was
	// replaced, and why), for its state records.
	Event func(reason, message string)
}

// Host answers calls from a module.
type Host interface {
	// Call runs method of target for the module named caller. An error is the callee's answer or the reason
	// the call could not be made.
	Call(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error)
}

// HostFunc adapts a function to Host.
type HostFunc func(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error)

// Call implements Host.
func (f HostFunc) Call(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error) {
	return f(ctx, caller, target, method, payload)
}

// ValueHost is a Host that can also carry a call with its argument and answer as Go values, nothing encoded:
// for native modules, whose values live in the base's own process. CallValue returns ErrNoValuePath, having
// done nothing, when the callee cannot take in as it is (a wasm module, or a method of another argument type).
type ValueHost interface {
	CallValue(ctx context.Context, caller, target, method string, in any) (any, error)
}

// ValueCaller is a Module whose exported methods take and answer Go values (the native runtime). CallValue
// returns ErrNoValuePath, without running anything, when in is not of the method's argument type.
type ValueCaller interface {
	CallValue(ctx context.Context, method string, in any) (any, error)
}

// ErrNoValuePath says a call cannot pass its values as they are; the caller then encodes them and uses Call.
var ErrNoValuePath = errors.New("this call's values cannot pass as Go values")

// Module is one loaded module version.
type Module interface {
	// Start runs the module until it serves, or says why it could not.
	Start(ctx context.Context) error
	// ServeHTTP serves a request whose path is already relative to the module's context path.
	http.Handler
	// Call runs a method the module exports, with the caller's deadline. An error is the method's own
	// answer (a *CallError) or the reason it could not be called.
	Call(ctx context.Context, method string, payload []byte) ([]byte, error)
	// Stats reports what the module uses now.
	Stats() Stats
	// Close stops the module at once and frees what it holds; requests still in flight fail.
	Close(ctx context.Context) error
}

// Stats describe a running module.
type Stats struct {
	Instances   int       // instances serving now
	Restarts    int       // instances replaced after a failure
	MemoryBytes uint64    // linear memory of all instances (wasm)
	InFlight    int64     // requests being served
	Requests    uint64    // requests served in all
	Errors      uint64    // requests that failed in the module (5xx from the runtime)
	Refused     uint64    // requests refused because the module was at its in-flight and queue limits
	CPUSeconds  float64   // time spent computing in the module's code, all instances, since it started
	LastFailure string    // why the last instance failed, if one did
	LastFailAt  time.Time // when
}

// CallError is an error a method answered, as opposed to a failure to reach it.
type CallError struct {
	Module, Method, Message string
}

func (e *CallError) Error() string {
	return fmt.Sprintf("%s.%s: %s", e.Module, e.Method, e.Message)
}
