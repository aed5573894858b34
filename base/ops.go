package base

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/internal/crashpoint"
	"github.com/kouple/kouple/module"
	"github.com/kouple/kouple/store"
)

// Install fetches an artifact (from the store if its pinned digest is known), stores it, and installs it.
func (b *Base) Install(ctx context.Context, req agent.InstallRequest) (*module.Version, error) {
	ref, err := artifact.ParseRef(req.BizURL, req.Sha256)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", module.ErrInvalid, err)
	}
	var data []byte
	if ref.Digest != "" {
		data, _ = b.store.Artifact(ref.Digest) // fetched once: a known digest is not fetched again
	}
	if data == nil {
		if data, err = artifact.Fetch(ctx, ref); err != nil {
			return nil, fmt.Errorf("%w: %w", module.ErrInvalid, err)
		}
	}
	if b.cfg.RequireSignature {
		key, err := artifact.Verify(data, b.trusted)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: refused by this base's signature policy: %w", module.ErrInvalid, req.BizURL, err)
		}
		b.logger.Info("signature verified", "artifact", req.BizURL, "key", key)
	}
	crashpoint.Hit("install.fetched")
	// The bytes are on disk before anything refers to them: a crash leaves at most an unused file.
	if _, err := b.store.PutArtifact(data); err != nil {
		return nil, err
	}
	crashpoint.Hit("install.stored")
	if req.InstallStrategy == agent.StrategyUninstallThenInstall {
		name := req.BizName
		if name == "" {
			if info, err := artifact.ReadWasm(data); err == nil {
				name = info.Manifest.Name
			} else if info, err := artifact.ReadPlugin(data); err == nil {
				name = info.Manifest.Name
			}
		}
		if mod := b.registry.Module(name); mod != nil {
			if err := b.registry.Uninstall(ctx, name, ""); err != nil && !errors.Is(err, module.ErrNotFound) {
				return nil, err
			}
		}
	}
	act := module.ActivateIfNone
	if req.Activate {
		act = module.ActivateNew
	}
	defer b.syncServices()
	defer b.checkRecycle()
	defer b.afterChange()
	return b.registry.Install(ctx, module.InstallRequest{
		Artifact:      data,
		Source:        req.BizURL,
		Env:           req.Envs,
		MemoryMB:      memoryMB(req.Limits),
		Replace:       req.Replace,
		Activate:      act,
		ExpectName:    req.BizName,
		ExpectVersion: req.BizVersion,
	})
}

func memoryMB(l *agent.InstallLimits) int {
	if l == nil {
		return 0
	}
	return l.MemoryMB
}

// Uninstall stops and forgets a module version, or every version when version is empty.
func (b *Base) Uninstall(ctx context.Context, name, version string) error {
	defer b.syncServices()
	defer b.checkRecycle()
	defer b.afterChange()
	return b.registry.Uninstall(ctx, name, version)
}

// Switch makes a version the active one.
func (b *Base) Switch(ctx context.Context, name, version string) (*module.Version, error) {
	defer b.syncServices()
	return b.registry.Switch(ctx, name, version)
}

// Modules lists the installed modules.
func (b *Base) Modules() []*module.Module { return b.registry.Modules() }

// GC removes stored artifacts and compiled code that no installed version uses.
func (b *Base) GC(ctx context.Context) ([]string, error) {
	var keep []string
	for _, mod := range b.registry.Modules() {
		for _, v := range mod.Versions() {
			keep = append(keep, v.Digest)
		}
	}
	removed, err := b.store.GC(0, keep...)
	if err != nil {
		return nil, err
	}
	var compiled []string
	if b.ownCache {
		if compiled, err = b.wasm.RemoveCache(func(d string) bool { return slices.Contains(keep, d) }); err != nil {
			return removed, err
		}
	}
	b.logger.Info("garbage collected", "artifacts", len(removed), "compiledCode", len(compiled))
	return removed, nil
}

// journal records acknowledged changes in the store.
type journal struct{ st *store.Store }

func (j journal) Installed(v *module.Version, env map[string]string, active bool) error {
	return j.st.PutVersion(v.Manifest.Name, v.Manifest.Version, store.Version{
		Digest:      v.Digest,
		Source:      v.Source,
		Env:         env,
		MemoryMB:    v.MemoryMB,
		Priority:    v.Manifest.Priority,
		InstalledAt: time.Now().UTC(),
	}, active)
}

func (j journal) Switched(name, version string) error { return j.st.SetActive(name, version) }

func (j journal) Uninstalled(name, version string) error { return j.st.RemoveVersion(name, version) }

// restore installs the modules the store remembers, lowest priority first, and activates the versions that
// were active. A module that fails is BROKEN; the others come back regardless.
func (b *Base) restore(ctx context.Context) {
	mods, err := b.store.Modules()
	if err != nil {
		b.logger.Error("cannot read the stored modules", "err", err)
		return
	}
	priority := func(m store.Module) int {
		p := 1 << 30
		for _, v := range m.Versions {
			p = min(p, v.Priority)
		}
		return p
	}
	slices.SortFunc(mods, func(a, b store.Module) int {
		return cmp.Or(cmp.Compare(priority(a), priority(b)), strings.Compare(a.Name, b.Name))
	})
	for _, m := range mods {
		versions := slices.Sorted(func(yield func(string) bool) {
			for v := range m.Versions {
				if !yield(v) {
					return
				}
			}
		})
		for _, ver := range versions {
			rec := m.Versions[ver]
			data, err := b.store.Artifact(rec.Digest)
			if err == nil {
				_, err = b.registry.Install(ctx, module.InstallRequest{
					Artifact: data, Source: rec.Source, Env: rec.Env, MemoryMB: rec.MemoryMB, Activate: module.ActivateNever,
					ExpectName: m.Name, ExpectVersion: ver,
				})
			}
			if err != nil {
				b.logger.Error("cannot restore a module version", "module", m.Name, "version", ver, "err", err)
			}
		}
		if m.Active != "" {
			if _, err := b.registry.Switch(ctx, m.Name, m.Active); err != nil {
				b.logger.Error("cannot activate a restored module version", "module", m.Name, "version", m.Active, "err", err)
			}
		}
		b.logger.Info("restored", "module", m.Name, "versions", len(versions), "active", m.Active)
	}
}

// installStatic installs the artifacts of --modules and the configured URLs that are not installed yet, in
// manifest priority order.
func (b *Base) installStatic(ctx context.Context) {
	type item struct {
		url      string
		priority int
		id       string
		digest   string
	}
	var items []item
	add := func(url string, data []byte) {
		info, err := artifact.ReadWasm(data)
		if err != nil {
			b.logger.Warn("not a module; skipped", "artifact", url, "err", err)
			return
		}
		items = append(items, item{url, info.Manifest.Priority, info.Manifest.ID(), store.Digest(data)})
	}
	if dir := b.cfg.ModulesDir; dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			b.logger.Error("cannot read the modules dir", "dir", dir, "err", err)
		}
		for _, e := range entries {
			path, _ := filepath.Abs(filepath.Join(dir, e.Name()))
			if e.IsDir() {
				continue
			}
			data, err := os.ReadFile(path)
			if err != nil {
				b.logger.Warn("cannot read; skipped", "artifact", path, "err", err)
				continue
			}
			if _, err := artifact.Detect(data); err != nil {
				continue // not an artifact: a README or the like
			}
			add("file://"+path, data)
		}
	}
	for _, url := range b.cfg.Modules {
		ref, err := artifact.ParseRef(url, "")
		var data []byte
		if err == nil {
			data, err = artifact.Fetch(ctx, ref)
		}
		if err != nil {
			b.logger.Error("cannot fetch a configured module", "url", url, "err", err)
			continue
		}
		add(url, data)
	}
	// Lower priorities first; one priority group installs in parallel (Koupleless's batch install).
	slices.SortStableFunc(items, func(a, b item) int { return cmp.Compare(a.priority, b.priority) })
	for len(items) > 0 {
		n := 1
		for n < len(items) && items[n].priority == items[0].priority {
			n++
		}
		group := items[:n]
		items = items[n:]
		var wg sync.WaitGroup
		for _, it := range group {
			name, version, _ := strings.Cut(it.id, ":")
			digest, installed := b.installedDigest(name, version)
			if installed && digest == it.digest {
				continue // already installed, from the store
			}
			wg.Go(func() {
				// A static artifact whose bytes changed under the same version replaces the stored one.
				if _, err := b.Install(ctx, agent.InstallRequest{BizURL: it.url, Replace: installed, Sha256: it.digest}); err != nil {
					b.logger.Error("static module failed", "artifact", it.url, "err", err)
				}
			})
		}
		wg.Wait()
	}
}

// installedDigest is the artifact digest of an installed module version.
func (b *Base) installedDigest(name, version string) (string, bool) {
	if mod := b.registry.Module(name); mod != nil {
		for _, v := range mod.Versions() {
			if v.Manifest.Version == version {
				return v.Digest, true
			}
		}
	}
	return "", false
}
