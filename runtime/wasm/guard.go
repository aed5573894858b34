package wasm

import (
	"context"
	"fmt"
	goruntime "runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/kouple/kouple/runtime/wasm/internal/guard"
)

// instantiateGuard provides kouple_guard.yield, which every instrumented module calls each time its fuel runs
// out: it lets the rest of the base run (the Go scheduler, a stop-the-world GC, other modules), and stops an
// instance that has computed past its CPU budget without waiting.
func instantiateGuard(ctx context.Context, r wazero.Runtime) error {
	_, err := r.NewHostModuleBuilder(guard.ImportModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			stack[0] = instanceOf(ctx).yield()
		}), nil, []api.ValueType{api.ValueTypeI64}).
		Export(guard.ImportName).
		Instantiate(ctx)
	return err
}

// errOverBudget ends an instance that computed past its CPU budget.
type errOverBudget struct{ msg string }

func (e *errOverBudget) Error() string { return e.msg }

// yield runs on the instance's goroutine when its fuel runs out, and returns the next quantum.
func (in *instance) yield() uint64 {
	now := time.Now()
	in.account(now)
	if busy := now.Sub(in.runningSince); busy > in.m.budget {
		in.killed = fmt.Sprintf("the instance computed for %s without waiting, past its CPU budget of %s (limits.cpuBudget)", busy.Round(time.Millisecond), in.m.budget)
		panic(&errOverBudget{in.killed})
	}
	goruntime.Gosched()
	return in.m.quantum
}

// account adds the time the guest has been running since the last account to its CPU time.
func (in *instance) account(now time.Time) {
	in.cpu.Add(int64(now.Sub(in.lastAccount)))
	in.lastAccount = now
}
