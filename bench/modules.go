package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

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
	res, err := builder.Build(ctx, filepath.Join(r.cfg.Repo, dir), builder.Options{Out: out})
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

// variant writes a copy of a built artifact whose embedded manifest is changed by edit: the same code under
// another name and context path, without another go build. Its bytes differ, so the base compiles it anew.
func (r *runner) variant(data []byte, edit func(m *manifest.Manifest)) (*artifactFile, error) {
	info, err := artifact.ReadWasm(data)
	if err != nil {
		return nil, err
	}
	m := *info.Manifest
	m.Config = map[string]string{}
	for k, v := range info.Manifest.Config {
		m.Config[k] = v
	}
	edit(&m)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	out, err := artifact.EmbedManifest(data, &m)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(r.tmp, "artifacts", m.Name+"-"+m.Version+".wasm")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return nil, err
	}
	return &artifactFile{path: path, name: m.Name, version: m.Version, contextPath: m.ContextPath}, nil
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
