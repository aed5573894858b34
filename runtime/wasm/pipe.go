package wasm

import (
	"net"
	"os"
	"sync"
	"time"
)

// maxBuffered bounds the bytes buffered in each direction of a connection. A host writer waits for the guest
// to read below it; a guest writer gets EAGAIN and polls for writability.
const maxBuffered = 1 << 20

// byteQueue is a FIFO of bytes that reuses its storage.
type byteQueue struct {
	buf []byte
	off int
}

func (q *byteQueue) len() int { return len(q.buf) - q.off }

func (q *byteQueue) push(p []byte) {
	if q.off > 0 && len(q.buf)+len(p) > cap(q.buf) {
		n := copy(q.buf, q.buf[q.off:])
		q.buf, q.off = q.buf[:n], 0
	}
	q.buf = append(q.buf, p...)
}

func (q *byteQueue) pop(p []byte) int {
	n := copy(p, q.buf[q.off:])
	q.off += n
	if q.off == len(q.buf) {
		q.buf, q.off = q.buf[:0], 0
	}
	return n
}

// conn is an in-memory stream between a host goroutine (through hostConn, a net.Conn) and a guest descriptor.
// Host readers and writers wait on cond; the guest never waits here: it is told EAGAIN and polls.
type conn struct {
	inst *instance // whose poll_oneoff to wake

	mu        sync.Mutex
	cond      sync.Cond
	toGuest   byteQueue
	toHost    byteQueue
	guestRead uint64 // bytes the guest has read, in all

	hostWriteDone  bool // the host will write no more: the guest reads EOF once drained
	hostClosed     bool // the host closed the connection: guest writes fail
	guestWriteDone bool // the guest will write no more: the host reads EOF once drained
	guestClosed    bool // the guest closed its descriptor, or its instance died: host writes fail

	readDeadline, writeDeadline time.Time
	timers                      [2]*time.Timer
}

func newConn(inst *instance) *conn {
	c := &conn{inst: inst}
	c.cond.L = &c.mu
	return c
}

// guestGone marks the guest side closed and wakes host waiters; used at fd_close and when the instance dies.
func (c *conn) guestGone() {
	c.mu.Lock()
	c.guestClosed, c.guestWriteDone = true, true
	c.cond.Broadcast()
	c.mu.Unlock()
}

// hostConn is the host's end of a conn.
type hostConn struct{ *conn }

var _ net.Conn = hostConn{}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "kouple" }
func (pipeAddr) String() string  { return "module" }

// guestReads is how many bytes the guest has read from the connection.
func (c hostConn) guestReads() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.guestRead
}

func (c hostConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (c hostConn) RemoteAddr() net.Addr { return pipeAddr{} }

func (c hostConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.hostClosed:
			return 0, net.ErrClosed
		case c.toHost.len() > 0:
			full := c.toHost.len() >= maxBuffered
			n := c.toHost.pop(p)
			if full {
				c.inst.wake() // the guest may be waiting to write
			}
			return n, nil
		case c.guestWriteDone:
			return 0, errEOF
		case expired(c.readDeadline):
			return 0, os.ErrDeadlineExceeded
		}
		c.cond.Wait()
	}
}

func (c hostConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	written := 0
	for len(p) > 0 {
		switch {
		case c.hostClosed || c.hostWriteDone:
			return written, net.ErrClosed
		case c.guestClosed:
			return written, errPipe
		case expired(c.writeDeadline):
			return written, os.ErrDeadlineExceeded
		}
		if room := maxBuffered - c.toGuest.len(); room > 0 {
			n := min(room, len(p))
			c.toGuest.push(p[:n])
			p, written = p[n:], written+n
			c.inst.wake()
			continue
		}
		c.cond.Wait()
	}
	return written, nil
}

// usable reports whether neither side has closed the connection or ended its writing: an idle connection
// the transport may send another request on.
func (c hostConn) usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.hostClosed && !c.hostWriteDone && !c.guestClosed && !c.guestWriteDone
}

func (c hostConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hostClosed {
		return nil
	}
	c.hostClosed, c.hostWriteDone = true, true
	for _, t := range c.timers {
		if t != nil {
			t.Stop()
		}
	}
	c.cond.Broadcast()
	c.inst.wake()
	return nil
}

// CloseWrite half-closes the connection: the guest reads EOF, the host can still read the answer.
func (c hostConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hostWriteDone = true
	c.inst.wake()
	return nil
}

func (c hostConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c hostConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(0, t) }
func (c hostConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(1, t) }

func (c hostConn) setDeadline(which int, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if which == 0 {
		c.readDeadline = t
	} else {
		c.writeDeadline = t
	}
	if old := c.timers[which]; old != nil {
		old.Stop()
		c.timers[which] = nil
	}
	if !t.IsZero() {
		c.timers[which] = time.AfterFunc(time.Until(t), func() {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		})
	}
	c.cond.Broadcast()
	return nil
}

func expired(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }
