package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A base that runs modules as Go plugins (the native runtime) shares this package between itself and every
// plugin: it is one copy in the process. So that two modules never collide on it, the base loads plugins one at
// a time between BeginLoad and EndLoad; what a plugin's init() registers during that window (its handler, its
// methods) goes to that module's Loaded, not to the package's globals. Afterwards, Name, Version, Getenv,
// Logger, Context, Go and Call find their module from the calling code: each native module is built with its
// own module path, so the functions on the caller's stack say whose they are. Outside a base (standalone, or
// inside a wasm instance, where the module is alone) none of this is in play and the globals serve.

// LoadSpec says who is loading, for BeginLoad. The native runtime fills it; modules never use it.
type LoadSpec struct {
	Name, Version string
	// Path is the module's Go module path, unique to this version (kouple build gives each version its own):
	// code whose function names start with Path+"." or Path+"/" belongs to the module.
	Path string
	// Env is the module's configuration, what Getenv answers.
	Env map[string]string
	// Logger receives what the module logs through Logger.
	Logger *slog.Logger
	// Call carries the module's calls to other modules and base services.
	Call func(ctx context.Context, target, method string, payload []byte) ([]byte, error)
	// CallValue, when set, carries a call with its argument and answer as Go values: to a native module's
	// method or a typed base service whose argument type is in's type. It returns ErrNoValuePath, having done
	// nothing, when the call cannot go that way; Call then encodes it.
	CallValue func(ctx context.Context, target, method string, in any) (any, error)
}

// Loaded is one module loaded into a base as a Go plugin: what it registered, and what it owns.
type Loaded struct {
	spec    LoadSpec
	ctx     context.Context
	cancel  context.CancelFunc
	running atomic.Int64 // goroutines started with Go that have not returned
	mu      sync.Mutex
	handler http.Handler
	methods map[string]method
}

var (
	loading *Loaded                   // the module whose plugin is being opened, under mu
	loaded  atomic.Pointer[[]*Loaded] // modules that can be found from the stack
	byPC    sync.Map                  // pc -> *Loaded, or noModule
)

type none struct{}

var noModule = none{}

// BeginLoad starts the registration of one module: until EndLoad, Handle and Export register for it. The
// caller must load one plugin at a time and call EndLoad on every path.
func BeginLoad(spec LoadSpec) *Loaded {
	if spec.Path == "" || spec.Name == "" {
		panic("sdk.BeginLoad: a module needs a name and a module path")
	}
	if spec.Logger == nil {
		spec.Logger = slog.Default()
	}
	l := &Loaded{spec: spec, methods: map[string]method{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if loading != nil {
		panic("sdk.BeginLoad: " + loading.spec.Name + " is still loading: load plugins one at a time")
	}
	loading = l
	old := loaded.Load()
	var list []*Loaded
	if old != nil {
		list = slices.Clone(*old)
	}
	list = append(list, l)
	loaded.Store(&list)
	return l
}

// EndLoad ends the registration BeginLoad started.
func EndLoad() {
	mu.Lock()
	defer mu.Unlock()
	loading = nil
}

// Handler is the handler the module registered, or nil.
func (l *Loaded) Handler() http.Handler {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handler
}

// Methods lists the names of the methods the module exported.
func (l *Loaded) Methods() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedNames(l.methods)
}

// Invoke runs one of the module's exported methods. A panic in the method becomes its error.
func (l *Loaded) Invoke(ctx context.Context, name string, payload []byte) ([]byte, error) {
	fn, err := l.method(name)
	if err != nil {
		return nil, err
	}
	return invoke(ctx, name, fn, payload)
}

// InvokeValue runs one of the module's exported methods with a Go value as its argument, and answers the
// method's Go value: nothing is encoded or copied. It returns ErrNoValuePath, without running the method, when
// in is not of the method's argument type. A panic in the method becomes its error.
func (l *Loaded) InvokeValue(ctx context.Context, name string, in any) (any, error) {
	fn, err := l.method(name)
	if err != nil {
		return nil, err
	}
	return invokeValue(ctx, name, fn, in)
}

func (l *Loaded) method(name string) (method, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn := l.methods[name]
	if fn.json == nil {
		return fn, fmt.Errorf("no method %q: this module exports %v", name, sortedNames(l.methods))
	}
	return fn, nil
}

// Running is how many goroutines the module started with Go are still running.
func (l *Loaded) Running() int64 { return l.running.Load() }

// Stop ends the module: its context is cancelled, so goroutines started with Go should return; it is no longer
// found from the stack; its handler and methods are dropped, so what only they referenced can be collected.
// It waits up to wait for the goroutines and returns how many are still running.
func (l *Loaded) Stop(wait time.Duration) int64 {
	l.cancel()
	mu.Lock()
	if loading == l {
		loading = nil
	}
	if old := loaded.Load(); old != nil {
		list := slices.DeleteFunc(slices.Clone(*old), func(x *Loaded) bool { return x == l })
		loaded.Store(&list)
	}
	mu.Unlock()
	byPC.Range(func(k, v any) bool {
		if v == l {
			byPC.Delete(k)
		}
		return true
	})
	l.mu.Lock()
	l.handler, l.methods = nil, map[string]method{}
	l.spec.Env, l.spec.Call, l.spec.CallValue = nil, nil, nil
	l.mu.Unlock()
	deadline := time.Now().Add(wait)
	for l.running.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return l.running.Load()
}

type loadedKey struct{}

// With returns ctx marked as the module's: the native runtime marks the context of each request and call it
// hands the module, so that Call finds the calling module without reading the stack.
func (l *Loaded) With(ctx context.Context) context.Context {
	return context.WithValue(ctx, loadedKey{}, l)
}

// currentIn is the module ctx was marked for, or else the one whose code is on the stack.
func currentIn(ctx context.Context) *Loaded {
	if l, ok := ctx.Value(loadedKey{}).(*Loaded); ok {
		return l
	}
	return current()
}

// current finds the native module whose code called into the SDK, or nil (standalone, wasm, or code that is
// not a module's).
func current() *Loaded {
	list := loaded.Load()
	if list == nil || len(*list) == 0 {
		return nil
	}
	var pcs [64]uintptr
	n := runtime.Callers(2, pcs[:])
	for _, pc := range pcs[:n] {
		if v, ok := byPC.Load(pc); ok {
			if l, ok := v.(*Loaded); ok {
				return l
			}
			continue
		}
		l := ownerOf(pc, *list)
		if l != nil {
			byPC.Store(pc, l)
			return l
		}
		byPC.Store(pc, noModule)
	}
	return nil
}

// ownerOf says which module's code pc is in (looking through inlined frames).
func ownerOf(pc uintptr, list []*Loaded) *Loaded {
	frames := runtime.CallersFrames([]uintptr{pc})
	for {
		f, more := frames.Next()
		for _, l := range list {
			if rest, ok := strings.CutPrefix(f.Function, l.spec.Path); ok && rest != "" && (rest[0] == '.' || rest[0] == '/') {
				return l
			}
		}
		if !more {
			return nil
		}
	}
}

// registering is where Handle and Export register: the module loading now, else the calling module, else nil
// for the package's own registration (standalone and wasm).
func registering() *Loaded {
	mu.Lock()
	l := loading
	mu.Unlock()
	if l != nil {
		return l
	}
	return current()
}

// Getenv is the module's configuration value for key: the manifest's config and the install's settings. Use it
// rather than os.Getenv, which in a native module reads the base's environment. Standalone and in wasm it is
// os.Getenv.
func Getenv(key string) string {
	if l := current(); l != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.spec.Env[key]
	}
	return os.Getenv(key)
}

// moduleLogger is a native module's logger, whose records carry the module's identity, or nil.
func moduleLogger() *slog.Logger {
	if l := current(); l != nil {
		return l.spec.Logger
	}
	return nil
}

// Context is the module's context: cancelled when a base uninstalls the module (native runtime). Standalone and
// in wasm it is never cancelled: the process ends instead.
func Context() context.Context {
	if l := current(); l != nil {
		return l.ctx
	}
	return context.Background()
}

// Go runs fn on a new goroutine with the module's context, which the base cancels at uninstall: fn must return
// when it is done. Start a module's background work this way, never with a bare go statement, so that
// uninstalling the module stops it. In a native module a panic in fn is logged and ends only that goroutine.
func Go(fn func(ctx context.Context)) {
	l := current()
	if l == nil {
		go fn(context.Background())
		return
	}
	l.running.Add(1)
	go func() {
		defer l.running.Add(-1)
		defer func() {
			if r := recover(); r != nil {
				l.spec.Logger.Error("goroutine panicked", "panic", fmt.Sprint(r))
			}
		}()
		fn(l.ctx)
	}()
}

func sortedNames(m map[string]method) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
