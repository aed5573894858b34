package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := s.PutArtifact([]byte("artifact one"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutVersion("hello", "1.0.0", Version{Digest: d1, Priority: 100}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVersion("hello", "2.0.0", Version{Digest: d1}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVersion("ghost", "1", Version{Digest: Digest([]byte("never stored"))}, true); err == nil {
		t.Error("a version whose artifact was never stored was recorded")
	}
	id1, _ := s.BaseID(func() string { return "first" })
	s.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mods, err := s.Modules()
	if err != nil || len(mods) != 1 || mods[0].Active != "1.0.0" || len(mods[0].Versions) != 2 {
		t.Fatalf("after reopen: %+v, %v", mods, err)
	}
	data, err := s.Artifact(d1)
	if err != nil || string(data) != "artifact one" {
		t.Fatalf("artifact: %q %v", data, err)
	}
	if id2, _ := s.BaseID(func() string { return "second" }); id2 != id1 {
		t.Errorf("base id changed: %s -> %s", id1, id2)
	}
	s.RemoveVersion("hello", "1.0.0")
	mods, _ = s.Modules()
	if mods[0].Active != "" || len(mods[0].Versions) != 1 {
		t.Errorf("after removing the active version: %+v", mods)
	}
	s.RemoveVersion("hello", "2.0.0")
	if mods, _ = s.Modules(); len(mods) != 0 {
		t.Errorf("a module without versions is still listed: %+v", mods)
	}
}

func TestSecondOpenFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	began := time.Now()
	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "give this one another --data-dir") {
		t.Fatalf("second open: %v", err)
	}
	if time.Since(began) > 5*time.Second {
		t.Errorf("second open waited %v", time.Since(began))
	}
}

func TestCorruptArtifactDetected(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, _ := s.PutArtifact([]byte("good bytes"))
	os.WriteFile(s.artifactPath(d), []byte("bad bytes"), 0o600)
	if _, err := s.Artifact(d); err == nil || !strings.Contains(err.Error(), "corrupt on disk") {
		t.Errorf("corrupt artifact: %v", err)
	}
}

func TestGC(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	used, _ := s.PutArtifact([]byte("used"))
	unused, _ := s.PutArtifact([]byte("unused"))
	kept, _ := s.PutArtifact([]byte("being installed"))
	s.PutVersion("m", "1", Version{Digest: used}, true)
	if removed, _ := s.GC(time.Hour); len(removed) != 0 {
		t.Errorf("removed within the grace period: %v", removed)
	}
	removed, err := s.GC(0, kept)
	if err != nil || len(removed) != 1 || removed[0] != unused {
		t.Errorf("GC removed %v, %v; want only %s", removed, err, unused)
	}
	for _, d := range []string{used, kept} {
		if _, err := os.Stat(filepath.Join(s.Dir(), "artifacts", "sha256-"+d)); err != nil {
			t.Errorf("%s was removed", d)
		}
	}
}

func TestFormatVersionChecked(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte("99")) })
	s.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "store format 99") {
		t.Errorf("open of a newer format: %v", err)
	}
}
