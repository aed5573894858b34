package wasm

import (
	"context"
	"errors"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/kouple/kouple/observe"
	"github.com/kouple/kouple/runtime"
)

// Status bytes that start a call's answer (docs/abi.md).
const (
	callOK    = 0
	callError = 1
)

// maxCallPayload bounds one call's argument.
const maxCallPayload = 16 << 20

func (in *instance) abiVersion(v uint32) uint16 {
	if v != abiVersion {
		in.m.logger.Error("module speaks another ABI version", "abi", v, "want", abiVersion)
		return errnoNotsup
	}
	return errnoSuccess
}

// call starts a host call and answers at once with a descriptor; the answer arrives on it when the call
// finishes, so only the guest goroutine that reads it waits.
func (in *instance) call(mod api.Module, s []uint64) uint16 {
	return in.startCall(mod, s, nil)
}

// startCall is call and call_ctx (trace.go): s holds call's parameters; trace, if set, is the caller's trace
// context, carried on to the callee.
func (in *instance) startCall(mod api.Module, s []uint64, trace *observe.Trace) uint16 {
	mem := mod.Memory()
	target, ok1 := mem.Read(uint32(s[0]), uint32(s[1]))
	method, ok2 := mem.Read(uint32(s[2]), uint32(s[3]))
	if uint32(s[5]) > maxCallPayload {
		return errnoInval
	}
	payload, ok3 := mem.Read(uint32(s[4]), uint32(s[5]))
	if !ok1 || !ok2 || !ok3 {
		return errnoFault
	}
	deadline := int64(s[6])
	var ctx context.Context
	var cancel context.CancelFunc
	if deadline != 0 {
		ctx, cancel = context.WithDeadline(in.ctx, time.Unix(0, deadline))
	} else {
		ctx, cancel = context.WithCancel(in.ctx)
	}
	if trace != nil {
		ctx = observe.WithTrace(ctx, *trace)
	}
	f := &future{inst: in, cancel: cancel}
	fd := in.add(f)
	if !mem.WriteUint32Le(uint32(s[7]), fd) {
		in.remove(fd)
		cancel()
		return errnoFault
	}
	t, m, p := string(target), string(method), append([]byte(nil), payload...)
	in.calls.Add(1)
	go func() {
		defer in.calls.Done()
		defer cancel()
		res, err := in.m.host.Call(ctx, in.m.manifest.Name, t, m, p)
		if err != nil {
			msg := err.Error()
			if ce, ok := errors.AsType[*runtime.CallError](err); ok {
				msg = ce.Message // the callee's own words; the guest names the target itself
			}
			f.complete(append([]byte{callError}, msg...))
			return
		}
		f.complete(append([]byte{callOK}, res...))
	}()
	return errnoSuccess
}
