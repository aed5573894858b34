// Package store is a base's memory across restarts: which module versions it runs, which is active, their
// configuration, and their artifacts' bytes. Records live in a bbolt database; artifacts are files named by
// their sha256, written (and synced) before any record points at them, so a base killed at any moment comes
// back with what it had acknowledged and nothing half-written.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FormatVersion is the version of the on-disk layout. A base refuses a data dir written in another.
const FormatVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketModules = []byte("modules")
	keyFormat     = []byte("format")
	keyBaseID     = []byte("baseID")
)

// Store is an open data dir. It is safe for concurrent use.
type Store struct {
	dir string
	db  *bolt.DB
}

// ErrLocked means another process holds the data dir.
var ErrLocked = errors.New("the data dir is in use by another base process")

// Open opens (creating if needed) the data dir. It fails at once, never waits, if another base holds it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "artifacts"), 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "kouple.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("data dir %s: %w: stop that base, or give this one another --data-dir", dir, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("data dir %s: open %s: %w", dir, path, err)
	}
	s := &Store{dir: dir, db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketModules); err != nil {
			return err
		}
		switch v := meta.Get(keyFormat); {
		case v == nil:
			return meta.Put(keyFormat, []byte(fmt.Sprint(FormatVersion)))
		case string(v) != fmt.Sprint(FormatVersion):
			return fmt.Errorf("written in store format %s, but this base reads format %d: use a matching kouple, or a new --data-dir", v, FormatVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	return s, nil
}

// Dir is the data dir.
func (s *Store) Dir() string { return s.dir }

// Close closes the database and releases the data dir.
func (s *Store) Close() error { return s.db.Close() }

// BaseID returns the base's persisted identity, creating it with make on first use.
func (s *Store) BaseID(make func() string) (string, error) {
	var id string
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyBaseID); v != nil {
			id = string(v)
			return nil
		}
		id = make()
		return meta.Put(keyBaseID, []byte(id))
	})
	return id, err
}

// Module is what the store remembers of one module.
type Module struct {
	Name     string             `json:"name"`
	Active   string             `json:"active,omitempty"` // the active version, if any
	Versions map[string]Version `json:"versions"`
}

// Version is one installed version.
type Version struct {
	Digest string            `json:"digest"` // sha256 of the artifact, hex
	Source string            `json:"source,omitempty"`
	Env    map[string]string `json:"env,omitempty"`
	// MemoryMB is the install's override of the manifest's limits.memoryMB (a pod's resources.limits.memory);
	// 0 for none.
	MemoryMB    int       `json:"memoryMB,omitempty"`
	Priority    int       `json:"priority"`
	InstalledAt time.Time `json:"installedAt"`
}

// Modules lists every module the base should run, by name.
func (s *Store) Modules() ([]Module, error) {
	var mods []Module
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketModules).ForEach(func(k, v []byte) error {
			var m Module
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("record of module %s: %w", k, err)
			}
			mods = append(mods, m)
			return nil
		})
	})
	return mods, err
}

// update changes one module's record in a transaction; fn returns false to delete the record.
func (s *Store) update(name string, fn func(m *Module) bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketModules)
		m := Module{Name: name, Versions: map[string]Version{}}
		if v := b.Get([]byte(name)); v != nil {
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("record of module %s: %w", name, err)
			}
			if m.Versions == nil {
				m.Versions = map[string]Version{}
			}
		}
		if !fn(&m) || len(m.Versions) == 0 {
			return b.Delete([]byte(name))
		}
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), data)
	})
}

// PutVersion records an installed version; if active, it becomes the active one. The artifact must have been
// stored with PutArtifact first.
func (s *Store) PutVersion(name, version string, v Version, active bool) error {
	if _, err := os.Stat(s.artifactPath(v.Digest)); err != nil {
		return fmt.Errorf("module %s:%s: artifact %s is not stored: %w", name, version, v.Digest, err)
	}
	return s.update(name, func(m *Module) bool {
		m.Versions[version] = v
		if active {
			m.Active = version
		}
		return true
	})
}

// SetActive records the active version of a module ("" for none).
func (s *Store) SetActive(name, version string) error {
	return s.update(name, func(m *Module) bool {
		m.Active = version
		return true
	})
}

// RemoveVersion forgets a version ("" forgets the whole module).
func (s *Store) RemoveVersion(name, version string) error {
	return s.update(name, func(m *Module) bool {
		if version == "" {
			return false
		}
		delete(m.Versions, version)
		if m.Active == version {
			m.Active = ""
		}
		return true
	})
}

// Digest is the hex sha256 of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (s *Store) artifactPath(digest string) string {
	return filepath.Join(s.dir, "artifacts", "sha256-"+digest)
}

// PutArtifact stores an artifact under its digest (atomically, synced) and returns the digest.
func (s *Store) PutArtifact(data []byte) (string, error) {
	digest := Digest(data)
	path := s.artifactPath(digest)
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		os.Chtimes(path, now, now) // fresh again for the garbage collector's grace period
		return digest, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-artifact-")
	if err != nil {
		return "", fmt.Errorf("store artifact: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return "", fmt.Errorf("store artifact %s: %w", digest, err)
	}
	return digest, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Artifact reads a stored artifact and checks its digest.
func (s *Store) Artifact(digest string) ([]byte, error) {
	data, err := os.ReadFile(s.artifactPath(digest))
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", digest, err)
	}
	if got := Digest(data); got != digest {
		return nil, fmt.Errorf("artifact %s is corrupt on disk (its content hashes to %s)", digest, got)
	}
	return data, nil
}

// GC removes stored artifacts that no version refers to and that are older than grace, and returns their
// digests. keep lists further digests to spare (artifacts being installed).
func (s *Store) GC(grace time.Duration, keep ...string) ([]string, error) {
	mods, err := s.Modules()
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, d := range keep {
		used[d] = true
	}
	for _, m := range mods {
		for _, v := range m.Versions {
			used[v.Digest] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, "artifacts"))
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		info, err := e.Info()
		if err != nil {
			continue
		}
		digest, ok := strings.CutPrefix(name, "sha256-")
		stale := time.Since(info.ModTime()) >= grace
		if ok && !used[digest] && stale || !ok && stale && len(name) > 0 && name[0] == '.' {
			if err := os.Remove(filepath.Join(s.dir, "artifacts", name)); err == nil && ok {
				removed = append(removed, digest)
			}
		}
	}
	slices.Sort(removed)
	return removed, nil
}
