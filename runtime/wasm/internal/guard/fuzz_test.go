package guard

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
)

var (
	fuzzOnce    sync.Once
	fuzzRuntime wazero.Runtime
)

// FuzzInstrument checks that Instrument never panics, that its errors are
// *Error values, that its output is recognised as instrumented, and that
// whenever wazero (interpreter) accepts the input it accepts the output.
func FuzzInstrument(f *testing.F) {
	f.Add(header)
	f.Add(handmadeModule())
	f.Add(envModule())
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Instrument(wasm)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		if _, err := Instrument(out); !errors.Is(err, ErrAlreadyInstrumented) {
			t.Fatalf("instrumenting the output again: %v", err)
		}
		fuzzOnce.Do(func() {
			fuzzRuntime = wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
		})
		ctx := context.Background()
		in, err := fuzzRuntime.CompileModule(ctx, wasm)
		if err != nil {
			return
		}
		in.Close(ctx)
		c, err := fuzzRuntime.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("wazero accepts the input but not the output: %v", err)
		}
		c.Close(ctx)
	})
}
