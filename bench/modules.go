package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/builder"
	"github.com/kouple/kouple/manifest"
)

// artifactFile is a built module artifact on disk.
type artifactFile struct {
	path                       string
	name, version, contextPath string
}

// buildWasm builds the module in dir (relative to the repository) with the builder, as `kouple build` does.
func (r *runner) buildWasm(ctx context.Context, dir string) (*artifactFile, []byte, error) {
	out := filepath.Join(r.tmp, "artifacts", strings.ReplaceAll(dir, "/", "_")+".wasm")
	return r.build(ctx, dir, builder.Options{Out: out})
}

// build builds the module in dir with the builder and reads the artifact back.
func (r *runner) build(ctx context.Context, dir string, opts builder.Options) (*artifactFile, []byte, error) {
	res, err := builder.Build(ctx, filepath.Join(r.cfg.Repo, dir), opts)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(res.Path)
	if err != nil {
		return nil, nil, err
	}
	m := res.Manifest
	return &artifactFile{path: res.Path, name: m.Name, version: m.Version, contextPath: m.ContextPath}, data, nil
}

// variant writes a copy of a built artifact (wasm or native) whose embedded manifest is changed by edit: the
// same code under another name and context path, without another go build. A wasm variant's bytes differ, so
// the base compiles it anew; a native variant is still the same Go plugin path, so it cannot load into a
// process that has loaded the original.
func (r *runner) variant(data []byte, edit func(m *manifest.Manifest)) (*artifactFile, error) {
	kind, err := artifact.Detect(data)
	if err != nil {
		return nil, err
	}
	var orig *manifest.Manifest
	if kind == artifact.KindPlugin {
		info, err := artifact.ReadPlugin(data)
		if err != nil {
			return nil, err
		}
		orig = info.Manifest
	} else {
		info, err := artifact.ReadWasm(data)
		if err != nil {
			return nil, err
		}
		orig = info.Manifest
	}
	m := *orig
	m.Config = map[string]string{}
	for k, v := range orig.Config {
		m.Config[k] = v
	}
	edit(&m)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var out []byte
	ext := ".wasm"
	if kind == artifact.KindPlugin {
		out, err = artifact.AppendManifest(data, &m)
		ext = ".so"
	} else {
		out, err = artifact.EmbedManifest(data, &m)
	}
	if err != nil {
		return nil, err
	}
	path := filepath.Join(r.tmp, "artifacts", m.Name+"-"+m.Version+ext)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return nil, err
	}
	return &artifactFile{path: path, name: m.Name, version: m.Version, contextPath: m.ContextPath}, nil
}

// hello is hello as the runtime runs it: the wasm build, or for native the first of hellos.
func (r *runner) hello(ctx context.Context, rt string) (*artifactFile, error) {
	if rt == "wasm" {
		return r.helloWasm, nil
	}
	hs, err := r.hellos(ctx, rt, 1)
	if err != nil {
		return nil, err
	}
	return hs[0], nil
}

// hellos are n copies of hello, each a module of its own (hello-dI at /hello-dI). The wasm ones share one
// build; each native one is a build of its own version, since a process loads a Go plugin path only once
// (the builder gives every version its own path). Native builds are kept for the rest of the run.
func (r *runner) hellos(ctx context.Context, rt string, n int) ([]*artifactFile, error) {
	rename := func(i int) func(m *manifest.Manifest) {
		return func(m *manifest.Manifest) {
			m.Name = fmt.Sprintf("hello-d%d", i+1)
			m.ContextPath = fmt.Sprintf("/hello-d%d", i+1)
		}
	}
	if rt == "wasm" {
		var out []*artifactFile
		for i := range n {
			a, err := r.variant(r.helloBytes, rename(i))
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	have := len(r.nativeHellos)
	if have >= n {
		return r.nativeHellos[:n], nil
	}
	r.logf("building %d native hello plugins against the base", n-have)
	if _, err := r.baseBuildInfo(ctx); err != nil { // before the builds ask for it side by side
		return nil, err
	}
	built := make([]*artifactFile, n-have)
	errs := make([]error, n-have)
	sem := make(chan struct{}, goruntime.NumCPU())
	var wg sync.WaitGroup
	for j := range built {
		i := have + j
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, data, err := r.buildPlugin(ctx, "examples/hello", fmt.Sprintf("1.0.0-d%d", i+1))
			if err == nil {
				built[j], err = r.variant(data, rename(i))
			}
			errs[j] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.nativeHellos = append(r.nativeHellos, built...)
	return r.nativeHellos, nil
}

// callers are ping and pong, two modules of bench/testdata/caller: ping calls pong's echo.
func (r *runner) callers(ctx context.Context, rt string) (ping, pong *artifactFile, err error) {
	toPong := func(m *manifest.Manifest) { m.Name, m.ContextPath, m.Config["PEER"] = "pong", "/pong", "ping" }
	if rt == "wasm" {
		_, data, err := r.buildWasm(ctx, "bench/testdata/caller")
		if err != nil {
			return nil, nil, err
		}
		if ping, err = r.variant(data, func(m *manifest.Manifest) {}); err != nil {
			return nil, nil, err
		}
		pong, err = r.variant(data, toPong)
		return ping, pong, err
	}
	// Native: two builds, two Go plugin paths.
	if ping, _, err = r.buildPlugin(ctx, "bench/testdata/caller", "1.0.0-ping"); err != nil {
		return nil, nil, err
	}
	_, data, err := r.buildPlugin(ctx, "bench/testdata/caller", "1.0.0-pong")
	if err != nil {
		return nil, nil, err
	}
	pong, err = r.variant(data, toPong)
	return ping, pong, err
}

// buildPlugin builds the module in dir as a native module (a Go plugin) of the given version, against the
// base the bench runs (cfg.Exe), as `kouple build --runtime native --base URL` does.
func (r *runner) buildPlugin(ctx context.Context, dir, version string) (*artifactFile, []byte, error) {
	bi, err := r.baseBuildInfo(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := filepath.Join(r.tmp, "artifacts", strings.ReplaceAll(dir, "/", "_")+"-"+version+".so")
	if r.plugins != nil {
		if out, err = r.plugins.path(filepath.Join(r.cfg.Repo, dir), version); err != nil {
			return nil, nil, err
		}
		if data, err := os.ReadFile(out); err == nil {
			if info, err := artifact.ReadPlugin(data); err == nil {
				m := info.Manifest
				return &artifactFile{path: out, name: m.Name, version: m.Version, contextPath: m.ContextPath}, data, nil
			}
		}
	}
	return r.build(ctx, dir, builder.Options{Runtime: manifest.RuntimeNative, Version: version, Out: out, Base: bi})
}

// baseBuildInfo asks a base how it was built, once per run, and opens the plugin cache. The first call is not
// concurrent with others.
func (r *runner) baseBuildInfo(ctx context.Context) (*artifact.BuildInfo, error) {
	if r.baseInfo != nil {
		return r.baseInfo, nil
	}
	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	if r.baseInfo, err = b.buildInfo(); err != nil {
		return nil, err
	}
	if r.cfg.PluginCache != "" {
		if r.plugins, err = openPluginCache(r.cfg.PluginCache, r.cfg.Exe); err != nil {
			return nil, err
		}
	}
	return r.baseInfo, nil
}

// buildNative builds the module in dir as an ordinary program (the SDK's native Serve listens on $KOUPLE_ADDR).
func (r *runner) buildNative(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(r.tmp, "native", strings.ReplaceAll(dir, "/", "_"))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = filepath.Join(r.cfg.Repo, dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", dir, err, b)
	}
	return out, nil
}

// startNative runs a native service binary on a free loopback port and waits until path answers 200.
func (r *runner) startNative(ctx context.Context, bin, path string, env ...string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc(ctx, bin, nil, append([]string{"KOUPLE_ADDR=" + addr}, env...))
	if err != nil {
		return nil, "", err
	}
	r.cleanup(p.stop)
	url := "http://" + addr
	if err := p.waitHTTP(url+path, 30e9); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, url, nil
}
