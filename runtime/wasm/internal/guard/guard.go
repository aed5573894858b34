// Package guard instruments WebAssembly modules with a fuel counter so that
// the host regains control from a guest that computes without calling it.
//
// wazero's compiled code cannot be preempted: a guest spinning in a loop
// keeps its goroutine from reaching a safe point, and every stop-the-world
// GC of the whole host process waits for it. Instrument rewrites a module
// so that it counts down a fuel global at every loop header and at the
// entry of every function that calls another one, and calls an imported
// host function when the fuel runs out. That host call is where the host
// can let the Go scheduler and GC in (runtime.Gosched), enforce deadlines
// (by panicking or closing the module) and hand out the next quantum.
//
// # Contract with the host
//
// The instrumented module imports
//
//	(import "kouple_guard" "yield" (func (result i64)))
//
// appended as the last import, so its function index is the number of
// functions the input module imported, and every defined function's index
// moves up by one (calls, exports, the start function, element segments,
// ref.func and the name section are renumbered accordingly). It defines a
// mutable i64 global, appended after the module's other globals and
// exported as "kouple_fuel", initialised to 0.
//
// At each check point the module does
//
//	fuel -= CheckCost
//	if fuel <= 0 { fuel = yield() }
//
// so the first check point yields at once and the value yield returns is
// the quantum: the number of check points the guest may pass before the
// next yield. A yield returning 0 or less makes the next check yield again.
// The host may also read or set the global through wazero's api.Global /
// api.MutableGlobal while the guest is not running (for example from
// inside yield).
//
// Check points are every loop header (the check runs each time the loop
// starts an iteration) and the entry of every non-leaf function, i.e. one
// that contains call, call_indirect, return_call or return_call_indirect.
// The entry check is left out when the function's first instructions reach
// a loop header without any branch or call on the way, because that loop's
// check then runs on entry anyway; this is the common case for Go, whose
// wasm backend starts almost every function with its resume loop. Leaf
// functions without loops run a bounded number of instructions and are
// not instrumented.
//
// Instrumenting a module that already imports kouple_guard.yield or
// exports kouple_fuel fails with ErrAlreadyInstrumented; instrumenting is
// not idempotent, and double counting would be a silent bug.
package guard

import "errors"

const (
	// ImportModule and ImportName name the host function the instrumented
	// module imports; its type is (func (result i64)).
	ImportModule = "kouple_guard"
	ImportName   = "yield"
	// FuelExport is the name under which the fuel global, a mutable i64,
	// is exported.
	FuelExport = "kouple_fuel"
	// InitialFuel is the fuel global's initial value: the first check
	// point yields so the host sets the quantum.
	InitialFuel = 0
	// CheckCost is what one check point subtracts from the fuel.
	CheckCost = 1
)

// ErrAlreadyInstrumented is returned (wrapped in an *Error) for a module
// that already imports ImportModule.ImportName or exports FuelExport.
var ErrAlreadyInstrumented = errors.New("module is already instrumented")

// Instrument returns a copy of the WebAssembly binary module wasm with fuel
// checks added as described in the package documentation. The input is not
// modified. Errors are *Error values naming the section and offset where
// the input could not be handled; Instrument rejects rather than guesses
// (unknown opcodes, exception handling, GC types, malformed sections). It
// does not fully validate the module: the runtime still does that when it
// compiles the result. The output is a deterministic function of the input.
func Instrument(wasm []byte) ([]byte, error) {
	m, err := scan(wasm)
	if err != nil {
		return nil, err
	}
	return m.emit()
}
