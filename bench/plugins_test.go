package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPluginCache: an entry is named by the base binary, the module's source and the version; opening the
// cache for another binary removes the entries of the first.
func TestPluginCache(t *testing.T) {
	dir, src := t.TempDir(), t.TempDir()
	exeA, exeB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(exeA, "base A")
	write(exeB, "base B")
	write(filepath.Join(src, "main.go"), "package main")
	a, err := openPluginCache(dir, exeA)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := a.path(src, "1.0.0")
	p2, _ := a.path(src, "1.0.1")
	if p1 == p2 {
		t.Errorf("two versions share %s", p1)
	}
	write(p1, "plugin")
	write(filepath.Join(src, "main.go"), "package main // changed")
	if p3, _ := a.path(src, "1.0.0"); p3 == p1 {
		t.Errorf("changed source kept %s", p1)
	}
	if _, err := openPluginCache(dir, exeA); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p1); err != nil {
		t.Errorf("reopened for the same binary, the entry is gone: %v", err)
	}
	b, err := openPluginCache(dir, exeB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p1); !os.IsNotExist(err) {
		t.Errorf("opened for another binary, the first's entry stays: %v", err)
	}
	if pb, _ := b.path(src, "1.0.0"); filepath.Dir(pb) != dir || pb == p1 {
		t.Errorf("entry for another binary: %s", pb)
	}
}
