package guard

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

var (
	buildDir string // temporary directory of the guest binaries, removed by TestMain
	builds   sync.Map
	cache    wazero.CompilationCache
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kouple-guard-test")
	if err != nil {
		panic(err)
	}
	buildDir = dir
	cacheDir := os.Getenv("KOUPLE_TEST_CACHE")
	if cacheDir == "" {
		cacheDir = filepath.Join(os.TempDir(), "kouple-test-wazero-cache")
	}
	if cache, err = wazero.NewCompilationCacheWithDir(cacheDir); err != nil {
		panic(err)
	}
	code := m.Run()
	cache.Close(context.Background())
	os.RemoveAll(dir)
	os.Exit(code)
}

type buildResult struct {
	once sync.Once
	wasm []byte
	err  error
}

// guest builds testdata/<name> with GOOS=wasip1 GOARCH=wasm once per test
// binary and returns the module.
func guest(tb testing.TB, name string) []byte {
	tb.Helper()
	v, _ := builds.LoadOrStore(name, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		out := filepath.Join(buildDir, name+".wasm")
		cmd := exec.Command("go", "build", "-o", out, "./testdata/"+name)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = errors.New("go build testdata/" + name + ": " + err.Error() + "\n" + string(msg))
			return
		}
		b.wasm, b.err = os.ReadFile(out)
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.wasm
}

func instrument(tb testing.TB, wasm []byte) []byte {
	tb.Helper()
	out, err := Instrument(wasm)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// host is a wazero runtime with WASI and, for instrumented guests, a
// kouple_guard.yield that counts calls, returns the quantum and lets the
// scheduler in. Setting stop makes the next yield panic with errStop.
type host struct {
	rt      wazero.Runtime
	quantum int64
	yields  atomic.Int64
	stop    atomic.Bool
	// yieldsAfterStop counts the yields that saw stop set.
	yieldsAfterStop atomic.Int64
}

var errStop = errors.New("guest stopped by host")

type hostOption func(wazero.RuntimeConfig) wazero.RuntimeConfig

func withCloseOnContextDone(c wazero.RuntimeConfig) wazero.RuntimeConfig {
	return c.WithCloseOnContextDone(true)
}

func newHost(tb testing.TB, quantum int64, opts ...hostOption) *host {
	tb.Helper()
	ctx := context.Background()
	h := &host{quantum: quantum}
	cfg := wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache)
	for _, o := range opts {
		cfg = o(cfg)
	}
	h.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	tb.Cleanup(func() { h.rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, h.rt)
	_, err := h.rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(h.yield), nil, []api.ValueType{api.ValueTypeI64}).
		Export(ImportName).Instantiate(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func (h *host) yield(ctx context.Context, mod api.Module, stack []uint64) {
	h.yields.Add(1)
	if h.stop.Load() {
		h.yieldsAfterStop.Add(1)
		panic(errStop)
	}
	runtime.Gosched()
	stack[0] = uint64(h.quantum)
}

func (h *host) compile(tb testing.TB, wasm []byte) wazero.CompiledModule {
	tb.Helper()
	c, err := h.rt.CompileModule(context.Background(), wasm)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// run instantiates the module, which runs its _start, and returns its
// standard output; a zero exit code is not an error.
func (h *host) run(c wazero.CompiledModule, stdout *bytes.Buffer, args ...string) error {
	cfg := wazero.NewModuleConfig().WithName("").WithStdout(stdout).WithStderr(stdout).
		WithArgs(append([]string{"guest"}, args...)...)
	mod, err := h.rt.InstantiateModule(context.Background(), c, cfg)
	if mod != nil {
		mod.Close(context.Background())
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		return nil
	}
	return err
}

func newModuleConfig(stdout interface{ Write([]byte) (int, error) }) wazero.ModuleConfig {
	return wazero.NewModuleConfig().WithName("").WithStdout(stdout).WithStderr(stdout).WithArgs("guest")
}
