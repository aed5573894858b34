// Package builder turns a module's source directory into an artifact: it builds the Go code for the module's
// runtime and embeds the manifest, so the artifact says what it is.
package builder

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
)

// Options adjust a build.
type Options struct {
	// Version replaces the manifest's version in the artifact.
	Version string
	// Runtime replaces the manifest's runtime ("wasm" or "native").
	Runtime string
	// Out is the artifact's path; empty means <name>-<version>.wasm (.so for native) in the current directory.
	Out string
	// Base is how the base a native module will load into was built (its health's buildInfo, or
	// `kouple build --base-info FILE`); nil means this program's own build.
	Base *artifact.BuildInfo
	// BaseFrom, if Base is nil, is asked for it, only when the module is native (kouple deploy asks the base).
	BaseFrom func(context.Context) (*artifact.BuildInfo, error)
}

// Result is what a build produced.
type Result struct {
	Path     string
	Manifest *manifest.Manifest
}

// Build builds the module in dir.
func Build(ctx context.Context, dir string, opts Options) (*Result, error) {
	m, err := manifest.Load(dir)
	if err != nil {
		return nil, err
	}
	if opts.Version != "" {
		if err := manifest.ValidVersion(opts.Version); err != nil {
			return nil, err
		}
		m.Version = opts.Version
	}
	if opts.Runtime != "" {
		m.Runtime = opts.Runtime
	}
	m.ABI = manifest.ABIVersion
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.Runtime == manifest.RuntimeNative {
		out := opts.Out
		if out == "" {
			out = fmt.Sprintf("%s-%s.so", m.Name, m.Version)
		}
		bi := opts.Base
		if bi == nil && opts.BaseFrom != nil {
			if bi, err = opts.BaseFrom(ctx); err != nil {
				return nil, fmt.Errorf("module %s (native): %w", m.ID(), err)
			}
		}
		if err := buildNative(ctx, dir, m, bi, out); err != nil {
			return nil, fmt.Errorf("module %s (native): %w", m.ID(), err)
		}
		return &Result{Path: out, Manifest: m}, nil
	}
	if m.Runtime != manifest.RuntimeWasm {
		return nil, fmt.Errorf("module %s: this build of kouple builds only the %q and %q runtimes, not %q", m.ID(), manifest.RuntimeWasm, manifest.RuntimeNative, m.Runtime)
	}
	out := opts.Out
	if out == "" {
		out = fmt.Sprintf("%s-%s.wasm", m.Name, m.Version)
	}
	tmp, err := os.MkdirTemp("", "kouple-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	raw := filepath.Join(tmp, "module.wasm")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", raw, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("module %s: go build (GOOS=wasip1 GOARCH=wasm) in %s failed: %w\n%s", m.ID(), dir, err, strings.TrimSpace(stderr.String()))
	}
	wasm, err := os.ReadFile(raw)
	if err != nil {
		return nil, err
	}
	wasm, err = artifact.EmbedManifest(wasm, m)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", m.ID(), err)
	}
	if _, err := artifact.ReadWasm(wasm); err != nil {
		return nil, fmt.Errorf("module %s: the built artifact is not a usable module: %w", m.ID(), err)
	}
	if err := writeFileAtomic(out, wasm); err != nil {
		return nil, fmt.Errorf("module %s: write artifact: %w", m.ID(), err)
	}
	return &Result{Path: out, Manifest: m}, nil
}

func writeFileAtomic(path string, data []byte) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".kouple-artifact-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
