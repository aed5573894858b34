// Package wasm runs modules compiled to WebAssembly (wasm32-wasip1 commands) in a sandbox on wazero.
//
// A module is a WASI command whose main serves HTTP on a listener descriptor the base provides. The base
// implements the WASI descriptor and poll functions itself, over in-memory connections, so one instance serves
// many requests at once through the guest's own Go scheduler, and an idle guest waits in Go at no cost. Each
// module has its own wazero runtime (its own memory limit, and closing it frees everything); compiled code is
// cached on disk and shared.
package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tetratelabs/wazero"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

const abiVersion = manifest.ABIVersion

// Config configures the wasm runtime.
type Config struct {
	// CacheDir holds compiled code across restarts; empty means no disk cache (compiled code is still shared
	// in memory while the Runtime lives).
	CacheDir string
	// Logger is the base's logger.
	Logger *slog.Logger
}

// Runtime loads wasm modules. It is safe for concurrent use.
type Runtime struct {
	cache  wazero.CompilationCache
	logger *slog.Logger
}

var _ runtime.Runtime = (*Runtime)(nil)

// New makes a wasm runtime. Close it to release the compilation cache.
func New(cfg Config) (*Runtime, error) {
	r := &Runtime{logger: cfg.Logger}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("wasm compile cache %s: %w", cfg.CacheDir, err)
		}
		c, err := wazero.NewCompilationCacheWithDir(filepath.Clean(cfg.CacheDir))
		if err != nil {
			return nil, fmt.Errorf("wasm compile cache %s: %w", cfg.CacheDir, err)
		}
		r.cache = c
	} else {
		r.cache = wazero.NewCompilationCache()
	}
	return r, nil
}

// Close releases the in-memory compilation cache. Modules loaded from the runtime must be closed first.
func (r *Runtime) Close(ctx context.Context) error { return r.cache.Close(ctx) }

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
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(r.cache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(false)
	wrt := wazero.NewRuntimeWithConfig(ctx, cfg)
	fail := func(err error) (*Module, error) {
		_ = wrt.Close(ctx)
		return nil, err
	}
	if err := instantiateWASI(ctx, wrt); err != nil {
		return fail(fmt.Errorf("module %s: host functions: %w", m.ID(), err))
	}
	if err := instantiateKouple(ctx, wrt, artifact.ABIImportModule); err != nil {
		return fail(fmt.Errorf("module %s: host functions: %w", m.ID(), err))
	}
	compiled, err := wrt.CompileModule(ctx, spec.Artifact)
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
	return newModule(m, wrt, compiled, env, host, logger), nil
}

type noHost struct{}

func (noHost) Call(_ context.Context, caller, target, method string, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("no service %q in this base (called by %s)", target, caller)
}
