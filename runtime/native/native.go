// Package native runs modules as Go plugins loaded into the base's own process: Koupleless's trade — one shared
// Go runtime, native speed, about a megabyte of anonymous memory per module, weak isolation and no real unload —
// made explicit. A module chooses it with `runtime: native` in its manifest (docs/rationale.md says when).
//
// What init() of a plugin registers through the SDK (its handler, its exported methods) reaches the base as
// Go values: the runtime opens plugins one at a time under a load lock, between sdk.BeginLoad and sdk.EndLoad.
// Requests and calls go straight into the module's code, with panics turned into that request's or call's
// error. Uninstall removes the module from the SDK's tables, cancels its context (goroutines started with
// sdk.Go end), and drops every reference to its handler; its code stays mapped for the life of the process
// (Go cannot unload a plugin), and Held reports how much.
package native

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"plugin"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/sdk"
)

// Config configures the native runtime.
type Config struct {
	// Dir holds the plugins' files, named by their sha256: a plugin must be opened from a file, and a path is
	// opened at most once in a process. Required.
	Dir string
	// Logger receives the runtime's own records.
	Logger *slog.Logger
	// StopWait is how long Close waits for the module's goroutines to return; default 5 s.
	StopWait time.Duration
}

// Runtime loads Go plugins into this process.
type Runtime struct {
	cfg  Config
	self *artifact.BuildInfo
	mu   *sync.Mutex
	// What is loaded is the process's, not one Runtime's: Go's plugin table is process-wide.
	plugins map[string]*loadedPlugin
	opened  map[string]string
}

var (
	loadLock sync.Mutex // the load lock: one plugin.Open at a time, so the SDK knows whose init runs
	procMu   sync.Mutex
	plugins  = map[string]*loadedPlugin{} // by plugin path (the module's versioned Go module path), under procMu
	opened   = map[string]string{}        // file path -> why it must not be opened again, under procMu
)

// loadedPlugin is code in the process, whether its module is installed or not.
type loadedPlugin struct {
	id     string // name:version
	build  *artifact.BuildInfo
	code   int
	closed bool
}

// New makes a native runtime. It fails if this program cannot load plugins.
func New(cfg Config) (*Runtime, error) {
	if cfg.Dir == "" {
		return nil, errors.New("native runtime: no directory for plugins")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StopWait == 0 {
		cfg.StopWait = 5 * time.Second
	}
	self, err := artifact.SelfBuildInfo()
	if err != nil {
		return nil, fmt.Errorf("native runtime: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("native runtime: %w", err)
	}
	return &Runtime{cfg: cfg, self: self, mu: &procMu, plugins: plugins, opened: opened}, nil
}

// BuildInfo is how this base was built: what plugins must match.
func (r *Runtime) BuildInfo() *artifact.BuildInfo { return r.self }

// Held reports the code of uninstalled native modules in this process, still mapped because Go cannot unload a
// plugin: how many plugins, and their size in bytes. Loaded is the same for installed ones.
func (r *Runtime) Held() (held, heldBytes, loaded, loadedBytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.plugins {
		if p.closed {
			held++
			heldBytes += p.code
		} else {
			loaded++
			loadedBytes += p.code
		}
	}
	return
}

// Load checks the plugin against this base and the other native modules, then opens it: its init functions run
// now, and register the module. A plugin that does not match is refused with the reason, never opened.
func (r *Runtime) Load(ctx context.Context, spec runtime.Spec) (runtime.Module, error) {
	m := spec.Manifest
	info, err := r.check(m, spec.Artifact)
	if err != nil {
		return nil, err
	}
	path := info.Build.Path

	file, err := r.store(spec.Artifact)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", m.ID(), err)
	}
	env := map[string]string{}
	for k, v := range m.Config {
		env[k] = v
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	logger := spec.Logger
	if logger == nil {
		logger = r.cfg.Logger.With("module", m.Name, "version", m.Version)
	}
	call, callValue := calls(m.Name, spec.Host)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	loadLock.Lock()
	began := time.Now()
	reg, err := r.open(file, sdk.LoadSpec{Name: m.Name, Version: m.Version, Path: path, Env: env, Logger: logger, Call: call, CallValue: callValue})
	opened := time.Since(began)
	loadLock.Unlock()
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", m.ID(), err)
	}
	r.mu.Lock()
	lp := &loadedPlugin{id: m.ID(), build: info.Build, code: info.Code}
	r.plugins[path] = lp
	r.mu.Unlock()
	h := reg.Handler()
	if h == nil {
		reg.Stop(0)
		r.mu.Lock()
		lp.closed = true
		r.mu.Unlock()
		return nil, fmt.Errorf("module %s: its init registered no handler: call sdk.Handle from init() (a plugin never runs main)", m.ID())
	}
	return &Module{rt: r, lp: lp, id: m.ID(), name: m.Name, reg: reg, handler: h, logger: logger, opened: opened}, nil
}

// calls are how the module's calls reach host: encoded, and as Go values when host can carry them.
func calls(name string, host runtime.Host) (call func(context.Context, string, string, []byte) ([]byte, error), callValue func(context.Context, string, string, any) (any, error)) {
	call = func(ctx context.Context, target, method string, payload []byte) ([]byte, error) {
		if host == nil {
			return nil, fmt.Errorf("call %s.%s: this base answers no calls", target, method)
		}
		res, err := host.Call(ctx, name, target, method, payload)
		return res, sdkError(target, method, err)
	}
	vh, ok := host.(runtime.ValueHost)
	if !ok {
		return call, nil
	}
	callValue = func(ctx context.Context, target, method string, in any) (any, error) {
		res, err := vh.CallValue(ctx, name, target, method, in)
		if errors.Is(err, runtime.ErrNoValuePath) {
			return nil, sdk.ErrNoValuePath
		}
		return res, sdkError(target, method, err)
	}
	return call, callValue
}

// sdkError is a callee's answer as the SDK reports it to the module.
func sdkError(target, method string, err error) error {
	if ce, ok := errors.AsType[*runtime.CallError](err); ok {
		return &sdk.CallError{Target: target, Method: method, Message: ce.Message}
	}
	return err
}

// Precheck says why an artifact cannot load into this process, without opening it: the registry asks before it
// stops a version the artifact would replace, since a native version cannot be loaded twice.
func (r *Runtime) Precheck(m *manifest.Manifest, data []byte) error {
	_, err := r.check(m, data)
	return err
}

func (r *Runtime) check(m *manifest.Manifest, data []byte) (*artifact.PluginInfo, error) {
	info, err := artifact.ReadPlugin(data)
	if err != nil {
		return nil, err
	}
	if err := artifact.CheckPlugin(r.self, info.Build); err != nil {
		return nil, fmt.Errorf("module %s: the plugin cannot load into this base: %w", m.ID(), err)
	}
	path := info.Build.Path
	r.mu.Lock()
	if p := r.plugins[path]; p != nil {
		r.mu.Unlock()
		state := "installed"
		if p.closed {
			state = "uninstalled, but its code is still in the process (Go cannot unload a plugin)"
		}
		return nil, fmt.Errorf("module %s: a plugin with Go module path %s (%s) is already loaded, %s: build another version, or restart the base", m.ID(), path, p.id, state)
	}
	for other, p := range r.plugins {
		if c := artifact.DepConflicts(p.build, "native module "+p.id+" ("+other+")", info.Build); len(c) > 0 {
			r.mu.Unlock()
			return nil, fmt.Errorf("module %s: dependency versions differ from a native module already in this base (%v): native modules share every package, so they must agree on versions", m.ID(), c)
		}
	}
	r.mu.Unlock()

	return info, nil
}

// store writes the artifact (the trailer is harmless to the loader) under its sha256, once.
func (r *Runtime) store(data []byte) (string, error) {
	file := filepath.Join(r.cfg.Dir, digest(data)+".so")
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	tmp, err := os.CreateTemp(r.cfg.Dir, ".plugin-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return file, os.Rename(tmp.Name(), file)
}

// open runs plugin.Open between sdk.BeginLoad and sdk.EndLoad, under the load lock. A path is opened at most
// once: Go caches plugins by path, and a second Open of a path whose init panicked would block forever.
func (r *Runtime) open(file string, spec sdk.LoadSpec) (reg *sdk.Loaded, err error) {
	r.mu.Lock()
	why, seen := r.opened[file]
	if !seen {
		r.opened[file] = "opened before in this process"
	}
	r.mu.Unlock()
	if seen {
		if why == "" {
			why = "opened before in this process"
		}
		return nil, fmt.Errorf("this plugin file cannot be opened again: %s", why)
	}
	began := time.Now()
	l := sdk.BeginLoad(spec)
	defer func() {
		sdk.EndLoad()
		if p := recover(); p != nil {
			err = fmt.Errorf("its init panicked: %v", p)
		}
		if err != nil {
			l.Stop(0)
			r.mu.Lock()
			r.opened[file] = err.Error()
			r.mu.Unlock()
			reg = nil
		}
	}()
	if _, err := plugin.Open(file); err != nil {
		hint := ""
		if strings.Contains(err.Error(), "different version of package github.com/kouple/kouple/sdk") {
			hint = ": a native module must be built with the very SDK package the base was built with — build the base with -trimpath (make build does) and build the module with `kouple build --runtime native --base URL`, keeping the SDK copy and version `kouple new` wrote in its go.mod"
		}
		return nil, fmt.Errorf("the Go plugin loader refused it: %w%s", err, hint)
	}
	r.cfg.Logger.Debug("plugin opened", "module", spec.Name, "version", spec.Version, "took", time.Since(began))
	return l, nil
}

// Module is one native module version.
type Module struct {
	rt      *Runtime
	lp      *loadedPlugin
	id      string
	name    string
	logger  *slog.Logger
	opened  time.Duration
	mu      sync.RWMutex
	reg     *sdk.Loaded
	handler http.Handler
	closed  bool

	inFlight atomic.Int64
	requests atomic.Uint64
	errors   atomic.Uint64
	lastFail atomic.Pointer[failure]
}

type failure struct {
	why string
	at  time.Time
}

// OpenTook is how long plugin.Open (with the module's init functions) took.
func (m *Module) OpenTook() time.Duration { return m.opened }

// Start has nothing left to do: the module registered itself while its plugin opened.
func (m *Module) Start(ctx context.Context) error { return nil }

func (m *Module) current() (*sdk.Loaded, http.Handler) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.reg, m.handler
}

// ServeHTTP runs the module's handler in this goroutine. A panic becomes a 500 answer (or, once the answer has
// begun, an aborted one) and the base carries on.
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reg, h := m.current()
	if h == nil {
		http.Error(w, "module "+m.id+" is stopped", http.StatusServiceUnavailable)
		return
	}
	m.inFlight.Add(1)
	m.requests.Add(1)
	defer m.inFlight.Add(-1)
	rec := &recorder{ResponseWriter: w}
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		m.errors.Add(1)
		why := fmt.Sprintf("handler panicked: %v", p)
		m.lastFail.Store(&failure{why: why, at: time.Now()})
		m.logger.Error("request failed", "path", r.URL.Path, "err", why)
		if rec.wrote {
			panic(http.ErrAbortHandler) // the answer has begun: end the connection, as net/http would
		}
		http.Error(w, "module "+m.id+": "+why, http.StatusInternalServerError)
	}()
	h.ServeHTTP(rec, r.WithContext(reg.With(r.Context())))
}

// recorder notes whether the answer has begun; it passes Flush, Hijack and the rest through Unwrap.
type recorder struct {
	http.ResponseWriter
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if code >= 200 {
		r.wrote = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	r.wrote = true
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack lets a module take the connection over (WebSocket), when the base's writer allows it.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.wrote = true
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Call runs an exported method in this goroutine; a panic becomes its error.
func (m *Module) Call(ctx context.Context, method string, payload []byte) ([]byte, error) {
	reg, err := m.enterCall(ctx, method)
	if err != nil {
		return nil, err
	}
	defer m.inFlight.Add(-1)
	m.requests.Add(1)
	res, err := reg.Invoke(reg.With(ctx), method, payload)
	if err != nil {
		return nil, &runtime.CallError{Module: m.name, Method: method, Message: err.Error()}
	}
	return res, nil
}

// CallValue runs an exported method with a Go value as its argument and answers the method's Go value, in this
// goroutine (runtime.ValueCaller). It returns runtime.ErrNoValuePath, running nothing, when in is not of the
// method's argument type.
func (m *Module) CallValue(ctx context.Context, method string, in any) (any, error) {
	reg, err := m.enterCall(ctx, method)
	if err != nil {
		return nil, err
	}
	defer m.inFlight.Add(-1)
	res, err := reg.InvokeValue(reg.With(ctx), method, in)
	if errors.Is(err, sdk.ErrNoValuePath) {
		return nil, runtime.ErrNoValuePath
	}
	m.requests.Add(1)
	if err != nil {
		return nil, &runtime.CallError{Module: m.name, Method: method, Message: err.Error()}
	}
	return res, nil
}

// enterCall counts a call in flight on a running module; the caller must take it off.
func (m *Module) enterCall(ctx context.Context, method string) (*sdk.Loaded, error) {
	reg, _ := m.current()
	if reg == nil {
		return nil, fmt.Errorf("module %s: call %s: the module is stopped", m.id, method)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("module %s: call %s: %w", m.id, method, err)
	}
	m.inFlight.Add(1)
	return reg, nil
}

// Stats reports requests and calls; memory and CPU are the base's, shared, so they are not counted per module.
func (m *Module) Stats() runtime.Stats {
	reg, _ := m.current()
	s := runtime.Stats{InFlight: m.inFlight.Load(), Requests: m.requests.Load(), Errors: m.errors.Load()}
	if reg != nil {
		s.Instances = 1
	}
	if f := m.lastFail.Load(); f != nil {
		s.LastFailure, s.LastFailAt = f.why, f.at
	}
	return s
}

// Close uninstalls the module: the SDK forgets it, its context is cancelled and its goroutines get StopWait to
// return; every reference to its handler and methods is dropped. Its code stays mapped.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	reg := m.reg
	m.reg, m.handler, m.closed = nil, nil, true
	m.mu.Unlock()
	if reg == nil {
		return nil
	}
	wait := m.rt.cfg.StopWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	left := reg.Stop(wait)
	m.rt.mu.Lock()
	m.lp.closed = true
	m.rt.mu.Unlock()
	if left > 0 {
		m.logger.Warn("goroutines still running after uninstall: they ignore the module's context", "goroutines", left)
		return fmt.Errorf("module %s: %d goroutines still running after %s: they must return when sdk.Context() is done", m.id, left, wait)
	}
	return nil
}
