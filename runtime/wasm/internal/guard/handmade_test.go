package guard

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// A small module assembled by hand to cover what Go guests do not use:
// all eight element segment forms, ref.func in code, global initialisers
// and element expressions, the start function, exports, imported
// functions and globals, passive data and elements, bulk memory,
// saturating truncation, sign extension and the name section.

func u32(v uint32) []byte { return appendU32(nil, v) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func vecOf(items ...[]byte) []byte { return cat(u32(uint32(len(items))), cat(items...)) }

func str(s string) []byte { return appendName(nil, s) }

func sec(id byte, contents ...[]byte) []byte { return appendSection(nil, id, cat(contents...)) }

// body builds a function body with the given local declarations.
func body(locals []byte, code ...byte) []byte {
	b := cat(locals, code, []byte{opEnd})
	return cat(u32(uint32(len(b))), b)
}

var noLocals = []byte{0}

const (
	i32   = 0x7f
	fnref = 0x70
)

// Function indices in the hand-made module (import first).
const (
	fAdd1     = 0 // import env.add1 (i32) -> i32
	fStart    = 1
	fSum      = 2 // leaf with a loop
	fFib      = 3 // recursive, no loop
	fViaTable = 4 // call_indirect on table slot (param 0)
	fRefCall  = 5 // table.set with ref.func, then call_indirect
	fCounter  = 6
	fBulk     = 7
	fPassive  = 8 // table.init from a passive segment
	fGlobal   = 9 // funcref global initialised with ref.func
)

func handmadeModule() []byte {
	types := sec(secType, vecOf(
		[]byte{0x60, 0, 1, i32},      // 0: () -> i32
		[]byte{0x60, 1, i32, 1, i32}, // 1: (i32) -> i32
		[]byte{0x60, 0, 0},           // 2: () -> ()
	))
	imports := sec(secImport, vecOf(
		cat(str("env"), str("add1"), []byte{kindFunc, 1}),
		cat(str("env"), str("base"), []byte{kindGlobal, i32, 0}),
	))
	funcs := sec(secFunction, vecOf([]byte{2}, []byte{1}, []byte{1}, []byte{1}, []byte{0}, []byte{0}, []byte{0}, []byte{1}, []byte{0}))
	table := sec(secTable, vecOf([]byte{fnref, 0, 16}))
	memory := sec(secMemory, vecOf([]byte{0, 1}))
	globals := sec(secGlobal, vecOf(
		[]byte{i32, 1, 0x41, 0, opEnd},           // 1: mut counter
		[]byte{fnref, 0, opRefFunc, fFib, opEnd}, // 2: funcref = fib
	))
	var exports [][]byte
	for name, fn := range map[string]byte{"sum": fSum, "fib": fFib, "via_table": fViaTable,
		"ref_call": fRefCall, "counter": fCounter, "bulk": fBulk, "passive": fPassive, "global": fGlobal} {
		exports = append(exports, cat(str(name), []byte{kindFunc, fn}))
	}
	sortBytes(exports)
	exportSec := sec(secExport, vecOf(exports...))
	start := sec(secStart, []byte{fStart})
	i32c := func(v byte) []byte { return []byte{0x41, v, opEnd} }
	refFunc := func(f byte) []byte { return []byte{opRefFunc, f, opEnd} }
	elems := sec(secElement, vecOf(
		cat([]byte{0}, i32c(0), vecOf([]byte{fSum}, []byte{fFib})),              // table[0..1]
		cat([]byte{1, 0}, vecOf([]byte{fAdd1}, []byte{fSum})),                   // passive 1
		cat([]byte{2, 0}, i32c(2), []byte{0}, vecOf([]byte{fFib})),              // table[2]
		cat([]byte{3, 0}, vecOf([]byte{fSum})),                                  // declarative
		cat([]byte{4}, i32c(3), vecOf(refFunc(fSum))),                           // table[3]
		cat([]byte{5, fnref}, vecOf(refFunc(fFib), []byte{0xd0, fnref, opEnd})), // passive 5
		cat([]byte{6, 0}, i32c(4), []byte{fnref}, vecOf(refFunc(fFib))),         // table[4]
		cat([]byte{7, fnref}, vecOf(refFunc(fFib))),                             // declarative
	))
	codes := sec(secCode, vecOf(
		// start: counter = base + 7
		body(noLocals, 0x23, 0, 0x41, 7, 0x6a, 0x24, 1),
		// sum(n): s = 0; loop { if n == 0 break; s += n; n-- }; s
		body([]byte{1, 1, i32},
			opBlock, blockEmpty, opLoop, blockEmpty,
			0x20, 0, 0x45, opBrIf, 1,
			0x20, 1, 0x20, 0, 0x6a, 0x21, 1,
			0x20, 0, 0x41, 1, 0x6b, 0x21, 0,
			opBr, 0, opEnd, opEnd, 0x20, 1),
		// fib(n): n < 2 ? n : fib(n-1) + fib(n-2)
		body(noLocals,
			0x20, 0, 0x41, 2, 0x48, opIf, i32, 0x20, 0, opElse,
			0x20, 0, 0x41, 1, 0x6b, opCall, fFib,
			0x20, 0, 0x41, 2, 0x6b, opCall, fFib, 0x6a, opEnd),
		// via_table(i): table[i](10), then add1
		body(noLocals, 0x41, 10, 0x20, 0, opCallIndirect, 1, 0, opCall, fAdd1),
		// ref_call: table[5] = ref.func sum; table[5](10)
		body(noLocals, 0x41, 5, opRefFunc, fSum, 0x26, 0, 0x41, 10, 0x41, 5, opCallIndirect, 1, 0),
		// counter
		body(noLocals, 0x23, 1),
		// bulk: fill mem[16..20) with 0xff, copy mem[0..5) ("hello") to
		// mem[17..22), return load8_s(16) + load8_u(18) +
		// i32.trunc_sat_f32_s(1e10) + i32.extend8_s(0x80)
		body(noLocals,
			0x41, 16, 0x41, 0x7f, 0x41, 4, 0xfc, 11, 0,
			0x41, 17, 0x41, 0, 0x41, 5, 0xfc, 10, 0, 0,
			0x41, 0, 0x2c, 0, 16, 0x41, 0, 0x2d, 0, 18, 0x6a,
			0x43, 0xf9, 0x02, 0x15, 0x50, 0xfc, 0, 0x6a,
			0x41, 0x80, 0x01, 0xc0, 0x6a),
		// passive(i): table[8..10) = passive segment 1; table[8+i](41)
		body(noLocals, 0x41, 8, 0x41, 0, 0x41, 2, 0xfc, 12, 1, 0, 0xfc, 13, 5,
			0x41, 41, 0x20, 0, 0x41, 8, 0x6a, opCallIndirect, 1, 0),
		// global: table[6] = global 2 (fib); table[6](12)
		body(noLocals, 0x41, 6, 0x23, 2, 0x26, 0, 0x41, 12, 0x41, 6, opCallIndirect, 1, 0),
	))
	data := sec(secData, vecOf(
		cat([]byte{0}, i32c(0), str("hello")),
		cat([]byte{1}, str("xy")),
	))
	names := sec(secCustom, str("name"),
		sec(0, str("handmade")),
		sec(nameFunctions, vecOf(
			cat(u32(fAdd1), str("add1")), cat(u32(fStart), str("start")),
			cat(u32(fSum), str("sum")), cat(u32(fFib), str("fib")))),
		sec(nameLocals, vecOf(
			cat(u32(fSum), vecOf(cat(u32(0), str("n")), cat(u32(1), str("s")))))),
	)
	return cat(header, types, imports, funcs, table, memory, globals, exportSec, start, elems,
		sec(secDataCount, []byte{2}), codes, data, names, sec(secCustom, str("other"), []byte{1, 2, 3}))
}

func sortBytes(items [][]byte) {
	for i := range items {
		for j := i + 1; j < len(items); j++ {
			if string(items[j]) < string(items[i]) {
				items[i], items[j] = items[j], items[i]
			}
		}
	}
}

// envModule provides the hand-made module's imports: env.add1 and the
// immutable i32 global env.base = 100.
func envModule() []byte {
	return cat(header,
		sec(secType, vecOf([]byte{0x60, 1, i32, 1, i32})),
		sec(secFunction, vecOf([]byte{0})),
		sec(secGlobal, vecOf([]byte{i32, 0, 0x41, 0xe4, 0, opEnd})),
		sec(secExport, vecOf(cat(str("add1"), []byte{kindFunc, 0}), cat(str("base"), []byte{kindGlobal, 0}))),
		sec(secCode, vecOf(body(noLocals, 0x20, 0, 0x41, 1, 0x6a))))
}

type call struct {
	name string
	arg  uint64
}

var handmadeCalls = []call{{"sum", 100}, {"fib", 15}, {"via_table", 0}, {"via_table", 1},
	{"via_table", 2}, {"via_table", 3}, {"via_table", 4}, {"ref_call", 0}, {"counter", 0},
	{"bulk", 0}, {"passive", 0}, {"passive", 1}, {"global", 0}}

// callAll instantiates the module and makes the calls.
func callAll(t *testing.T, h *host, wasm []byte) []uint64 {
	t.Helper()
	ctx := context.Background()
	if _, err := h.rt.InstantiateModule(ctx, h.compile(t, envModule()), wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatal(err)
	}
	mod, err := h.rt.InstantiateModule(ctx, h.compile(t, wasm), wazero.NewModuleConfig())
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, c := range handmadeCalls {
		f := mod.ExportedFunction(c.name)
		var params []uint64
		if len(f.Definition().ParamTypes()) == 1 {
			params = []uint64{c.arg}
		}
		res, err := f.Call(ctx, params...)
		if err != nil {
			t.Fatalf("%s(%d): %v", c.name, c.arg, err)
		}
		got = append(got, res[0])
	}
	return got
}

func TestHandmadeModule(t *testing.T) {
	wasm := handmadeModule()
	want := callAll(t, newHost(t, 0), wasm)
	t.Logf("plain results: %d", want)
	fueled := instrument(t, wasm)
	for _, quantum := range []int64{1, 1000} {
		h := newHost(t, quantum)
		got := callAll(t, h, fueled)
		for i, c := range handmadeCalls {
			if got[i] != want[i] {
				t.Errorf("quantum %d: %s(%d) = %d, want %d", quantum, c.name, c.arg, got[i], want[i])
			}
		}
		if h.yields.Load() == 0 {
			t.Errorf("quantum %d: yield never called", quantum)
		}
		t.Logf("quantum %d: %d yields", quantum, h.yields.Load())
	}

	// The name section was renumbered and names the import.
	c := newHost(t, 1).compile(t, fueled)
	for name, f := range map[string]string{"sum": "sum", "fib": "fib"} {
		if got := c.ExportedFunctions()[name].Name(); got != f {
			t.Errorf("export %s is named %q, want %q", name, got, f)
		}
	}
	imports := c.ImportedFunctions()
	if len(imports) != 2 || imports[1].Name() != ImportModule+"."+ImportName {
		t.Errorf("imports: %v", imports)
	}
	if mod, name, ok := imports[1].Import(); !ok || mod != ImportModule || name != ImportName {
		t.Errorf("second import is %s.%s, want %s.%s", mod, name, ImportModule, ImportName)
	}
}
