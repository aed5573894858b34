package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// Descriptors every instance starts with (docs/abi.md).
const (
	fdListener  = 3 // HTTP connections
	fdCalls     = 4 // method calls from the base and other modules
	firstFreeFD = 5
)

// instance is one running copy of a module: a wazero module instance whose _start runs on its own goroutine,
// and the descriptor table that goroutine serves through.
type instance struct {
	m   *Module
	num int

	wakeCh   chan struct{} // something a poll may wait for changed
	stopping chan struct{} // closed to make the guest exit at its next wait
	ready    chan struct{} // closed when the guest first accepts
	exited   chan struct{} // closed when _start has returned and everything is released

	stopOnce, readyOnce sync.Once
	exitErr             error // why _start returned; read after exited is closed

	ctx    context.Context // for host calls: cancelled when the instance ends
	cancel context.CancelFunc
	calls  sync.WaitGroup

	mu       sync.Mutex
	table    map[uint32]desc
	nextFD   uint32
	listener *listener // HTTP
	callsIn  *listener // method calls

	memBytes atomic.Uint64
	cpu      atomic.Int64 // nanoseconds the guest has been running (not waiting)
	events   []byte       // poll_oneoff's event buffer, reused; guest goroutine only
	// Guest goroutine only: when the guest last stopped waiting, when its CPU time was last counted, and why
	// the guard stopped it.
	runningSince, lastAccount time.Time
	killed                    string
	stderr                    *tailWriter
}

func newInstance(m *Module, num int) *instance {
	in := &instance{
		m:        m,
		num:      num,
		wakeCh:   make(chan struct{}, 1),
		stopping: make(chan struct{}),
		ready:    make(chan struct{}),
		exited:   make(chan struct{}),
		table:    make(map[uint32]desc),
		nextFD:   firstFreeFD,
	}
	in.ctx, in.cancel = context.WithCancel(m.ctx)
	in.listener = &listener{inst: in}
	in.callsIn = &listener{inst: in}
	in.stderr = newTailWriter(m.logger, "stderr")
	in.table[0] = stdio{}
	in.table[1] = stdio{w: newLineLogger(m.logger, "stdout")}
	in.table[2] = stdio{w: in.stderr}
	in.table[fdListener] = in.listener
	in.table[fdCalls] = in.callsIn
	return in
}

// wake tells a waiting poll_oneoff to look again. It never blocks.
func (in *instance) wake() {
	select {
	case in.wakeCh <- struct{}{}:
	default:
	}
}

func (in *instance) markReady() { in.readyOnce.Do(func() { close(in.ready) }) }

// stop makes the guest exit the next time it waits; a guest that is computing finishes that first.
func (in *instance) stop() { in.stopOnce.Do(func() { close(in.stopping) }) }

func (in *instance) lookup(fd uint32) desc {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.table[fd]
}

func (in *instance) add(d desc) uint32 {
	in.mu.Lock()
	defer in.mu.Unlock()
	for in.table[in.nextFD] != nil {
		in.nextFD++
	}
	fd := in.nextFD
	in.table[fd] = d
	in.nextFD++
	return fd
}

func (in *instance) remove(fd uint32) desc {
	in.mu.Lock()
	defer in.mu.Unlock()
	d := in.table[fd]
	delete(in.table, fd)
	if fd < in.nextFD && fd >= firstFreeFD {
		in.nextFD = fd
	}
	return d
}

// run executes the guest's _start until it returns, then releases everything the instance holds. It is the
// instance's own goroutine.
func (in *instance) run(mod api.Module, start api.Function) {
	in.runningSince, in.lastAccount = time.Now(), time.Now()
	_, err := start.Call(context.WithValue(in.ctx, instanceKey{}, in))
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 0:
		err = nil
		select {
		case <-in.stopping:
		default:
			err = errors.New("the module's main returned (exit code 0): a module serves until the base stops it; does main call sdk.Serve()?")
		}
	case errors.As(err, &exit):
		err = fmt.Errorf("the module exited with code %d", exit.ExitCode())
	case err == nil:
		err = errors.New("the module's _start returned: a module serves until the base stops it; does main call sdk.Serve()?")
	case in.killed != "":
		err = errors.New(in.killed)
	default:
		err = fmt.Errorf("the module trapped: %w", err)
	}
	if err != nil && in.killed == "" {
		if crash := in.stderr.crash(); crash != "" {
			err = fmt.Errorf("%w: %s", err, crash)
		} else if tail := in.stderr.tail(); tail != "" {
			err = fmt.Errorf("%w; its last output: %s", err, tail)
		}
	}
	in.release(mod)
	in.exitErr = err
	close(in.exited)
}

// release fails every connection and call of the instance and frees the wasm instance.
func (in *instance) release(mod api.Module) {
	in.cancel()
	in.listener.close()
	in.callsIn.close()
	in.mu.Lock()
	table := in.table
	in.table = map[uint32]desc{}
	in.mu.Unlock()
	for _, d := range table {
		d.close()
	}
	in.calls.Wait()
	_ = mod.Close(context.Background())
	in.memBytes.Store(0)
}
