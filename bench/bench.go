// Package bench runs Kouple's comparisons against real baselines — the same service as its own process,
// loopback HTTP and gRPC between processes, an Extism host — and reports them as a table and a chart.
// `kouple bench` is its command.
package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kouple/kouple/artifact"
)

// Config is one bench run.
type Config struct {
	Quick bool
	// Exe is a kouple binary: the base and the load generator run as its children.
	Exe string
	// Repo is the Kouple repository, where examples/ and bench/testdata/ are built from.
	Repo string
	// Only, when not empty, runs just these comparisons (deploy, density, calls, serving, concurrency, churn,
	// services, guard, fleet).
	Only []string
	// Sizes, when set, replace the suite's counts (used by the test to run the plumbing small).
	Sizes *Sizes
	// CacheDir is the warm compile cache the comparisons other than the uncached install use; it is kept across
	// runs, so a second run does not compile the density variants again (the artifacts are built
	// reproducibly). Empty means a new one in the run's temporary directory. Uncached installs always use a
	// new, empty one.
	CacheDir string
	// PluginCache, when not empty, keeps native builds across runs, for the same base binary (see pluginCache).
	PluginCache string
	Log         io.Writer
}

// Sizes are the counts of a suite.
type Sizes struct {
	DeployTrials   int           // installs from the cache, and starts of the native process
	UncachedTrials int           // installs with an empty compile cache
	Density        []int         // modules in one base
	Calls          int           // round trips per payload
	ServeFor       time.Duration // load per target and concurrency
	Waits          int           // concurrent waiting requests
	WaitMS         int
	Churn          int // install/uninstall cycles
	// FleetPods module pods over FleetBases bases under one kouple-controller (fleet.go); 0 skips it.
	FleetBases, FleetPods int
	GuardTrials           int // timed /compute requests, and /spin requests stopped past their budget
}

// QuickSizes and FullSizes are the suites of `kouple bench --quick` and `kouple bench`.
var (
	QuickSizes = Sizes{DeployTrials: 5, UncachedTrials: 1, Density: []int{5, 10}, Calls: 1000, ServeFor: 2 * time.Second, Waits: 100, WaitMS: 50, Churn: 40, GuardTrials: 5, FleetBases: 4, FleetPods: 40}
	FullSizes  = Sizes{DeployTrials: 10, UncachedTrials: 3, Density: []int{10, 50}, Calls: 20000, ServeFor: 5 * time.Second, Waits: 100, WaitMS: 50, Churn: 1000, GuardTrials: 10, FleetBases: 20, FleetPods: 500}
)

// Runtimes are the module runtimes every comparison runs for: each that exists.
var Runtimes = []string{"wasm", "native"}

// Row is one line of the table.
type Row struct {
	Comparison string
	Metric     string  // what is measured, with the unit
	Kouple     string  // Kouple's value as printed
	Baseline   string  // the baseline's value and what it is
	Ratio      float64 // Kouple ÷ baseline; 0 when there is none
	Target     string  // the target, if one applies
	Status     string  // met, missed, or empty
}

// Report is what a run produced.
type Report struct {
	Rows     []Row
	Started  time.Time
	Elapsed  time.Duration
	Quick    bool
	Sizes    Sizes
	Failures []string // comparisons that could not run, and why
}

type runner struct {
	cfg   Config
	sizes Sizes
	tmp   string
	rep   *Report

	mu       sync.Mutex
	cleanups []func()

	// built once, shared by the comparisons
	helloWasm  *artifactFile
	helloBytes []byte
	helloBin   string
	cacheDir   string // the warm compile cache

	baseInfo     *artifact.BuildInfo // how cfg.Exe was built, for native modules
	plugins      *pluginCache        // nil: every native module is built anew
	nativeHellos []*artifactFile     // hello's native builds so far, one version each
}

func (r *runner) cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "bench: "+format+"\n", args...)
	}
}

func (r *runner) add(row Row) {
	r.rep.Rows = append(r.rep.Rows, row)
	r.logf("%s | %s | %s | %s", row.Comparison, row.Metric, row.Kouple, row.Baseline)
}

type comparison struct {
	name string
	run  func(r *runner, ctx context.Context, rt string) error
}

var comparisons = []comparison{
	{"deploy", (*runner).deploy},
	{"density", (*runner).density},
	{"calls", (*runner).calls},
	{"serving", (*runner).serving},
	{"concurrency", (*runner).concurrency},
	{"churn", (*runner).churn},
	{"services", (*runner).services},
	{"guard", (*runner).guard},
	{"fleet", (*runner).fleet},
}

// Run runs the suite. A comparison that fails is reported in Failures and the others still run; every child
// process is stopped before Run returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Exe = exe
	}
	if cfg.Repo == "" {
		cfg.Repo = "."
	}
	repo, err := FindRepo(cfg.Repo)
	if err != nil {
		return nil, err
	}
	cfg.Repo = repo
	sizes := FullSizes
	if cfg.Quick {
		sizes = QuickSizes
	}
	if cfg.Sizes != nil {
		sizes = *cfg.Sizes
	}
	tmp, err := os.MkdirTemp("", "kouple-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{"artifacts", "native", "cache"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, err
		}
	}
	rep := &Report{Started: time.Now(), Quick: cfg.Quick, Sizes: sizes}
	r := &runner{cfg: cfg, sizes: sizes, tmp: tmp, rep: rep, cacheDir: cmp.Or(cfg.CacheDir, filepath.Join(tmp, "cache"))}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		r.mu.Lock()
		cs := r.cleanups
		r.cleanups = nil
		r.mu.Unlock()
		for i := len(cs) - 1; i >= 0; i-- {
			cs[i]()
		}
	}()
	r.logf("building hello (wasm and native) from %s", repo)
	if r.helloWasm, r.helloBytes, err = r.buildWasm(ctx, "examples/hello"); err != nil {
		return nil, err
	}
	if r.helloBin, err = r.buildNative(ctx, "examples/hello"); err != nil {
		return nil, err
	}
	for _, c := range comparisons {
		if len(cfg.Only) > 0 && !contains(cfg.Only, c.name) {
			continue
		}
		for _, rt := range Runtimes {
			began := time.Now()
			r.logf("%s (%s)", c.name, rt)
			if err := c.run(r, ctx, rt); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s (%s): %v", c.name, rt, err))
				r.add(Row{Comparison: c.name + " (" + rt + ")", Metric: "not measured", Kouple: "failed: " + firstLine(err.Error())})
			}
			r.logf("%s (%s) took %s", c.name, rt, time.Since(began).Round(time.Millisecond))
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

// FindRepo finds the Kouple repository at or above dir: the directory whose go.mod is module
// github.com/kouple/kouple.
func FindRepo(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && moduleLine(string(data)) == "github.com/kouple/kouple" {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Kouple repository at or above %s: run kouple bench in the repository or give --repo", abs)
		}
	}
}

func moduleLine(gomod string) string {
	var mod string
	fmt.Sscanf(gomod, "module %s", &mod)
	return mod
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
