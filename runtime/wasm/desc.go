package wasm

import (
	"context"
	"errors"
	"io"
	"sync"
)

var (
	errEOF  = io.EOF
	errPipe = errors.New("the module closed the connection")
)

// WASI errno values (wasi_snapshot_preview1).
const (
	errnoSuccess  = 0
	errnoAgain    = 6
	errnoBadf     = 8
	errnoFault    = 21
	errnoInval    = 28
	errnoNotsock  = 57
	errnoNotsup   = 58
	errnoPipe     = 64
	errnoNotcapab = 76
)

// WASI file types and flags.
const (
	filetypeCharacterDevice = 2
	filetypeSocketStream    = 6
	fdflagAppend            = 1
	fdflagNonblock          = 4
)

// desc is a descriptor in an instance's table. Every method runs on the instance's own goroutine, except
// where a type says otherwise; none of them blocks.
type desc interface {
	filetype() uint8
	flags() uint16
	// read copies available bytes into p; 0 and errnoSuccess is end of stream.
	read(p []byte) (int, uint16)
	write(p []byte) (int, uint16)
	// readable reports whether read would not return EAGAIN, how many bytes wait, and whether the peer is gone.
	readable() (ready bool, nbytes uint64, hangup bool)
	writable() (ready bool, hangup bool)
	close()
}

// guestConn is the guest's end of a conn.
type guestConn struct{ *conn }

func (c guestConn) filetype() uint8 { return filetypeSocketStream }
func (c guestConn) flags() uint16   { return fdflagNonblock }

func (c guestConn) read(p []byte) (int, uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.toGuest.len() > 0 {
		n := c.toGuest.pop(p)
		c.guestRead += uint64(n)
		c.cond.Broadcast() // a host writer may wait for room
		return n, errnoSuccess
	}
	if c.hostWriteDone || c.hostClosed {
		return 0, errnoSuccess
	}
	return 0, errnoAgain
}

func (c guestConn) write(p []byte) (int, uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hostClosed || c.guestWriteDone {
		return 0, errnoPipe
	}
	room := maxBuffered - c.toHost.len()
	if room <= 0 {
		return 0, errnoAgain
	}
	n := min(room, len(p))
	c.toHost.push(p[:n])
	c.cond.Broadcast()
	return n, errnoSuccess
}

func (c guestConn) readable() (bool, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.toGuest.len()
	hangup := c.hostWriteDone || c.hostClosed
	return n > 0 || hangup, uint64(n), hangup
}

func (c guestConn) writable() (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hostClosed || c.toHost.len() < maxBuffered, c.hostClosed
}

func (c guestConn) shutdownWrite() {
	c.mu.Lock()
	c.guestWriteDone = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c guestConn) close() { c.guestGone() }

// listener is the descriptor the guest accepts connections on; host goroutines queue connections into it.
type listener struct {
	inst *instance

	mu     sync.Mutex
	queue  []*conn
	closed bool
}

func (l *listener) filetype() uint8                { return filetypeSocketStream }
func (l *listener) flags() uint16                  { return fdflagNonblock }
func (l *listener) read([]byte) (int, uint16)      { return 0, errnoNotsup }
func (l *listener) write([]byte) (int, uint16)     { return 0, errnoNotsup }
func (l *listener) writable() (bool, bool)         { return false, false }
func (l *listener) readable() (bool, uint64, bool) { return l.pending() }

func (l *listener) pending() (bool, uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue) > 0 || l.closed, uint64(len(l.queue)), l.closed
}

// offer queues a connection for the guest to accept; it runs on host goroutines.
func (l *listener) offer(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.queue = append(l.queue, c)
	l.inst.wake()
	return true
}

func (l *listener) accept() (*conn, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return nil, l.closed
	}
	c := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	return c, false
}

// close refuses new connections and fails the queued ones.
func (l *listener) close() {
	l.mu.Lock()
	queued := l.queue
	l.queue, l.closed = nil, true
	l.mu.Unlock()
	for _, c := range queued {
		c.guestGone()
	}
	l.inst.wake()
}

// future is the descriptor a host call answers on: a status byte and the payload, then end of stream.
type future struct {
	inst   *instance
	cancel context.CancelFunc

	mu   sync.Mutex
	done bool
	data []byte
}

func (f *future) filetype() uint8            { return filetypeSocketStream }
func (f *future) flags() uint16              { return fdflagNonblock }
func (f *future) write([]byte) (int, uint16) { return 0, errnoBadf }
func (f *future) writable() (bool, bool)     { return false, false }

// complete runs on the goroutine that made the call.
func (f *future) complete(data []byte) {
	f.mu.Lock()
	f.done, f.data = true, data
	f.mu.Unlock()
	f.inst.wake()
}

func (f *future) read(p []byte) (int, uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		return 0, errnoAgain
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, errnoSuccess
}

func (f *future) readable() (bool, uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done, uint64(len(f.data)), false
}

func (f *future) close() { f.cancel() }

// stdio is descriptors 0-2: stdin is empty, stdout and stderr go to the module's log.
type stdio struct {
	w io.Writer // nil for stdin
}

func (s stdio) filetype() uint8 { return filetypeCharacterDevice }
func (s stdio) flags() uint16 {
	if s.w != nil {
		return fdflagAppend
	}
	return 0
}
func (s stdio) read([]byte) (int, uint16) {
	if s.w != nil {
		return 0, errnoBadf
	}
	return 0, errnoSuccess
}
func (s stdio) write(p []byte) (int, uint16) {
	if s.w == nil {
		return 0, errnoBadf
	}
	s.w.Write(p)
	return len(p), errnoSuccess
}
func (s stdio) readable() (bool, uint64, bool) { return true, 0, false }
func (s stdio) writable() (bool, bool)         { return true, false }
func (s stdio) close()                         {}
