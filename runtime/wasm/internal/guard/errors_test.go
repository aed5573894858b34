package guard

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func TestGarbageIsAnError(t *testing.T) {
	code := func(b ...byte) []byte {
		return cat(header, sec(secType, vecOf([]byte{0x60, 0, 0})), sec(secFunction, vecOf([]byte{0})), sec(secCode, vecOf(body(noLocals, b...))))
	}
	for _, c := range []struct {
		name, input, want string
	}{
		{"empty", "", "header section at offset 0x0"},
		{"text", "(module)", "bad magic"},
		{"version 2", "\x00asm\x02\x00\x00\x00", "bad magic or version"},
		{"unknown section", string(header) + "\x63\x00", "unknown section id 99"},
		{"section too long", string(header) + "\x01\x05\x00", "exceeds the remaining"},
		{"repeated section", string(cat(header, sec(secType, []byte{0}), sec(secType, []byte{0}))), "out of order or repeated"},
		{"out of order", string(cat(header, sec(secImport, []byte{0}), sec(secType, []byte{0}))), "out of order or repeated"},
		{"LEB too long", string(header) + "\x01\x80\x80\x80\x80\x80\x00", "longer than 32 bits"},
		{"LEB overflow", string(header) + "\x01\xff\xff\xff\xff\x7f", "overflows 32 bits"},
		{"GC type", string(cat(header, sec(secType, vecOf([]byte{0x5f, 0})))), "unsupported type form 0x5f"},
		{"tag section", string(cat(header, sec(secTag, []byte{0}))), "exception handling"},
		{"unknown opcode", string(code(0xff)), "code section at offset 0x17: unsupported opcode 0xff"},
		{"try", string(code(0x06, blockEmpty, opEnd)), "unsupported opcode 0x06"},
		{"bad misc op", string(code(0xfc, 99)), "unsupported opcode 0xfc 99"},
		{"truncated body", string(code(0x41)), "does not end with end"},
		{"after end", string(code(opEnd, 0x01)), "after the end"},
		{"call out of range", string(code(opCall, 7)), "function index 7 out of range"},
		{"trailing bytes", string(cat(header, sec(secType, []byte{0, 0}))), "unexpected bytes at the end"},
		{"export clash", string(cat(header, sec(secExport, vecOf(cat(str(FuelExport), []byte{kindGlobal, 0}))))), "already instrumented"},
	} {
		out, err := Instrument([]byte(c.input))
		var e *Error
		switch {
		case err == nil:
			t.Errorf("%s: no error; output %x", c.name, out)
		case !errors.As(err, &e):
			t.Errorf("%s: error %v is not an *Error", c.name, err)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
		}
	}
}

// Every prefix of a valid module either fails cleanly or instruments
// into something that parses again.
func TestTruncatedModules(t *testing.T) {
	wasm := handmadeModule()
	for n := range len(wasm) {
		checkNoPanic(t, wasm[:n])
	}
}

func checkNoPanic(t *testing.T, wasm []byte) {
	t.Helper()
	out, err := Instrument(wasm)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not an *Error", err)
		}
		return
	}
	if _, err := Instrument(out); !errors.Is(err, ErrAlreadyInstrumented) {
		t.Fatalf("instrumenting the output again: %v, want ErrAlreadyInstrumented\ninput %x", err, wasm)
	}
}

// An empty module gets the import, the global and the export, in valid
// sections.
func TestEmptyModule(t *testing.T) {
	out := instrument(t, header)
	ctx := context.Background()
	h := newHost(t, 5)
	mod, err := h.rt.InstantiateModule(ctx, h.compile(t, out), wazero.NewModuleConfig())
	if err != nil {
		t.Fatal(err)
	}
	g, ok := mod.ExportedGlobal(FuelExport).(api.MutableGlobal)
	if !ok {
		t.Fatalf("%s is not an exported mutable global", FuelExport)
	}
	if g.Type() != api.ValueTypeI64 || g.Get() != InitialFuel {
		t.Errorf("fuel global: type %v value %d", g.Type(), g.Get())
	}
	g.Set(42)
	if g.Get() != 42 {
		t.Error("cannot set the fuel")
	}
}
