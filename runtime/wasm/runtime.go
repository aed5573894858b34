// Package wasm runs modules compiled to WebAssembly (wasm32-wasip1 commands) in a sandbox on wazero.
//
// A module is a WASI command whose main serves HTTP on a listener descriptor the base provides. The base
// implements the WASI descriptor and poll functions itself, over in-memory connections, so one instance serves
// many requests at once through the guest's own Go scheduler, and an idle guest waits in Go at no cost. Each
// module has its own wazero runtime (its own memory limit, and closing it frees everything); compiled code is
// cached on disk and shared.
package wasm

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/wasm/internal/guard"
)

const abiVersion = manifest.ABIVersion

// Config configures the wasm runtime.
type Config struct {
	// CacheDir holds compiled code across restarts, in a directory per module code named by the sha256 of the
	// artifact without Kouple's custom sections (artifact.WasmCode), so that versions and copies of one build
	// that differ only in their manifest compile once. Each directory lists the artifacts that use it under
	// users/, so that the code of uninstalled artifacts can be removed (RemoveCache). Empty means no disk cache.
	CacheDir string
	// CPUBudget is how long an instance may compute without waiting before it is stopped, when its manifest
	// says nothing; default 5 s.
	CPUBudget time.Duration
	// Quantum is how many fuel check points (loop iterations, calls) a guest runs between two yields to the
	// Go scheduler; default 100,000 (docs/rationale.md, "Guard").
	Quantum int64
	// NoGuard loads modules without the fuel guard: a guest that computes then stalls the whole process's
	// garbage collector and cannot be stopped. Only for measuring what the guard costs and buys.
	NoGuard bool
	// Logger is the base's logger.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultCPUBudget = 5 * time.Second
	DefaultQuantum   = 100_000
)

// Runtime loads wasm modules. It is safe for concurrent use.
type Runtime struct {
	noGuard   bool
	cacheDir  string
	cpuBudget time.Duration
	quantum   int64
	logger    *slog.Logger

	mu     sync.Mutex
	caches map[string]*sharedCache // by code digest: the modules of one code share their compiled code
}

// sharedCache is the compilation cache of one module code, shared by the modules that run it: each has its own
// wazero runtime (its own memory limit), and through this one cache the same compiled machine code in memory.
type sharedCache struct {
	cache wazero.CompilationCache
	users int
}

var _ runtime.Runtime = (*Runtime)(nil)

// New makes a wasm runtime. Close it to release the compilation cache.
func New(cfg Config) (*Runtime, error) {
	r := &Runtime{noGuard: cfg.NoGuard, cacheDir: cfg.CacheDir, logger: cfg.Logger, cpuBudget: cfg.CPUBudget, quantum: cfg.Quantum,
		caches: map[string]*sharedCache{}}
	if r.cpuBudget <= 0 {
		r.cpuBudget = DefaultCPUBudget
	}
	if r.quantum <= 0 {
		r.quantum = DefaultQuantum
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	if r.cacheDir != "" {
		if err := os.MkdirAll(r.cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("wasm compile cache %s: %w", r.cacheDir, err)
		}
	}
	return r, nil
}

// Close releases the runtime. Modules loaded from it must be closed first.
func (r *Runtime) Close(ctx context.Context) error { return nil }

// cache returns the compilation cache of one module code, shared with the other modules running it, and
// records on disk that the artifact uses it. release gives it back; the last release closes it.
func (r *Runtime) cache(code, artifactDigest string) (c wazero.CompilationCache, release func(), err error) {
	if r.cacheDir != "" {
		users := filepath.Join(r.cacheDir, code, "users")
		if err := os.MkdirAll(users, 0o755); err != nil {
			return nil, nil, fmt.Errorf("wasm compile cache %s: %w", users, err)
		}
		if err := os.WriteFile(filepath.Join(users, artifactDigest), nil, 0o644); err != nil {
			return nil, nil, fmt.Errorf("wasm compile cache %s: %w", users, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := r.caches[code]
	if sc == nil {
		sc = &sharedCache{}
		if r.cacheDir == "" {
			sc.cache = wazero.NewCompilationCache()
		} else if sc.cache, err = wazero.NewCompilationCacheWithDir(filepath.Join(r.cacheDir, code)); err != nil {
			return nil, nil, fmt.Errorf("wasm compile cache %s: %w", filepath.Join(r.cacheDir, code), err)
		}
		r.caches[code] = sc
	}
	sc.users++
	var once sync.Once
	return sc.cache, func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if sc.users--; sc.users == 0 {
				delete(r.caches, code)
				_ = sc.cache.Close(context.Background())
			}
		})
	}, nil
}

// instrumented returns the artifact with the fuel guard added, from the cache when it was instrumented before.
func (r *Runtime) instrumented(digest string, wasm []byte) ([]byte, error) {
	if r.noGuard {
		return wasm, nil
	}
	var path string
	if r.cacheDir != "" {
		path = filepath.Join(r.cacheDir, digest, "guarded.wasm")
		if b, err := os.ReadFile(path); err == nil {
			return b, nil
		}
	}
	b, err := guard.Instrument(wasm)
	if err != nil {
		return nil, fmt.Errorf("not valid WebAssembly code (found while adding the CPU guard): %w", err)
	}
	if path != "" {
		// Best effort, and safe beside another install of the same code: a file of its own, renamed.
		if tmp, err := os.CreateTemp(filepath.Dir(path), ".guarded-"); err == nil {
			_, werr := tmp.Write(b)
			if cerr := tmp.Close(); werr == nil && cerr == nil {
				os.Rename(tmp.Name(), path)
			}
			os.Remove(tmp.Name())
		}
	}
	return b, nil
}

// RemoveCache removes the compiled code that no artifact keep lists uses any more, and returns the code digests
// removed. (A directory without users/ is of the older layout, named by its artifact's digest.)
func (r *Runtime) RemoveCache(keep func(artifactDigest string) bool) ([]string, error) {
	if r.cacheDir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(r.cacheDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != 64 {
			continue
		}
		dir := filepath.Join(r.cacheDir, e.Name())
		used := false
		users, err := os.ReadDir(filepath.Join(dir, "users"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			used = keep(e.Name())
		case err != nil:
			return removed, err
		}
		for _, u := range users {
			if keep(u.Name()) {
				used = true
			} else if err := os.Remove(filepath.Join(dir, "users", u.Name())); err != nil {
				return removed, err
			}
		}
		if !used {
			if err := os.RemoveAll(dir); err != nil {
				return removed, err
			}
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}

// Load checks a wasm artifact, compiles it (or takes it from the cache) and prepares the module to start.
func (r *Runtime) Load(ctx context.Context, spec runtime.Spec) (runtime.Module, error) {
	info, err := artifact.ReadWasm(spec.Artifact)
	if err != nil {
		return nil, err
	}
	m := spec.Manifest
	if m == nil {
		m = info.Manifest
	}
	if m.Runtime != manifest.RuntimeWasm {
		return nil, fmt.Errorf("module %s asks for the %s runtime, but the artifact is a WebAssembly module", m.ID(), m.Runtime)
	}
	for _, imp := range info.Imports {
		if imp.Module != "wasi_snapshot_preview1" && imp.Module != artifact.ABIImportModule {
			return nil, fmt.Errorf("module %s imports %s.%s, which a Kouple base does not provide: a module may import only wasi_snapshot_preview1 and %s", m.ID(), imp.Module, imp.Name, artifact.ABIImportModule)
		}
	}
	return r.newModule(ctx, m, spec)
}

func (r *Runtime) newModule(ctx context.Context, m *manifest.Manifest, spec runtime.Spec) (*Module, error) {
	pages := uint32(m.Limits.MemoryMB) * 16 // 64 KiB pages
	sum := sha256.Sum256(spec.Artifact)
	plain, err := artifact.WasmCode(spec.Artifact)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", m.ID(), err)
	}
	codeSum := sha256.Sum256(plain)
	digest := hex.EncodeToString(codeSum[:])
	cache, release, err := r.cache(digest, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, err
	}
	code, err := r.instrumented(digest, plain)
	if err != nil {
		release()
		return nil, fmt.Errorf("module %s: %w", m.ID(), err)
	}
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(false)
	wrt := wazero.NewRuntimeWithConfig(ctx, cfg)
	fail := func(err error) (*Module, error) {
		_ = wrt.Close(ctx)
		release()
		return nil, err
	}
	if err := instantiateWASI(ctx, wrt); err != nil {
		return fail(fmt.Errorf("module %s: host functions: %w", m.ID(), err))
	}
	if err := instantiateKouple(ctx, wrt, artifact.ABIImportModule); err != nil {
		return fail(fmt.Errorf("module %s: host functions: %w", m.ID(), err))
	}
	if err := instantiateGuard(ctx, wrt); err != nil {
		return fail(fmt.Errorf("module %s: host functions: %w", m.ID(), err))
	}
	compiled, err := wrt.CompileModule(ctx, code)
	if err != nil {
		return fail(fmt.Errorf("module %s: compile: %w", m.ID(), err))
	}
	if _, ok := compiled.ExportedFunctions()["_start"]; !ok {
		return fail(fmt.Errorf("module %s: exports no _start: build it as a WASI command (GOOS=wasip1, not -buildmode=c-shared)", m.ID()))
	}
	logger := spec.Logger
	if logger == nil {
		logger = r.logger.With("module", m.Name, "version", m.Version)
	}
	host := spec.Host
	if host == nil {
		host = noHost{}
	}
	env := map[string]string{}
	for k, v := range m.Config {
		env[k] = v
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	env["KOUPLE_MODULE_NAME"], env["KOUPLE_MODULE_VERSION"] = m.Name, m.Version
	mod := newModule(m, wrt, compiled, env, host, logger)
	mod.releaseCache = release
	mod.budget = cmp.Or(m.Limits.Budget(), r.cpuBudget)
	mod.quantum = uint64(r.quantum)
	mod.event = spec.Event
	mod.callContext = importsCallContext(compiled)
	return mod, nil
}

type noHost struct{}

func (noHost) Call(_ context.Context, caller, target, method string, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("no service %q in this base (called by %s)", target, caller)
}
