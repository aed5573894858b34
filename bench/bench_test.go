package bench_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/bench"
	"github.com/kouple/kouple/internal/moduletest"
)

// TestRunSmall runs every comparison with tiny counts against real child processes — a base, native services,
// the load generator and the gRPC server from a freshly built kouple — and checks the report's plumbing, not
// its numbers.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kouple and modules, and runs real processes")
	}
	exe := filepath.Join(t.TempDir(), "kouple")
	build := exec.Command("go", "build", "-o", exe, "./cmd/kouple")
	build.Dir = moduletest.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var log bytes.Buffer
	rep, err := bench.Run(context.Background(), bench.Config{
		Exe:         exe,
		Repo:        moduletest.Root(),
		CacheDir:    moduletest.CacheDir(),
		PluginCache: t.TempDir(),
		Sizes: &bench.Sizes{DeployTrials: 1, Density: []int{1}, Calls: 10, ServeFor: 200 * time.Millisecond,
			Waits: 5, WaitMS: 10, Churn: 2, GuardTrials: 1},
		Log: &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("failures: %v\n%s", rep.Failures, log.String())
	}
	// Every comparison ran for every runtime (fleet aside: its rows name none).
	seen := map[string]bool{}
	for _, row := range rep.Rows {
		f := strings.Fields(row.Comparison)
		seen[f[0]] = true
		if len(f) > 1 {
			seen[f[0]+" "+strings.TrimSuffix(f[1], ",")] = true
		}
	}
	for _, want := range []string{"deploy", "density", "calls", "serving", "concurrency", "churn", "guard", "fleet"} {
		if !seen[want] {
			t.Errorf("no %s row", want)
		}
		for _, rt := range bench.Runtimes {
			if want != "fleet" && !seen[want+" ("+rt+")"] {
				t.Errorf("no %s (%s) row", want, rt)
			}
		}
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{"gRPC between two processes", "Extism", "not measured: no fleet in this suite", "≥ 0.4x native",
		"≥ 0.9x native", "≥ 100x faster than loopback HTTP", "≤ 20 ms", "≤ 0.3x a process", "without the guard", "past its 100 ms CPU budget"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, text.String())
		}
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "chart.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("chart.png: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "table.md"))
	if !bytes.Contains(md, []byte("| comparison | metric |")) {
		t.Errorf("table.md:\n%s", md)
	}
}
