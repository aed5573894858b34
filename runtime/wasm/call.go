package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kouple/kouple/runtime"
)

// Call runs a method the module exports. The request travels on a connection of its own to the guest's call
// listener (fd 4): the deadline (Unix nanoseconds, 0 for none, 8 bytes little-endian), the method name's
// length (2 bytes little-endian), the name, then the payload until end of stream. The guest answers a status
// byte and the result, then closes (docs/abi.md).
func (m *Module) Call(ctx context.Context, method string, payload []byte) ([]byte, error) {
	if len(method) == 0 || len(method) > 0xffff {
		return nil, fmt.Errorf("module %s: bad method name %q", m.manifest.ID(), method)
	}
	if err := m.acquire(ctx); err != nil {
		return nil, err
	}
	defer m.release()
	m.inFlight.Add(1)
	defer m.inFlight.Add(-1)
	m.requests.Add(1)
	c, err := m.connect(ctx, func(in *instance) *listener { return in.callsIn })
	if err != nil {
		m.errors.Add(1)
		return nil, fmt.Errorf("module %s: call %s: %w", m.manifest.ID(), method, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}
	frame := make([]byte, 0, 10+len(method)+len(payload))
	frame = binary.LittleEndian.AppendUint64(frame, uint64(deadline))
	frame = binary.LittleEndian.AppendUint16(frame, uint16(len(method)))
	frame = append(frame, method...)
	if m.callContext {
		frame = appendCallContext(frame, ctx) // the callee takes the caller's trace context (trace.go)
	}
	frame = append(frame, payload...)
	_, err = c.Write(frame)
	if err == nil {
		err = c.CloseWrite()
	}
	var res []byte
	if err == nil {
		res, err = io.ReadAll(c)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("module %s: call %s: %w", m.manifest.ID(), method, ctx.Err())
	}
	if err == nil && len(res) == 0 {
		err = errors.New("the instance ended without answering")
	}
	if err != nil {
		m.errors.Add(1)
		return nil, fmt.Errorf("module %s: call %s: %w", m.manifest.ID(), method, err)
	}
	if res[0] != callOK {
		return nil, &runtime.CallError{Module: m.manifest.Name, Method: method, Message: string(res[1:])}
	}
	return res[1:], nil
}
