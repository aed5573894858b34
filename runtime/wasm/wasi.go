package wasm

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// The base implements the WASI functions that touch descriptors itself, over each instance's own table
// (docs/rationale.md: "Serving from inside the guest"); wazero provides the rest (clocks, random, args, environ,
// exit). No file system is mounted, so wazero's file functions find nothing.
func instantiateWASI(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	export := func(name string, fn func(*instance, api.Module, []uint64) uint16, params ...api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			stack[0] = uint64(fn(instanceOf(ctx), mod, stack))
		}), params, []api.ValueType{i32}).Export(name)
	}
	export("fd_read", (*instance).fdRead, i32, i32, i32, i32)
	export("fd_write", (*instance).fdWrite, i32, i32, i32, i32)
	export("fd_close", (*instance).fdClose, i32)
	export("fd_fdstat_get", (*instance).fdFdstatGet, i32, i32)
	export("fd_fdstat_set_flags", (*instance).fdFdstatSetFlags, i32, i32)
	export("poll_oneoff", (*instance).pollOneoff, i32, i32, i32, i32)
	export("sock_accept", (*instance).sockAccept, i32, i32, i32)
	export("sock_shutdown", (*instance).sockShutdown, i32, i32)
	export("sock_recv", (*instance).notCapable, i32, i32, i32, i32, i32, i32)
	export("sock_send", (*instance).notCapable, i32, i32, i32, i32, i32)
	_, err := b.Instantiate(ctx)
	return err
}

// instantiateKouple provides the kouple_v1 host functions (docs/abi.md).
func instantiateKouple(ctx context.Context, r wazero.Runtime, name string) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := r.NewHostModuleBuilder(name)
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		stack[0] = uint64(instanceOf(ctx).abiVersion(uint32(stack[0])))
	}), []api.ValueType{i32}, []api.ValueType{i32}).Export("abi_version")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		stack[0] = uint64(instanceOf(ctx).call(mod, stack))
	}), []api.ValueType{i32, i32, i32, i32, i32, i32, i64, i32}, []api.ValueType{i32}).Export("call")
	exportTrace(b) // call_ctx and accept_call_context (trace.go)
	_, err := b.Instantiate(ctx)
	return err
}

type instanceKey struct{}

func instanceOf(ctx context.Context) *instance { return ctx.Value(instanceKey{}).(*instance) }

func (in *instance) notCapable(api.Module, []uint64) uint16 { return errnoNotcapab }

// iovecs calls fn with each guest buffer of an iovec array until fn says stop.
func iovecs(mem api.Memory, iovs, count uint32, fn func([]byte) bool) bool {
	for i := range count {
		ptr, ok1 := mem.ReadUint32Le(iovs + 8*i)
		n, ok2 := mem.ReadUint32Le(iovs + 8*i + 4)
		buf, ok3 := mem.Read(ptr, n)
		if !ok1 || !ok2 || !ok3 {
			return false
		}
		if !fn(buf) {
			break
		}
	}
	return true
}

func (in *instance) fdRead(mod api.Module, s []uint64) uint16 {
	return in.fdIO(mod, s, desc.read)
}

func (in *instance) fdWrite(mod api.Module, s []uint64) uint16 {
	return in.fdIO(mod, s, desc.write)
}

// fdIO moves bytes between a descriptor and the guest's iovecs (fd, iovs, iovs_len, result) with op, until
// op moves less than a whole buffer; an error after some bytes moved is reported next time.
func (in *instance) fdIO(mod api.Module, s []uint64, op func(desc, []byte) (int, uint16)) uint16 {
	d := in.lookup(uint32(s[0]))
	if d == nil {
		return errnoBadf
	}
	total, errno := 0, uint16(errnoSuccess)
	ok := iovecs(mod.Memory(), uint32(s[1]), uint32(s[2]), func(buf []byte) bool {
		n, e := op(d, buf)
		total += n
		if e != errnoSuccess {
			if total == 0 {
				errno = e
			}
			return false
		}
		return n == len(buf)
	})
	if !ok {
		return errnoFault
	}
	if errno != errnoSuccess {
		return errno
	}
	mod.Memory().WriteUint32Le(uint32(s[3]), uint32(total))
	return errnoSuccess
}

func (in *instance) fdClose(_ api.Module, s []uint64) uint16 {
	d := in.remove(uint32(s[0]))
	if d == nil {
		return errnoBadf
	}
	d.close()
	return errnoSuccess
}

func (in *instance) fdFdstatGet(mod api.Module, s []uint64) uint16 {
	d := in.lookup(uint32(s[0]))
	if d == nil {
		return errnoBadf
	}
	var st [24]byte
	st[0] = d.filetype()
	binary.LittleEndian.PutUint16(st[2:], d.flags())
	binary.LittleEndian.PutUint64(st[8:], ^uint64(0)) // rights: all; the descriptor decides what works
	binary.LittleEndian.PutUint64(st[16:], ^uint64(0))
	if !mod.Memory().Write(uint32(s[1]), st[:]) {
		return errnoFault
	}
	return errnoSuccess
}

// fdFdstatSetFlags accepts what the descriptor already is: every descriptor but stdio is non-blocking.
func (in *instance) fdFdstatSetFlags(_ api.Module, s []uint64) uint16 {
	d := in.lookup(uint32(s[0]))
	if d == nil {
		return errnoBadf
	}
	if uint16(s[1])&fdflagNonblock != d.flags()&fdflagNonblock {
		return errnoNotsup
	}
	return errnoSuccess
}

func (in *instance) sockAccept(mod api.Module, s []uint64) uint16 {
	d := in.lookup(uint32(s[0]))
	if d == nil {
		return errnoBadf
	}
	l, ok := d.(*listener)
	if !ok {
		return errnoNotsock
	}
	in.markReady()
	c, closed := l.accept()
	if c == nil {
		if closed {
			return errnoInval
		}
		return errnoAgain
	}
	fd := in.add(guestConn{c})
	if !mod.Memory().WriteUint32Le(uint32(s[2]), fd) {
		return errnoFault
	}
	return errnoSuccess
}

func (in *instance) sockShutdown(_ api.Module, s []uint64) uint16 {
	d := in.lookup(uint32(s[0]))
	c, ok := d.(guestConn)
	if !ok {
		return errnoNotsock
	}
	if s[1]&2 != 0 { // SHUT_WR
		c.shutdownWrite()
	}
	return errnoSuccess
}

// Subscription and event layouts of poll_oneoff.
const (
	subscriptionSize = 48
	eventSize        = 32
	eventClock       = 0
	eventFdRead      = 1
	eventFdWrite     = 2
	clockAbstime     = 1
	fdHangup         = 1
)

// pollOneoff reports the subscriptions that are ready; when none is, it parks the instance's goroutine in Go
// until a descriptor changes, the earliest clock subscription fires, or the instance is stopped.
func (in *instance) pollOneoff(mod api.Module, s []uint64) uint16 {
	inPtr, outPtr, nsubs, neventsPtr := uint32(s[0]), uint32(s[1]), uint32(s[2]), uint32(s[3])
	if nsubs == 0 {
		return errnoInval
	}
	mem := mod.Memory()
	in.memBytes.Store(uint64(mem.Size()))
	in.account(time.Now())
	defer func() { in.runningSince, in.lastAccount = time.Now(), time.Now() }() // computing again from here
	subs, ok := mem.Read(inPtr, nsubs*subscriptionSize)
	if !ok {
		return errnoFault
	}
	// subs stays valid while we wait: only the guest grows its memory, and it is inside this call.
	start := time.Now()
	var wakeAt time.Time
	for i := range nsubs {
		sub := subs[i*subscriptionSize:]
		if sub[8] != eventClock {
			continue
		}
		at := clockDeadline(start, sub)
		if wakeAt.IsZero() || at.Before(wakeAt) {
			wakeAt = at
		}
	}
	events := in.events[:0]
	defer func() { in.events = events[:0] }()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		events = events[:0]
		now := time.Now()
		for i := range nsubs {
			sub := subs[i*subscriptionSize:]
			userdata := sub[0:8]
			switch typ := sub[8]; typ {
			case eventClock:
				if !now.Before(clockDeadline(start, sub)) {
					events = appendEvent(events, userdata, errnoSuccess, typ, 0, 0)
				}
			case eventFdRead, eventFdWrite:
				fd := binary.LittleEndian.Uint32(sub[16:])
				d := in.lookup(fd)
				if d == nil {
					events = appendEvent(events, userdata, errnoBadf, typ, 0, 0)
					continue
				}
				var ready, hangup bool
				var nbytes uint64
				if typ == eventFdRead {
					ready, nbytes, hangup = d.readable()
				} else {
					ready, hangup = d.writable()
				}
				if ready {
					var flags uint16
					if hangup {
						flags = fdHangup
					}
					events = appendEvent(events, userdata, errnoSuccess, typ, nbytes, flags)
				}
			default:
				events = appendEvent(events, userdata, errnoInval, typ, 0, 0)
			}
		}
		if len(events) > 0 {
			if !mem.Write(outPtr, events) || !mem.WriteUint32Le(neventsPtr, uint32(len(events)/eventSize)) {
				return errnoFault
			}
			return errnoSuccess
		}
		var timeout <-chan time.Time
		if !wakeAt.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(wakeAt))
			}
			timeout = timer.C
		}
		select {
		case <-in.wakeCh:
		case <-timeout:
		case <-in.stopping:
			in.exit(mod, 0)
		}
	}
}

// clockDeadline is when a clock subscription fires, for a relative timeout counted from start.
func clockDeadline(start time.Time, sub []byte) time.Time {
	clockID := binary.LittleEndian.Uint32(sub[16:])
	timeout := binary.LittleEndian.Uint64(sub[24:])
	flags := binary.LittleEndian.Uint16(sub[40:])
	if flags&clockAbstime != 0 {
		if clockID == 0 { // realtime
			return time.Unix(0, int64(timeout))
		}
		return processStart.Add(time.Duration(timeout)) // monotonic, as given by nanotime below
	}
	return start.Add(time.Duration(min(timeout, uint64(1<<62))))
}

func appendEvent(b []byte, userdata []byte, errno uint16, typ byte, nbytes uint64, flags uint16) []byte {
	var e [eventSize]byte
	copy(e[0:8], userdata)
	binary.LittleEndian.PutUint16(e[8:], errno)
	e[10] = typ
	binary.LittleEndian.PutUint64(e[16:], nbytes)
	binary.LittleEndian.PutUint16(e[24:], flags)
	return append(b, e[:]...)
}

// exit ends the guest from inside a host function, as proc_exit does.
func (in *instance) exit(mod api.Module, code uint32) {
	_ = mod.CloseWithExitCode(context.Background(), code)
	panic(sys.NewExitError(code))
}

var processStart = time.Now()

// nanotime is the guest's monotonic clock: nanoseconds since the base started.
func nanotime() int64 { return int64(time.Since(processStart)) }
