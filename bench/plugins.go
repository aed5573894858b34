package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// pluginCache keeps the bench's native builds across runs: a plugin build takes seconds, and the quick suite
// needs a dozen. A plugin is only good for the base binary it was built against, so entries are named by the
// sha256 of that binary (which covers the SDK and every dependency the plugin shares with it) and of the
// module's source and version; opening the cache removes the entries of other binaries.
type pluginCache struct {
	dir, exe string // exe: the base binary's digest, the prefix of its entries
}

func openPluginCache(dir, exePath string) (*pluginCache, error) {
	exe, err := fileDigest(exePath)
	if err != nil {
		return nil, fmt.Errorf("plugin cache: %w", err)
	}
	exe = exe[:16]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plugin cache %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin cache %s: %w", dir, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), exe+"-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return &pluginCache{dir: dir, exe: exe}, nil
}

// path is where the build of the module source in srcDir, at version, against the cache's binary is kept.
func (c *pluginCache) path(srcDir, version string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", version)
	err := filepath.WalkDir(srcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(srcDir, p)
		if strings.HasPrefix(d.Name(), ".") || strings.HasSuffix(p, ".wasm") || strings.HasSuffix(p, ".so") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(c.dir, c.exe+"-"+hex.EncodeToString(h.Sum(nil))[:32]+".so"), nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
