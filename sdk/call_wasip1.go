//go:build wasip1

package sdk

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"
)

//go:wasmimport kouple_v1 call
func hostCall(target unsafe.Pointer, targetLen uint32, method unsafe.Pointer, methodLen uint32, in unsafe.Pointer, inLen uint32, deadline int64, fd *int32) uint32

// call_ctx is call with the caller's trace context (docs/abi.md, "Trace context").
//
//go:wasmimport kouple_v1 call_ctx
func hostCallCtx(target unsafe.Pointer, targetLen uint32, method unsafe.Pointer, methodLen uint32, in unsafe.Pointer, inLen uint32, tctx unsafe.Pointer, tctxLen uint32, deadline int64, fd *int32) uint32

// Result status bytes on a call descriptor (docs/abi.md).
const (
	callOK    = 0
	callError = 1
)

// CallRaw is Call with the payloads as bytes, not encoded.
func CallRaw(ctx context.Context, target, method string, payload []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("call %s.%s: %w", target, method, err)
	}
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}
	var fd int32
	var errno uint32
	if tctx := encodeTrace(traceOf(ctx)); tctx != "" {
		errno = hostCallCtx(
			unsafe.Pointer(unsafe.StringData(target)), uint32(len(target)),
			unsafe.Pointer(unsafe.StringData(method)), uint32(len(method)),
			unsafe.Pointer(unsafe.SliceData(payload)), uint32(len(payload)),
			unsafe.Pointer(unsafe.StringData(tctx)), uint32(len(tctx)),
			deadline, &fd)
	} else {
		errno = hostCall(
			unsafe.Pointer(unsafe.StringData(target)), uint32(len(target)),
			unsafe.Pointer(unsafe.StringData(method)), uint32(len(method)),
			unsafe.Pointer(unsafe.SliceData(payload)), uint32(len(payload)),
			deadline, &fd)
	}
	if errno != 0 {
		return nil, fmt.Errorf("call %s.%s: the base refused the call (errno %d)", target, method, errno)
	}
	// The answer arrives on a descriptor: reading it parks only this goroutine.
	f := os.NewFile(uintptr(fd), "kouple-call")
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	res, err := io.ReadAll(f)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("call %s.%s: %w", target, method, err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("call %s.%s: the base answered nothing", target, method)
	}
	if res[0] != callOK {
		return nil, &CallError{Target: target, Method: method, Message: string(res[1:])}
	}
	return res[1:], nil
}
