package wasm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/observe"
)

// Trace context across module calls (docs/abi.md, "Trace context"), kept apart from hostcall.go and call.go
// so that those stay small:
//
//   - kouple_v1.call_ctx is kouple_v1.call with the caller's context string (traceparent and request id as
//     header lines) after the payload's pointer and length. The host puts it in the call's context.Context,
//     so the registry, base services and the callee see it.
//   - A module that imports kouple_v1.accept_call_context declares that its call listener takes frames with a
//     context: after the method name, a 2-byte little-endian length and the context string. Older modules do
//     not import it and get the old frame.

// maxCallContext bounds a call's context string.
const maxCallContext = 4 << 10

// callContextImport is the import whose presence says the guest takes call frames with a context.
const callContextImport = "accept_call_context"

func exportTrace(b wazero.HostModuleBuilder) {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		stack[0] = uint64(instanceOf(ctx).callCtx(mod, stack))
	}), []api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32, i64, i32}, []api.ValueType{i32}).Export("call_ctx")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		if uint32(stack[0]) == 1 {
			stack[0] = errnoSuccess
		} else {
			stack[0] = errnoNotsup
		}
	}), []api.ValueType{i32}, []api.ValueType{i32}).Export(callContextImport)
}

// callCtx: call_ctx(target, target_len, method, method_len, payload, payload_len, context, context_len,
// deadline, result_fd).
func (in *instance) callCtx(mod api.Module, s []uint64) uint16 {
	if uint32(s[7]) > maxCallContext {
		return errnoInval
	}
	raw, ok := mod.Memory().Read(uint32(s[6]), uint32(s[7]))
	if !ok {
		return errnoFault
	}
	t := observe.Decode(string(raw))
	// call's own parameters: the payload, then deadline and result_fd after the context.
	plain := []uint64{s[0], s[1], s[2], s[3], s[4], s[5], s[8], s[9]}
	if !t.Valid() && t.RequestID == "" {
		return in.startCall(mod, plain, nil)
	}
	return in.startCall(mod, plain, &t)
}

// importsCallContext says whether the compiled module imports accept_call_context.
func importsCallContext(c wazero.CompiledModule) bool {
	for _, f := range c.ImportedFunctions() {
		if mod, name, ok := f.Import(); ok && mod == artifact.ABIImportModule && name == callContextImport {
			return true
		}
	}
	return false
}

// appendCallContext appends the context of ctx, as the callee's frame carries it: the trace continues with a
// new span for the callee.
func appendCallContext(frame []byte, ctx context.Context) []byte {
	var s string
	if t, ok := observe.TraceFrom(ctx); ok {
		if t.Valid() {
			t = t.Child()
		}
		s = t.Encode()
	}
	if len(s) > maxCallContext {
		s = ""
	}
	frame = binary.LittleEndian.AppendUint16(frame, uint16(len(s)))
	return append(frame, s...)
}

// logJSONLine logs a line the module wrote as a JSON object with "msg" and "level" keys — what slog's
// JSONHandler writes, and so sdk.Logger — as a structured record: its level, its message, its other keys as
// attributes (request_id and trace_id among them); "time" is dropped, the base stamps its own. It reports
// false for any other line.
func logJSONLine(l *slog.Logger, line []byte, stream string) bool {
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
		return false
	}
	var obj map[string]any
	if json.Unmarshal(line, &obj) != nil {
		return false
	}
	msg, ok1 := obj["msg"].(string)
	lv, ok2 := obj["level"].(string)
	if !ok1 || !ok2 {
		return false
	}
	var level slog.Level
	if level.UnmarshalText([]byte(strings.ToUpper(lv))) != nil {
		level = slog.LevelInfo
	}
	attrs := make([]slog.Attr, 0, len(obj)+1)
	attrs = append(attrs, slog.String("stream", stream))
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		v := obj[k]
		switch k {
		case "msg", "level", "time", "stream", "module", "version":
			continue
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	l.LogAttrs(context.Background(), level, msg, attrs...)
	return true
}
