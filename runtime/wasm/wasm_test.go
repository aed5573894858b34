package wasm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/wasm"
)

func TestMain(m *testing.M) { moduletest.Main(m) }

func newRuntime(t testing.TB) *wasm.Runtime {
	t.Helper()
	r, err := wasm.New(wasm.Config{CacheDir: moduletest.CacheDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// testHost answers the probe module's calls.
var testHost = runtime.HostFunc(func(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error) {
	switch target + "." + method {
	case "test.sleep":
		var ms int
		if err := json.Unmarshal(payload, &ms); err != nil {
			return nil, err
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return json.Marshal(fmt.Sprintf("slept %d ms for %s", ms, caller))
	case "test.barrier":
		// Each call waits until n calls wait at once: it proves that n requests are in flight together.
		var n int
		if err := json.Unmarshal(payload, &n); err != nil {
			return nil, err
		}
		barrier.Lock()
		if barrier.ch == nil {
			barrier.ch = make(chan struct{})
		}
		ch := barrier.ch
		barrier.waiting++
		if barrier.waiting == n {
			close(ch)
			barrier.ch, barrier.waiting = nil, 0
		}
		barrier.Unlock()
		select {
		case <-ch:
			return json.Marshal(fmt.Sprintf("%d waited together", n))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "test.cancelled":
		var id string
		if err := json.Unmarshal(payload, &id); err != nil {
			return nil, err
		}
		select {
		case cancelled <- id:
		default:
		}
		return nil, nil
	case "test.fail":
		return nil, fmt.Errorf("failing on purpose")
	}
	return nil, fmt.Errorf("no method %s.%s", target, method)
})

// cancelled receives the id of each probe request whose handler saw its context cancelled.
var cancelled = make(chan string, 16)

var barrier struct {
	sync.Mutex
	waiting int
	ch      chan struct{}
}

// start loads and starts a module and serves it on a real HTTP listener.
func start(t testing.TB, dir string, spec runtime.Spec) (runtime.Module, *httptest.Server) {
	t.Helper()
	r := newRuntime(t)
	spec.Artifact = moduletest.Build(t, dir, "")
	if spec.Host == nil {
		spec.Host = testHost
	}
	m, err := r.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := newServer(m)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m, srv
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHelloServes(t *testing.T) {
	_, srv := start(t, "examples/hello", runtime.Spec{})
	code, body := get(t, srv.URL+"/")
	if code != 200 || body != "Hello from hello 1.0.0!\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	code, body = get(t, srv.URL+"/wait?ms=20")
	if code != 200 || body != "waited 20 ms\n" {
		t.Fatalf("GET /wait = %d %q", code, body)
	}
	code, _ = get(t, srv.URL+"/nothing")
	if code != 404 {
		t.Fatalf("GET /nothing = %d, want 404", code)
	}
}

// TestConcurrentHostWaits: 100 requests that each wait on the host are in flight in one instance at once:
// each host call returns only when all 100 are waiting.
func TestConcurrentHostWaits(t *testing.T) {
	m, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	const n = 100
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: n, MaxIdleConnsPerHost: n}, Timeout: time.Minute}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	began := time.Now()
	for range n {
		wg.Go(func() {
			resp, err := client.Get(fmt.Sprintf("%s/hostbarrier?n=%d", srv.URL, n))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), "100 waited together") {
				errs <- fmt.Errorf("%d %q", resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("100 concurrent host waits released together after %v", time.Since(began))
	if s := m.Stats(); s.Instances != 1 || s.Restarts != 0 {
		t.Errorf("stats = %+v, want 1 instance and no restart", s)
	}
	code, body := get(t, srv.URL+"/hostwait?ms=10")
	if code != 200 || body != "slept 10 ms for probe\n" {
		t.Errorf("hostwait = %d %q", code, body)
	}
	code, body = get(t, srv.URL+"/callerr")
	if code != 200 || body != "call test.fail: failing on purpose\n" {
		t.Errorf("callerr = %d %q", code, body)
	}
}

// TestStreaming: a streamed body and server-sent events reach the client chunk by chunk, not at the end.
func TestStreaming(t *testing.T) {
	_, srv := start(t, "examples/hello", runtime.Spec{})
	resp, err := http.Get(srv.URL + "/events?n=2&ms=1500")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	buf := make([]byte, 4096)
	n, err := resp.Body.Read(buf)
	first := time.Now()
	if err != nil || !strings.Contains(string(buf[:n]), "data: tick 0 from hello 1.0.0") {
		t.Fatalf("first event: %q, %v", buf[:n], err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(rest), "data: tick 1") {
		t.Fatalf("second event: %q, %v", rest, err)
	}
	// Buffered to the end, both events would arrive together; streamed, the second comes ~1.5 s later.
	if gap := time.Since(first); gap < 500*time.Millisecond {
		t.Errorf("the second event came %v after the first: the stream was buffered", gap)
	}
}

// TestPanicFailsOnlyItsRequest: a handler's panic ends that request; the instance keeps serving.
func TestPanicFailsOnlyItsRequest(t *testing.T) {
	m, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	if code, _ := get(t, srv.URL+"/panic"); code < 500 {
		t.Errorf("GET /panic = %d, want a 5xx", code)
	}
	if code, body := get(t, srv.URL+"/ok"); code != 200 || body != "ok\n" {
		t.Errorf("GET /ok after a panic = %d %q", code, body)
	}
	if s := m.Stats(); s.Restarts != 0 || s.Instances != 1 {
		t.Errorf("stats after a handler panic = %+v: the instance should live on", s)
	}
}

// TestTrappedInstanceReplaced: an instance that dies fails its requests in flight with a clear 5xx and is
// replaced; the module serves again.
func TestTrappedInstanceReplaced(t *testing.T) {
	m, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	inflight := make(chan string, 1)
	go func() {
		code, body := get(t, srv.URL+"/hostwait?ms=30000")
		inflight <- fmt.Sprintf("%d %s", code, body)
	}()
	for m.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	code, body := get(t, srv.URL+"/crash")
	if code != http.StatusBadGateway || !strings.Contains(body, "module probe:1.0.0 failed to answer") {
		t.Errorf("GET /crash = %d %q", code, body)
	}
	if got := <-inflight; !strings.HasPrefix(got, "502 ") {
		t.Errorf("request in flight on the dead instance = %q, want 502", got)
	}
	if code, body := get(t, srv.URL+"/ok"); code != 200 || body != "ok\n" {
		t.Errorf("GET /ok after the crash = %d %q", code, body)
	}
	s := m.Stats()
	if s.Restarts != 1 || s.Instances != 1 || !strings.Contains(s.LastFailure, "goroutine panic on purpose") {
		t.Errorf("stats after the crash = %+v", s)
	}
}

// TestSandboxEnvironment: the module sees its own configuration, not the base's environment.
func TestSandboxEnvironment(t *testing.T) {
	t.Setenv("KOUPLE_SECRET_OF_THE_BASE", "leaked")
	_, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{Env: map[string]string{"GREETING": "hi"}})
	for k, want := range map[string]string{"GREETING": "hi", "KOUPLE_SECRET_OF_THE_BASE": "", "HOME": "", "KOUPLE_MODULE_VERSION": "1.0.0"} {
		if _, body := get(t, srv.URL+"/env?k="+k); body != k+"="+want+"\n" {
			t.Errorf("env %s: %q, want %q", k, body, want)
		}
	}
}

// TestEcho moves a large body through both directions of an in-memory connection.
func TestEcho(t *testing.T) {
	_, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	payload := strings.Repeat("0123456789abcdef", 300_000) // 4.8 MB: more than the pipe buffers
	resp, err := http.Post(srv.URL+"/echo", "application/octet-stream", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != payload {
		t.Fatalf("echo: %d, %d bytes back of %d", resp.StatusCode, len(b), len(payload))
	}
}

func newServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// TestSandboxReach: a module can open no file and no socket.
func TestSandboxReach(t *testing.T) {
	l := newServer(http.NotFoundHandler()) // a real listener the module must not reach
	defer l.Close()
	_, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	_, body := get(t, srv.URL+"/reach?file=/etc/passwd&addr="+strings.TrimPrefix(l.URL, "http://"))
	file, socket, _ := strings.Cut(body, "\n")
	if !strings.HasPrefix(file, "file: open /etc/passwd:") || strings.HasSuffix(file, "<nil>") {
		t.Errorf("the module opened a file: %q", file)
	}
	if !strings.HasPrefix(socket, "socket: dial tcp") || strings.Contains(socket, "<nil>") {
		t.Errorf("the module opened a socket: %q", socket)
	}
	t.Logf("%s", body)
}

// TestUpgrade: a connection upgraded to another protocol (as WebSocket upgrades it) carries bytes both ways
// between the client and the guest's hijacked connection.
func TestUpgrade(t *testing.T) {
	_, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET /upgrade HTTP/1.1\r\nHost: probe\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("upgrade answer: %d %v", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"one\n", "two\n"} {
		fmt.Fprint(c, msg)
		line, err := br.ReadString('\n')
		if err != nil || line != "echo: "+msg {
			t.Fatalf("after sending %q: %q, %v", msg, line, err)
		}
	}
}

// TestCancelReachesHandler: a client that gives up cancels the handler's context inside the guest.
func TestCancelReachesHandler(t *testing.T) {
	_, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/waitcancel?id=gone", nil)
	time.AfterFunc(200*time.Millisecond, cancel)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /waitcancel answered %d; want the request cancelled", resp.StatusCode)
	}
	select {
	case id := <-cancelled:
		if id != "gone" {
			t.Errorf("cancelled %q, want gone", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled 10 s after the client gave up")
	}
}

// TestAnswerBeforeBody: a handler that answers without reading a large request body fails nothing after it:
// the connection is given up, not reused with the body's rest in it.
func TestAnswerBeforeBody(t *testing.T) {
	m, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	payload := strings.Repeat("x", 3<<20) // more than the connection buffers
	for range 3 {
		resp, err := http.Post(srv.URL+"/ok", "text/plain", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /ok = %d, want 405", resp.StatusCode)
		}
		if code, body := get(t, srv.URL+"/ok"); code != 200 || body != "ok\n" {
			t.Errorf("GET /ok after an unread body = %d %q", code, body)
		}
	}
	if s := m.Stats(); s.Errors != 0 {
		t.Errorf("stats = %+v, want no errors", s)
	}
}
