package wasm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// Bounds of the transport's pool of idle connections.
const (
	maxIdleConns    = 1024
	idleConnTimeout = 90 * time.Second
)

// transport is the proxy's RoundTripper into a module's instances: HTTP/1.1 over in-memory connections, written
// and read on the calling goroutine. http.Transport gives every connection a reader and a writer goroutine and
// hands each request and response between them and the caller; here the only handoffs left are the ones to
// and from the guest (docs/rationale.md, "Serving performance").
type transport struct {
	dial func(ctx context.Context) (hostConn, error)

	mu     sync.Mutex
	idle   []*pconn // most recently used last
	closed bool
}

// pconn is a connection the transport may reuse for one request after another.
type pconn struct {
	c        hostConn
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

var _ http.RoundTripper = (*transport)(nil)

// RoundTrip sends one request on an idle connection or a new one and reads the answer's header. The request
// body, if any, is written by a goroutine of its own while the answer is read, because the guest may answer
// before it has read the whole body (an echo does).
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for {
		pc, reused, err := t.conn(ctx)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.exchange(pc, req)
		if err == nil {
			return resp, nil
		}
		// A reused connection whose guest side went away before answering anything is retried on a new
		// one, if the request can safely be sent again (as http.Transport does).
		var unanswered unansweredError
		if !reused || !errors.As(err, &unanswered) || !replayable(req) || ctx.Err() != nil {
			return nil, err
		}
	}
}

// unansweredError is a failure before any byte of the answer arrived.
type unansweredError struct{ err error }

func (e unansweredError) Error() string { return e.err.Error() }
func (e unansweredError) Unwrap() error { return e.err }

// replayable reports whether req may be sent twice: an idempotent method and no body.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return !hasBody(req)
	}
	return false
}

func hasBody(req *http.Request) bool { return req.Body != nil && req.Body != http.NoBody }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// exchange writes req on pc and reads the answer's header. On error pc is closed.
func (t *transport) exchange(pc *pconn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// Cancelling the request closes the connection, which ends any read or write on it.
	stopCancel := context.AfterFunc(ctx, func() { pc.c.Close() })
	fail := func(err error) (*http.Response, error) {
		pc.c.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	// A failed exchange may be retried only if the guest never read this request: else it may have acted on it
	// (a request that crashed its instance must not crash the replacement too).
	readBefore := pc.c.guestReads()
	wrote := make(chan error, 1)
	if hasBody(req) {
		go func() { wrote <- pc.writeRequest(req) }()
	} else if err := pc.writeRequest(req); err != nil {
		stopCancel()
		return fail(unansweredError{fmt.Errorf("sending the request: %w", err)})
	} else {
		wrote <- nil
	}
	trace := httptrace.ContextClientTrace(ctx)
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			stopCancel()
			err = fmt.Errorf("reading the answer: %w", err)
			if errors.Is(err, io.EOF) && pc.c.guestReads() == readBefore { // nothing answered, nothing read
				err = unansweredError{err}
			}
			return fail(err)
		}
		// 1xx answers other than 101 come before the real one: pass them on to whoever traces the request.
		if code := resp.StatusCode; code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			break
		}
		if trace != nil && trace.Got1xxResponse != nil && resp.StatusCode != http.StatusContinue {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				stopCancel()
				return fail(err)
			}
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now carries another protocol; the proxy copies both ways and closes it.
		stopCancel()
		resp.Body = &upgradedBody{pc: pc}
		return resp, nil
	}
	body := &answerBody{t: t, pc: pc, body: resp.Body, wrote: wrote, stopCancel: stopCancel,
		reuse: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		body.finish(true)
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

func (pc *pconn) writeRequest(req *http.Request) error {
	if err := req.Write(pc.bw); err != nil {
		return err
	}
	return pc.bw.Flush()
}

// answerBody is an answer's body: read to its end, it gives its connection back to the pool.
type answerBody struct {
	t          *transport
	pc         *pconn
	body       io.ReadCloser
	wrote      chan error
	stopCancel func() bool
	reuse      bool

	once sync.Once
}

func (b *answerBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *answerBody) Close() error {
	b.finish(false)
	return nil
}

// finish releases the connection: back to the pool if the whole answer was read, the request was wholly
// written, the request was not cancelled and neither side asked to close; closed otherwise.
func (b *answerBody) finish(atEOF bool) {
	b.once.Do(func() {
		notCancelled := b.stopCancel()
		reuse := atEOF && b.reuse && notCancelled
		if reuse {
			select {
			case err := <-b.wrote:
				reuse = err == nil
			default:
				reuse = false // the guest answered before reading the whole body
			}
		}
		if reuse {
			b.t.put(b.pc)
		} else {
			b.pc.c.Close()
		}
	})
}

// upgradedBody is the connection after 101 Switching Protocols, as the proxy wants it: read and write both.
type upgradedBody struct{ pc *pconn }

func (u *upgradedBody) Read(p []byte) (int, error)  { return u.pc.br.Read(p) }
func (u *upgradedBody) Write(p []byte) (int, error) { return u.pc.c.Write(p) }
func (u *upgradedBody) Close() error                { return u.pc.c.Close() }

// conn takes the most recently used idle connection whose guest side is still there, or dials a new one.
func (t *transport) conn(ctx context.Context) (pc *pconn, reused bool, err error) {
	t.mu.Lock()
	for len(t.idle) > 0 {
		pc = t.idle[len(t.idle)-1]
		t.idle[len(t.idle)-1] = nil
		t.idle = t.idle[:len(t.idle)-1]
		if pc.c.usable() {
			t.mu.Unlock()
			return pc, true, nil
		}
		pc.c.Close()
	}
	t.mu.Unlock()
	c, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	return &pconn{c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}, false, nil
}

// put keeps pc for the next request, and closes connections that idled too long or overflow the pool.
func (t *transport) put(pc *pconn) {
	now := time.Now()
	pc.idleFrom = now
	var drop []*pconn
	t.mu.Lock()
	if t.closed {
		drop = append(drop, pc)
	} else {
		t.idle = append(t.idle, pc)
		n := 0
		for n < len(t.idle) && (len(t.idle)-n > maxIdleConns || now.Sub(t.idle[n].idleFrom) > idleConnTimeout) {
			n++
		}
		if n > 0 {
			drop = append(drop, t.idle[:n]...)
			t.idle = append(t.idle[:0], t.idle[n:]...)
		}
	}
	t.mu.Unlock()
	for _, pc := range drop {
		pc.c.Close()
	}
}

// close closes the idle connections and every connection given back from now on.
func (t *transport) close() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = nil, true
	t.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}
