package wasm_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/wasm"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestCompiledCodeShared: two artifacts of one build that differ only in their manifest (another name and
// version) use one directory of compiled code, which lists both.
func TestCompiledCodeShared(t *testing.T) {
	data := moduletest.Build(t, "examples/hello", "1.0.0")
	info, err := artifact.ReadWasm(data)
	if err != nil {
		t.Fatal(err)
	}
	m := *info.Manifest
	m.Name, m.Version, m.ContextPath = "hello-copy", "9.9.9", "/hello-copy"
	other, err := artifact.EmbedManifest(data, &m)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := artifact.WasmCode(data)
	code2, _ := artifact.WasmCode(other)
	if hexSum(code) != hexSum(code2) || hexSum(data) == hexSum(other) {
		t.Fatal("the two artifacts should differ, and their code should not")
	}
	r := newRuntime(t)
	for _, a := range [][]byte{data, other} {
		mod, err := r.Load(context.Background(), runtime.Spec{Artifact: a})
		if err != nil {
			t.Fatal(err)
		}
		mod.Close(context.Background())
	}
	users, err := os.ReadDir(filepath.Join(moduletest.CacheDir(), hexSum(code), "users"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name())
	}
	if !slices.Contains(names, hexSum(data)) || !slices.Contains(names, hexSum(other)) {
		t.Errorf("users of the compiled code: %v", names)
	}
}

// TestRemoveCache: compiled code stays while an artifact that is kept uses it, and goes with its last user;
// a directory of the older layout (named by its artifact) goes with that artifact.
func TestRemoveCache(t *testing.T) {
	dir := t.TempDir()
	code, a1, a2, old := hexSum([]byte("code")), hexSum([]byte("a1")), hexSum([]byte("a2")), hexSum([]byte("old"))
	for _, p := range []string{filepath.Join(code, "users", a1), filepath.Join(code, "users", a2), filepath.Join(old, "compiled")} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := wasm.New(wasm.Config{CacheDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := r.RemoveCache(func(d string) bool { return d == a2 })
	if err != nil || !slices.Equal(removed, []string{old}) {
		t.Fatalf("keeping a2: removed %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, code, "users", a1)); !os.IsNotExist(err) {
		t.Errorf("a1 is still listed as a user: %v", err)
	}
	removed, err = r.RemoveCache(func(string) bool { return false })
	if err != nil || !slices.Equal(removed, []string{code}) {
		t.Fatalf("keeping nothing: removed %v, %v", removed, err)
	}
}
