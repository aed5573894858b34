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

// Main runs a package's tests and removes the artifacts they built.
func Main(m *testing.M) {
	code := m.Run()
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
