package services

import (
	"context"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/sdk/kvwire"
)

// KV is a key-value store owned by the base: a private namespace per module, and shared namespaces that a
// module reaches with the capability kv:NAMESPACE.
type KV struct {
	db     *bolt.DB
	policy *Policy
}

// MaxValue bounds a stored value.
const MaxValue = 1 << 20

// OpenKV opens (creating) the store at path.
func OpenKV(path string, policy *Policy) (*KV, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 0})
	if err != nil {
		return nil, fmt.Errorf("kv store %s: %w", path, err)
	}
	return &KV{db: db, policy: policy}, nil
}

// Close closes the store.
func (kv *KV) Close() error { return kv.db.Close() }

// bucket names the namespace a call may use, after checking the grant.
func (kv *KV) bucket(caller *manifest.Manifest, ns string) ([]byte, error) {
	if ns == "" {
		if caller == nil {
			return nil, errors.New("the base has no private namespace: name one")
		}
		if err := kv.policy.granted(caller, "kv"); err != nil {
			return nil, err
		}
		return []byte("module/" + caller.Name), nil
	}
	if strings.ContainsAny(ns, "/ ") {
		return nil, fmt.Errorf("namespace %q is not valid", ns)
	}
	if err := kv.policy.granted(caller, "kv:"+ns); err != nil {
		return nil, err
	}
	return []byte("shared/" + ns), nil
}

// Host is the kv service for modules: get, put, delete, list — encoded for wasm modules, and the sdk/kvwire
// values passed as they are for native ones.
func (kv *KV) Host() valueHost {
	h := newValueHost()
	for name, fn := range map[string]func(context.Context, *manifest.Manifest, kvwire.Request) (any, error){
		"get": kv.get, "put": kv.put, "delete": kv.delete, "list": kv.list,
	} {
		h.add(name, typed(fn))
	}
	return h
}

func (kv *KV) get(ctx context.Context, caller *manifest.Manifest, a kvwire.Request) (any, error) {
	b, err := kv.bucket(caller, a.Namespace)
	if err != nil {
		return nil, err
	}
	var out kvwire.Entry
	err = kv.db.View(func(tx *bolt.Tx) error {
		if bk := tx.Bucket(b); bk != nil {
			if v := bk.Get([]byte(a.Key)); v != nil {
				out.Value, out.Found = append([]byte(nil), v...), true
			}
		}
		return nil
	})
	return out, err
}

func (kv *KV) put(ctx context.Context, caller *manifest.Manifest, a kvwire.Request) (any, error) {
	b, err := kv.bucket(caller, a.Namespace)
	if err != nil {
		return nil, err
	}
	if a.Key == "" || len(a.Value) > MaxValue {
		return nil, fmt.Errorf("a key must not be empty and a value at most %d KiB", MaxValue>>10)
	}
	return nil, kv.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(b)
		if err != nil {
			return err
		}
		return bk.Put([]byte(a.Key), a.Value)
	})
}

func (kv *KV) delete(ctx context.Context, caller *manifest.Manifest, a kvwire.Request) (any, error) {
	b, err := kv.bucket(caller, a.Namespace)
	if err != nil {
		return nil, err
	}
	return nil, kv.db.Update(func(tx *bolt.Tx) error {
		if bk := tx.Bucket(b); bk != nil {
			return bk.Delete([]byte(a.Key))
		}
		return nil
	})
}

func (kv *KV) list(ctx context.Context, caller *manifest.Manifest, a kvwire.Request) (any, error) {
	b, err := kv.bucket(caller, a.Namespace)
	if err != nil {
		return nil, err
	}
	keys := []string{}
	err = kv.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b)
		if bk == nil {
			return nil
		}
		c := bk.Cursor()
		for k, _ := c.Seek([]byte(a.Prefix)); k != nil && strings.HasPrefix(string(k), a.Prefix); k, _ = c.Next() {
			keys = append(keys, string(k))
		}
		return nil
	})
	return keys, err
}
