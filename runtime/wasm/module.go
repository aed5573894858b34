package wasm

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// Timing of instance supervision.
const (
	startTimeout   = 30 * time.Second // from instantiation to the guest's first accept
	dialWait       = 5 * time.Second  // how long a request waits for an instance being replaced
	restartBackoff = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
	stableAfter    = 10 * time.Second // an instance that ran this long resets the backoff
)

// Module is a loaded wasm module version: its own wazero runtime, its compiled code, and its instances.
type Module struct {
	manifest     *manifest.Manifest
	wrt          wazero.Runtime
	releaseCache func() // gives back the compilation cache of the module's code (shared), after wrt is closed
	compiled     wazero.CompiledModule
	env          map[string]string
	host         runtime.Host
	logger       *slog.Logger
	budget       time.Duration                // CPU an instance may use without waiting
	quantum      uint64                       // fuel between yields
	event        func(reason, message string) // tells the registry what happened, or nil
	callContext  bool                         // the guest's call frames carry a trace context (trace.go)
	slots        chan struct{}                // one token per request or call that may run at once
	queued       atomic.Int64                 // requests waiting for a slot
	maxQueue     int64
	refused      atomic.Uint64
	cpuDead      atomic.Int64 // CPU time of instances that have ended

	ctx    context.Context // ends when the module closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // instance and supervisor goroutines

	mu          sync.Mutex
	instances   []*instance   // the current instance of each slot; it may have exited and await replacement
	liveCh      chan struct{} // closed, and replaced, whenever an instance becomes ready
	started     bool
	closed      bool
	restarts    int
	lastFailure string
	lastFailAt  time.Time

	next      atomic.Uint32 // round robin over instances
	transport *transport
	proxy     *httputil.ReverseProxy
	inFlight  atomic.Int64
	requests  atomic.Uint64
	errors    atomic.Uint64
}

var _ runtime.Module = (*Module)(nil)

func newModule(m *manifest.Manifest, wrt wazero.Runtime, compiled wazero.CompiledModule, env map[string]string, host runtime.Host, logger *slog.Logger) *Module {
	mod := &Module{
		manifest:  m,
		wrt:       wrt,
		compiled:  compiled,
		env:       env,
		host:      host,
		logger:    logger,
		instances: make([]*instance, m.Limits.Instances),
		liveCh:    make(chan struct{}),
		slots:     make(chan struct{}, m.Limits.MaxInFlight),
		maxQueue:  int64(m.Limits.MaxQueue),
	}
	mod.ctx, mod.cancel = context.WithCancel(context.Background())
	mod.transport = &transport{dial: mod.dial}
	target := &url.URL{Scheme: "http", Host: m.Name}
	mod.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:      mod.transport,
		ErrorHandler:   mod.proxyError,
		ModifyResponse: mod.countResponse,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BufferPool:     copyBuffers,
	}
	return mod
}

// copyBuffers are the proxy's body copy buffers: without a pool it allocates and clears 32 KiB per request.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte  { return p.pool.Get().(*[32 << 10]byte)[:] }
func (p *bufferPool) Put(b []byte) { p.pool.Put((*[32 << 10]byte)(b)) }

// Start runs every instance until it serves. If one cannot start, the module is left closed and the error
// says why, with the guest's last output.
func (m *Module) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started || m.closed {
		m.mu.Unlock()
		return fmt.Errorf("module %s: already started or closed", m.manifest.ID())
	}
	m.started = true
	m.mu.Unlock()
	for i := range m.instances {
		in, err := m.startInstance(ctx, i)
		if err != nil {
			_ = m.Close(context.Background())
			return err
		}
		m.mu.Lock()
		m.instances[i] = in
		m.mu.Unlock()
	}
	m.announceLive()
	for i := range m.instances {
		m.wg.Add(1)
		go m.supervise(i)
	}
	return nil
}

func (m *Module) startInstance(ctx context.Context, num int) (*instance, error) {
	in := newInstance(m, num)
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _start runs on the instance's goroutine, not inside instantiation
		WithArgs(m.manifest.Name).
		WithSysWalltime().
		WithNanotime(nanotime, 1).
		WithRandSource(rand.Reader)
	keys := make([]string, 0, len(m.env))
	for k := range m.env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		cfg = cfg.WithEnv(k, m.env[k])
	}
	mod, err := m.wrt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		in.cancel()
		return nil, fmt.Errorf("module %s: instantiate: %w", m.manifest.ID(), err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		in.run(mod, mod.ExportedFunction("_start"))
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-in.ready:
		return in, nil
	case <-in.exited:
		return nil, fmt.Errorf("module %s: instance failed to start: %w", m.manifest.ID(), in.exitErr)
	case <-ctx.Done():
		in.stop()
		return nil, fmt.Errorf("module %s: start abandoned: %w", m.manifest.ID(), ctx.Err())
	case <-timer.C:
		in.stop()
		return nil, fmt.Errorf("module %s: did not start serving within %s", m.manifest.ID(), startTimeout)
	}
}

// supervise replaces the instance of one slot each time it fails, until the module closes.
func (m *Module) supervise(slot int) {
	defer m.wg.Done()
	backoff := restartBackoff
	for {
		m.mu.Lock()
		in := m.instances[slot]
		m.mu.Unlock()
		began := time.Now()
		select {
		case <-in.exited:
		case <-m.ctx.Done():
			return
		}
		if m.ctx.Err() != nil {
			return
		}
		reason := "unknown"
		if in.exitErr != nil {
			reason = in.exitErr.Error()
		}
		m.logger.Error("instance failed; replacing it", "instance", slot, "reason", reason)
		m.cpuDead.Add(in.cpu.Load())
		if m.event != nil {
			m.event("InstanceFailed", fmt.Sprintf("instance %d failed and is replaced: %s", slot, reason))
		}
		m.mu.Lock()
		m.restarts++
		m.lastFailure, m.lastFailAt = reason, time.Now()
		m.mu.Unlock()
		if time.Since(began) > stableAfter {
			backoff = restartBackoff
		}
		for {
			select {
			case <-time.After(backoff):
			case <-m.ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			next, err := m.startInstance(m.ctx, slot)
			if err == nil {
				m.mu.Lock()
				m.instances[slot] = next
				m.mu.Unlock()
				m.announceLive()
				break
			}
			if m.ctx.Err() != nil {
				return
			}
			m.logger.Error("replacement instance failed to start", "instance", slot, "err", err)
		}
	}
}

func (m *Module) announceLive() {
	m.mu.Lock()
	close(m.liveCh)
	m.liveCh = make(chan struct{})
	m.mu.Unlock()
}

// pick chooses a serving instance, round robin, or nil if none serves now.
func (m *Module) pick() (*instance, <-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, fmt.Errorf("module %s is stopped", m.manifest.ID())
	}
	n := len(m.instances)
	start := int(m.next.Add(1))
	for i := range n {
		in := m.instances[(start+i)%n]
		if in != nil && isClosed(in.ready) && !isClosed(in.exited) {
			return in, nil, nil
		}
	}
	return nil, m.liveCh, nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// dial opens an HTTP connection into one of the module's instances, for the proxy's transport.
func (m *Module) dial(ctx context.Context) (hostConn, error) {
	return m.connect(ctx, func(in *instance) *listener { return in.listener })
}

// connect opens a connection into one of the module's instances, on the listener which picks; the guest
// accepts it there. It waits a little for an instance being replaced.
func (m *Module) connect(ctx context.Context, which func(*instance) *listener) (hostConn, error) {
	timer := time.NewTimer(dialWait)
	defer timer.Stop()
	for {
		in, live, err := m.pick()
		if err != nil {
			return hostConn{}, err
		}
		if in != nil {
			c := newConn(in)
			if which(in).offer(c) {
				return hostConn{c}, nil
			}
			live = in.exited // dying: wait for it to go, then for its replacement
		}
		select {
		case <-live:
		case <-ctx.Done():
			return hostConn{}, ctx.Err()
		case <-timer.C:
			return hostConn{}, fmt.Errorf("module %s has no running instance (last failure: %s)", m.manifest.ID(), m.failure())
		}
	}
}

func (m *Module) failure() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastFailure == "" {
		return "none"
	}
	return m.lastFailure
}

// ServeHTTP serves a request through one of the module's instances.
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := m.acquire(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer m.release()
	m.inFlight.Add(1)
	defer m.inFlight.Add(-1)
	m.requests.Add(1)
	m.proxy.ServeHTTP(w, r)
}

// acquire takes one of the module's in-flight slots, waiting in a bounded queue if all are taken: a flood to
// one module is refused there, and cannot take the base's capacity from the others.
func (m *Module) acquire(ctx context.Context) error {
	select {
	case m.slots <- struct{}{}:
		return nil
	default:
	}
	if m.queued.Add(1) > m.maxQueue {
		m.queued.Add(-1)
		m.refused.Add(1)
		return fmt.Errorf("module %s is overloaded: %d requests in flight and %d waiting (limits.maxInFlight, limits.maxQueue); try again later", m.manifest.ID(), cap(m.slots), m.maxQueue)
	}
	defer m.queued.Add(-1)
	select {
	case m.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("module %s: gave up waiting for a turn: %w", m.manifest.ID(), ctx.Err())
	}
}

func (m *Module) release() { <-m.slots }

func (m *Module) countResponse(resp *http.Response) error {
	if resp.StatusCode >= 500 {
		m.errors.Add(1)
	}
	return nil
}

func (m *Module) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client has gone: nobody to answer
	}
	m.errors.Add(1)
	msg := fmt.Sprintf("module %s failed to answer: %v", m.manifest.ID(), err)
	m.mu.Lock()
	if m.lastFailure != "" && time.Since(m.lastFailAt) < 10*time.Second {
		msg += "; an instance failed: " + m.lastFailure
	}
	m.mu.Unlock()
	m.logger.WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err) // the context carries the request id
	http.Error(w, msg, http.StatusBadGateway)
}

// Stats reports what the module uses now.
func (m *Module) Stats() runtime.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := runtime.Stats{
		Restarts:    m.restarts,
		LastFailure: m.lastFailure,
		LastFailAt:  m.lastFailAt,
		InFlight:    m.inFlight.Load(),
		Requests:    m.requests.Load(),
		Errors:      m.errors.Load(),
		Refused:     m.refused.Load(),
	}
	cpu := m.cpuDead.Load()
	for _, in := range m.instances {
		if in != nil && isClosed(in.ready) && !isClosed(in.exited) {
			s.Instances++
			s.MemoryBytes += in.memBytes.Load()
			cpu += in.cpu.Load()
		}
	}
	s.CPUSeconds = time.Duration(cpu).Seconds()
	return s
}

// Close stops every instance and frees the module's runtime and compiled code. Requests in flight fail. A guest
// that is computing is waited for until ctx ends.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	slots := slices.Clone(m.instances)
	m.mu.Unlock()
	m.cancel()
	for _, in := range slots {
		if in != nil {
			in.stop()
		}
	}
	m.transport.close()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("module %s: instances still running at close: %w", m.manifest.ID(), ctx.Err())
	}
	if cerr := m.wrt.Close(context.Background()); cerr != nil && err == nil {
		err = cerr
	}
	if m.releaseCache != nil {
		m.releaseCache()
	}
	return err
}
