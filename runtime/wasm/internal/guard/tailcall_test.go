package guard

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// Tail recursion has neither a loop nor a call that returns, so only the
// entry check sees it; return_call's function index must be renumbered.
func TestTailCalls(t *testing.T) {
	const fCount, fIndirect = 1, 2 // after one imported function
	wasm := cat(header,
		sec(secType, vecOf([]byte{0x60, 2, i32, i32, 1, i32}, []byte{0x60, 0, 0})),
		sec(secImport, vecOf(cat(str("env"), str("nop"), []byte{kindFunc, 1}))),
		sec(secFunction, vecOf([]byte{0}, []byte{0})),
		sec(secTable, vecOf([]byte{fnref, 0, 1})),
		sec(secExport, vecOf(cat(str("count"), []byte{kindFunc, fCount}), cat(str("indirect"), []byte{kindFunc, fIndirect}))),
		sec(secElement, vecOf(cat([]byte{0}, []byte{0x41, 0, opEnd}, vecOf([]byte{fIndirect})))),
		sec(secCode, vecOf(
			// count(n, acc): n == 0 ? acc : return_call count(n-1, acc+1)
			body(noLocals, 0x20, 0, 0x45, opIf, i32, 0x20, 1, opElse,
				0x20, 0, 0x41, 1, 0x6b, 0x20, 1, 0x41, 1, 0x6a, opReturnCall, fCount, opEnd),
			// indirect(n, acc): the same through return_call_indirect on table[0]
			body(noLocals, 0x20, 0, 0x45, opIf, i32, 0x20, 1, opElse,
				0x20, 0, 0x41, 1, 0x6b, 0x20, 1, 0x41, 2, 0x6a, 0x41, 0, opReturnCallIndirect, 0, 0, opEnd),
		)))
	fueled := instrument(t, wasm)
	ctx := context.Background()
	for _, c := range []struct {
		wasm    []byte
		quantum int64
	}{{wasm, 0}, {fueled, 1000}} {
		h := newHost(t, c.quantum, func(cfg wazero.RuntimeConfig) wazero.RuntimeConfig {
			return cfg.WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall)
		})
		if _, err := h.rt.NewHostModuleBuilder("env").NewFunctionBuilder().
			WithFunc(func() {}).Export("nop").Instantiate(ctx); err != nil {
			t.Fatal(err)
		}
		mod, err := h.rt.InstantiateModule(ctx, h.compile(t, c.wasm), wazero.NewModuleConfig())
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]uint64{"count": 1_000_000, "indirect": 2_000_000} {
			res, err := mod.ExportedFunction(name).Call(ctx, 1_000_000, 0)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if res[0] != want {
				t.Errorf("%s = %d, want %d", name, res[0], want)
			}
		}
		if c.quantum > 0 && h.yields.Load() < 2_000 {
			t.Errorf("%d yields for 2M tail calls at quantum %d", h.yields.Load(), c.quantum)
		}
	}
}
