package module

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/internal/crashpoint"
	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// DrainTimeout bounds how long an uninstall waits for requests in flight on the version.
const DrainTimeout = 30 * time.Second

// Registry holds the modules of a base. Operations on one module are serialized (a second one at the same
// time fails with ErrConflict); operations on different modules run in parallel.
type Registry struct {
	runtimes map[string]runtime.Runtime
	logger   *slog.Logger

	journal Journal

	mu       sync.RWMutex
	modules  map[string]*Module
	services map[string]runtime.Host
	routes   atomic.Pointer[[]route] // longest context path first
	routesMu sync.Mutex              // serializes rebuildRoutes
}

// Module is every installed version of one module name.
type Module struct {
	Name string

	op       sync.Mutex // held by the operation in progress
	mu       sync.Mutex
	versions map[string]*Version
	active   atomic.Pointer[Version]
}

type route struct {
	prefix string
	module *Module
}

// Journal records acknowledged changes durably. Its methods run while the module's operation lock is held,
// after the change took effect in memory and before the operation returns; an error undoes the change.
type Journal interface {
	Installed(v *Version, env map[string]string, active bool) error
	Switched(name, version string) error
	Uninstalled(name, version string) error
}

// SetJournal sets the journal; call it before any operation.
func (r *Registry) SetJournal(j Journal) { r.journal = j }

// NewRegistry makes an empty registry with the given runtimes, by manifest runtime name.
func NewRegistry(runtimes map[string]runtime.Runtime, logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Registry{runtimes: runtimes, logger: logger, modules: map[string]*Module{}, services: map[string]runtime.Host{}}
	r.routes.Store(&[]route{})
	return r
}

// RegisterService offers a base service under name to every module's calls. A service hides a module of the
// same name from calls.
func (r *Registry) RegisterService(name string, h runtime.Host) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.services[name] = h
}

// Activation says what an install does to the active version.
type Activation int

const (
	// ActivateIfNone activates the new version only if no version is active (Koupleless's default).
	ActivateIfNone Activation = iota
	// ActivateNew activates the new version, deactivating the old one.
	ActivateNew
	// ActivateNever leaves the new version deactivated.
	ActivateNever
)

// InstallRequest is one module version to install.
type InstallRequest struct {
	Artifact []byte
	Source   string            // where it came from, for reports
	Env      map[string]string // configuration for the module
	MemoryMB int               // overrides the manifest's limits.memoryMB when not 0
	Replace  bool              // reinstall the version if it is installed (uninstall it first)
	Activate Activation
	// Expect, if set, must match the artifact's manifest name and version.
	ExpectName, ExpectVersion string
}

// Install checks, loads and starts a module version. A version that fails to load or start stays listed as
// BROKEN with the reason, and the error says why; nothing else is disturbed.
func (r *Registry) Install(ctx context.Context, req InstallRequest) (*Version, error) {
	m, err := readManifest(req.Artifact)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if req.ExpectName != "" && req.ExpectName != m.Name || req.ExpectVersion != "" && req.ExpectVersion != m.Version {
		return nil, fmt.Errorf("%w: the request names %s:%s but the artifact is %s: fix the name or version, or leave them out", ErrInvalid, req.ExpectName, req.ExpectVersion, m.ID())
	}
	if req.MemoryMB != 0 {
		m.Limits.MemoryMB = req.MemoryMB
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("%w: module %s: the install's memory limit: %w", ErrInvalid, m.ID(), err)
		}
	}
	rt := r.runtimes[m.Runtime]
	if rt == nil {
		return nil, fmt.Errorf("%w: module %s needs the %s runtime, which this base does not have", ErrInvalid, m.ID(), m.Runtime)
	}
	mod, err := r.lock(m.Name, true)
	if err != nil {
		return nil, err
	}
	defer mod.op.Unlock()
	if err := r.checkContextPath(m); err != nil {
		r.dropIfEmpty(mod)
		return nil, err
	}
	// A runtime that can tell without loading that the artifact will not load (native: a version whose code is
	// already in the process) says so before an installed version is replaced, so that one keeps serving.
	if pc, ok := rt.(interface {
		Precheck(*manifest.Manifest, []byte) error
	}); ok {
		if err := pc.Precheck(m, req.Artifact); err != nil {
			r.dropIfEmpty(mod)
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if old := mod.version(m.Version); old != nil {
		if !req.Replace && old.State() != Broken {
			return nil, fmt.Errorf("module %s: %w (state %s): uninstall it first, install another version, or ask to replace it", m.ID(), ErrRepeat, old.State())
		}
		r.stop(ctx, mod, old, "Replaced", "replaced by a new install of the same version")
	}
	sum := sha256.Sum256(req.Artifact)
	v := &Version{Manifest: m, Digest: hex.EncodeToString(sum[:]), Source: req.Source, MemoryMB: req.MemoryMB}
	v.set(Unresolved, "Install", "installing from "+cmp.Or(req.Source, "bytes"))
	mod.mu.Lock()
	mod.versions[m.Version] = v
	mod.mu.Unlock()
	r.rebuildRoutes()
	log := r.logger.With("module", m.Name, "version", m.Version)
	began := time.Now()
	crashpoint.Hit("install.before-load")
	code, err := rt.Load(ctx, runtime.Spec{
		Manifest: m,
		Artifact: req.Artifact,
		Env:      req.Env,
		Host:     callerHost{r, m},
		Logger:   log,
		Event:    v.note,
	})
	if err != nil {
		v.set(Broken, "LoadFailed", err.Error())
		log.Error("install failed", "err", err)
		return v, named(m, err)
	}
	v.set(Resolved, "Loaded", fmt.Sprintf("loaded in %s", time.Since(began).Round(time.Millisecond)))
	if err := code.Start(ctx); err != nil {
		v.set(Broken, "StartFailed", err.Error())
		log.Error("install failed", "err", err)
		return v, named(m, err)
	}
	crashpoint.Hit("install.started")
	v.mu.Lock()
	v.code = code
	v.mu.Unlock()
	activate := req.Activate == ActivateNew || req.Activate == ActivateIfNone && mod.active.Load() == nil
	var previous *Version
	if activate {
		previous = r.activate(mod, v, "Installed")
	} else {
		v.set(Deactivated, "Installed", "installed; another version is active")
	}
	crashpoint.Hit("install.activated")
	if r.journal != nil {
		if err := r.journal.Installed(v, req.Env, activate); err != nil {
			if previous != nil {
				r.activate(mod, previous, "Reverted")
			}
			r.stop(ctx, mod, v, "NotRecorded", err.Error())
			r.dropIfEmpty(mod)
			return nil, fmt.Errorf("module %s: installed but could not be recorded, so it was removed again: %w", m.ID(), err)
		}
	}
	crashpoint.Hit("install.journaled")
	log.Info("installed", "state", v.State(), "took", time.Since(began).Round(time.Millisecond))
	return v, nil
}

func readManifest(data []byte) (*manifest.Manifest, error) {
	kind, err := artifact.Detect(data)
	if err != nil {
		return nil, err
	}
	if kind == artifact.KindPlugin {
		info, err := artifact.ReadPlugin(data)
		if err != nil {
			return nil, err
		}
		if info.Manifest.Runtime != manifest.RuntimeNative {
			return nil, fmt.Errorf("module %s: a Go plugin whose manifest says runtime %q: rebuild it with `kouple build --runtime native`", info.Manifest.ID(), info.Manifest.Runtime)
		}
		return info.Manifest, nil
	}
	info, err := artifact.ReadWasm(data)
	if err != nil {
		return nil, err
	}
	return info.Manifest, nil
}

// lock takes the operation lock of a module, creating the module if asked.
func (r *Registry) lock(name string, create bool) (*Module, error) {
	r.mu.Lock()
	mod := r.modules[name]
	if mod == nil {
		if !create {
			r.mu.Unlock()
			return nil, fmt.Errorf("module %s: %w", name, ErrNotFound)
		}
		mod = &Module{Name: name, versions: map[string]*Version{}}
		r.modules[name] = mod
	}
	r.mu.Unlock()
	if !mod.op.TryLock() {
		return nil, fmt.Errorf("module %s: %w: try again when it has finished", name, ErrConflict)
	}
	// The module may have been dropped while we waited for nothing: make sure it is still the registered one.
	r.mu.Lock()
	if r.modules[name] != mod {
		if create {
			r.modules[name] = mod
		} else {
			r.mu.Unlock()
			mod.op.Unlock()
			return nil, fmt.Errorf("module %s: %w", name, ErrNotFound)
		}
	}
	r.mu.Unlock()
	return mod, nil
}

// checkContextPath refuses a context path that another module already claims.
func (r *Registry) checkContextPath(m *manifest.Manifest) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for name, other := range r.modules {
		if name == m.Name {
			continue
		}
		for _, v := range other.list() {
			if v.Manifest.ContextPath == m.ContextPath {
				return fmt.Errorf("%w: module %s wants context path %s, which module %s already serves: choose another contextPath or uninstall %s", ErrInvalid, m.ID(), m.ContextPath, v.ID(), other.Name)
			}
		}
	}
	return nil
}

func (r *Registry) dropIfEmpty(mod *Module) {
	mod.mu.Lock()
	empty := len(mod.versions) == 0
	mod.mu.Unlock()
	if !empty {
		return
	}
	r.mu.Lock()
	if r.modules[mod.Name] == mod {
		delete(r.modules, mod.Name)
	}
	r.mu.Unlock()
	r.rebuildRoutes()
}

// rebuildRoutes makes the routing table anew from the modules. Rebuilds are serialized (routesMu): two
// concurrent ones could otherwise store their snapshots out of order, and a module installed between them would
// lose its route.
func (r *Registry) rebuildRoutes() {
	r.routesMu.Lock()
	defer r.routesMu.Unlock()
	r.mu.RLock()
	var routes []route
	for _, mod := range r.modules {
		seen := map[string]bool{}
		for _, v := range mod.list() {
			if p := v.Manifest.ContextPath; !seen[p] {
				seen[p] = true
				routes = append(routes, route{prefix: p, module: mod})
			}
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(routes, func(a, b route) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
	r.routes.Store(&routes)
}

// activate makes v the active version of mod, atomically: requests that start after it go to v; those in flight
// on the old version finish there. It returns the version that was active.
func (r *Registry) activate(mod *Module, v *Version, reason string) *Version {
	old := mod.active.Swap(v)
	v.set(Activated, reason, "active version")
	if old != nil && old != v {
		old.set(Deactivated, reason, fmt.Sprintf("version %s is active now", v.Manifest.Version))
	}
	return old
}

// Switch makes version the active one of module name. Switching to the active version succeeds.
func (r *Registry) Switch(ctx context.Context, name, version string) (*Version, error) {
	mod, err := r.lock(name, false)
	if err != nil {
		return nil, err
	}
	defer mod.op.Unlock()
	v := mod.version(version)
	if v == nil {
		return nil, fmt.Errorf("module %s:%s: %w: installed versions are %v", name, version, ErrNotFound, mod.versionNames())
	}
	switch s := v.State(); s {
	case Activated:
		return v, nil
	case Deactivated:
		previous := r.activate(mod, v, "Switched")
		crashpoint.Hit("switch.swapped")
		if r.journal != nil {
			if err := r.journal.Switched(name, version); err != nil {
				if previous != nil {
					r.activate(mod, previous, "Reverted")
				} else {
					mod.active.Store(nil)
					v.set(Deactivated, "Reverted", err.Error())
				}
				return nil, fmt.Errorf("module %s: the switch could not be recorded, so it was undone: %w", v.ID(), err)
			}
		}
		crashpoint.Hit("switch.journaled")
		r.logger.Info("switched", "module", name, "version", version)
		return v, nil
	default:
		return nil, fmt.Errorf("module %s: %w: it is %s, only a running (DEACTIVATED) version can be activated%s", v.ID(), ErrIllegalState, s, reasonOf(v))
	}
}

func reasonOf(v *Version) string {
	if rec := v.LastRecord(); rec.Message != "" && v.State() == Broken {
		return ": " + rec.Message
	}
	return ""
}

// Uninstall stops a version (letting its requests in flight finish, up to DrainTimeout) and forgets it. An
// empty version uninstalls every version of the module.
func (r *Registry) Uninstall(ctx context.Context, name, version string) error {
	mod, err := r.lock(name, false)
	if err != nil {
		return err
	}
	defer mod.op.Unlock()
	var targets []*Version
	if version == "" {
		targets = mod.list()
	} else if v := mod.version(version); v != nil {
		targets = []*Version{v}
	} else {
		return fmt.Errorf("module %s:%s: %w: installed versions are %v", name, version, ErrNotFound, mod.versionNames())
	}
	for _, v := range targets {
		if r.journal != nil {
			if err := r.journal.Uninstalled(name, v.Manifest.Version); err != nil {
				return fmt.Errorf("module %s: the uninstall could not be recorded, so the version still runs: %w", v.ID(), err)
			}
		}
		crashpoint.Hit("uninstall.journaled")
		r.stop(ctx, mod, v, "Uninstalled", "uninstalled")
	}
	r.dropIfEmpty(mod)
	r.rebuildRoutes()
	return nil
}

// stop deactivates v, waits for its work in flight, closes its code and removes it from mod.
func (r *Registry) stop(ctx context.Context, mod *Module, v *Version, reason, msg string) {
	if mod.active.CompareAndSwap(v, nil) || v.State() == Activated {
		v.set(Deactivated, reason, "no longer active")
	}
	v.mu.Lock()
	code := v.code
	v.code = nil // new requests are refused from here on
	v.mu.Unlock()
	if code != nil {
		drained := make(chan struct{})
		go func() {
			v.running.Wait()
			close(drained)
		}()
		dctx, cancel := context.WithTimeout(ctx, DrainTimeout)
		select {
		case <-drained:
		case <-dctx.Done():
			r.logger.Warn("requests still in flight at uninstall; stopping anyway", "module", v.Manifest.Name, "version", v.Manifest.Version, "inFlight", v.active.Load())
		}
		cancel()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := code.Close(cctx); err != nil {
			r.logger.Warn("close", "module", v.Manifest.Name, "version", v.Manifest.Version, "err", err)
		}
		cancel()
	}
	v.set(Stopped, reason, msg)
	mod.mu.Lock()
	if mod.versions[v.Manifest.Version] == v {
		delete(mod.versions, v.Manifest.Version)
	}
	mod.mu.Unlock()
	r.logger.Info("stopped", "module", v.Manifest.Name, "version", v.Manifest.Version, "reason", reason)
}

// Close stops every module.
func (r *Registry) Close(ctx context.Context) {
	for _, mod := range r.Modules() {
		mod.op.Lock()
		for _, v := range mod.list() {
			r.stop(ctx, mod, v, "BaseStopped", "the base stopped")
		}
		mod.op.Unlock()
		r.dropIfEmpty(mod)
	}
}

// Modules lists the modules, by name.
func (r *Registry) Modules() []*Module {
	r.mu.RLock()
	defer r.mu.RUnlock()
	mods := slices.Collect(maps.Values(r.modules))
	slices.SortFunc(mods, func(a, b *Module) int { return strings.Compare(a.Name, b.Name) })
	return mods
}

// Module returns the module called name, or nil.
func (r *Registry) Module(name string) *Module {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.modules[name]
}

// Route finds the module whose context path is the longest prefix of path, and the rest of the path.
func (r *Registry) Route(path string) (*Module, string, string) {
	for _, rt := range *r.routes.Load() {
		if rest, ok := strings.CutPrefix(path, rt.prefix); ok && (rest == "" || rest[0] == '/') {
			return rt.module, rt.prefix, rest
		}
	}
	return nil, "", path
}

// Active is the module's active version, or nil.
func (m *Module) Active() *Version { return m.active.Load() }

// Versions lists the installed versions, oldest install first.
func (m *Module) Versions() []*Version { return m.list() }

func (m *Module) list() []*Version {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := slices.Collect(maps.Values(m.versions))
	slices.SortFunc(vs, func(a, b *Version) int {
		return a.recordsStart().Compare(b.recordsStart())
	})
	return vs
}

func (m *Module) version(v string) *Version {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[v]
}

func (m *Module) versionNames() []string {
	var names []string
	for _, v := range m.list() {
		names = append(names, v.Manifest.Version+" ("+string(v.State())+")")
	}
	return names
}

// WhyInactive says why the module has no active version, for a 503.
func (m *Module) WhyInactive() string {
	vs := m.list()
	if len(vs) == 0 {
		return "module " + m.Name + " has no installed version"
	}
	var parts []string
	for _, v := range vs {
		p := v.Manifest.Version + " is " + string(v.State())
		if v.State() == Broken {
			p += " (" + v.LastRecord().Message + ")"
		}
		parts = append(parts, p)
	}
	return "module " + m.Name + " has no active version: " + strings.Join(parts, "; ")
}

func (v *Version) recordsStart() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.records) == 0 {
		return time.Time{}
	}
	return v.records[0].Time
}

// Call calls method on the active version of module target, or on the base service target.
func (r *Registry) Call(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error) {
	svc, v, code, err := r.callee(target)
	if err != nil {
		return nil, err
	}
	if svc != nil {
		return svc.Call(ctx, caller, target, method, payload)
	}
	defer v.leave()
	return code.Call(ctx, method, payload)
}

// named is err naming the module version, once: runtimes' errors usually do already.
func named(m *manifest.Manifest, err error) error {
	if strings.Contains(err.Error(), m.ID()) {
		return err
	}
	return fmt.Errorf("module %s: %w", m.ID(), err)
}

// CallValue is Call with the argument and answer as Go values, for native callers: it reaches a base service
// that implements runtime.ValueHost or a module version whose code is a runtime.ValueCaller, and returns
// runtime.ErrNoValuePath, having called nothing, otherwise.
func (r *Registry) CallValue(ctx context.Context, caller, target, method string, in any) (any, error) {
	svc, v, code, err := r.callee(target)
	if err != nil {
		return nil, err
	}
	if svc != nil {
		if vh, ok := svc.(runtime.ValueHost); ok {
			return vh.CallValue(ctx, caller, target, method, in)
		}
		return nil, runtime.ErrNoValuePath
	}
	defer v.leave()
	if vc, ok := code.(runtime.ValueCaller); ok {
		return vc.CallValue(ctx, method, in)
	}
	return nil, runtime.ErrNoValuePath
}

// callee finds what a call to target reaches: a base service, or else the code of the module's active version,
// entered (the caller must leave v).
func (r *Registry) callee(target string) (svc runtime.Host, v *Version, code runtime.Module, err error) {
	r.mu.RLock()
	svc = r.services[target]
	mod := r.modules[target]
	r.mu.RUnlock()
	if svc != nil {
		return svc, nil, nil, nil
	}
	if mod == nil {
		return nil, nil, nil, fmt.Errorf("module %s is not installed in this base", target)
	}
	v = mod.Active()
	if v == nil {
		return nil, nil, nil, errors.New(mod.WhyInactive())
	}
	if code = v.enter(); code == nil {
		return nil, nil, nil, fmt.Errorf("module %s is stopping", v.ID())
	}
	return nil, v, code, nil
}

// callerHost is what a module's runtime calls back into; it knows which module version calls.
type callerHost struct {
	r *Registry
	m *manifest.Manifest
}

func (h callerHost) Call(ctx context.Context, caller, target, method string, payload []byte) ([]byte, error) {
	return h.r.Call(h.mark(ctx, target), caller, target, method, payload)
}

// mark gives a call to a base service the caller's manifest, for the service's grant checks. Calls between
// modules need none, and skip the allocation.
func (h callerHost) mark(ctx context.Context, target string) context.Context {
	h.r.mu.RLock()
	_, svc := h.r.services[target]
	h.r.mu.RUnlock()
	if !svc {
		return ctx
	}
	return context.WithValue(ctx, callerKey{}, h.m)
}

// CallValue implements runtime.ValueHost.
func (h callerHost) CallValue(ctx context.Context, caller, target, method string, in any) (any, error) {
	return h.r.CallValue(h.mark(ctx, target), caller, target, method, in)
}

type callerKey struct{}

// Caller is the manifest of the module version whose call ctx carries, or nil for a call from the base.
// Base services use it to check what the caller was granted.
func Caller(ctx context.Context) *manifest.Manifest {
	m, _ := ctx.Value(callerKey{}).(*manifest.Manifest)
	return m
}
