// Package moduletest builds real modules for tests and shares what is costly across them: one build per
// module directory and test process, and one wasm compilation cache on disk for every test on the machine.
package moduletest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/kouple/kouple/builder"
)

// CacheDir is the wasm compilation cache shared by all tests: $KOUPLE_TEST_CACHE, else a fixed directory
// under the system's temporary directory, so a second test binary or run starts from compiled code.
func CacheDir() string {
	if d := os.Getenv("KOUPLE_TEST_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "kouple-test-wazero-cache")
}

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	mu     sync.Mutex
	outDir string
	built  = map[string][]byte{}
)

// Main runs a package's tests and removes the artifacts they built; then runs after (like pgtest.Stop).
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	mu.Lock()
	if outDir != "" {
		os.RemoveAll(outDir)
	}
	mu.Unlock()
	os.Exit(code)
}

// Build builds the module in dir (relative to the repository root unless absolute) once per test process,
// with version overriding the manifest's when not empty, and returns the artifact's bytes.
func Build(t testing.TB, dir, version string) []byte {
	t.Helper()
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(Root(), dir)
	}
	key := dir + "@" + version
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[key]; ok {
		return b
	}
	if outDir == "" {
		d, err := os.MkdirTemp("", "kouple-test-artifacts-")
		if err != nil {
			t.Fatal(err)
		}
		outDir = d
	}
	res, err := builder.Build(context.Background(), dir, builder.Options{
		Version: version,
		Out:     filepath.Join(outDir, filepath.Base(dir)+"-"+version+".wasm"),
	})
	if err != nil {
		t.Fatalf("build %s: %v", dir, err)
	}
	b, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	built[key] = b
	return b
}

// Variant copies the Go files of the module in dir (relative to the repository root) into a new module of its
// own under t's temporary directory, with manifest as its kouple.yaml and the SDK taken from this repository,
// as a module outside the repository would be.
func Variant(t testing.TB, dir, manifest string) string {
	t.Helper()
	src := filepath.Join(Root(), dir)
	out := filepath.Join(t.TempDir(), filepath.Base(dir))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s", src)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gomod := "module example.com/" + filepath.Base(out) + "\n\ngo 1.26\n\nrequire github.com/kouple/kouple/sdk v0.0.0\n\nreplace github.com/kouple/kouple/sdk => " + filepath.Join(Root(), "sdk") + "\n"
	if err := os.WriteFile(filepath.Join(out, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "kouple.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
