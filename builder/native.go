package builder

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
)

// buildNative builds a Go plugin that loads into a base built as base: same toolchain, same flags
// (-trimpath, -race, -tags, CGO_ENABLED=1, GOAMD64, ...), and checked to use the base's version of every
// dependency they share. Each version gets its own Go module path (<path>__v<version>), with the module's
// imports of its own packages rewritten to match, so that several versions of one module load side by side
// (Go refuses a second plugin with the same path, and would share their packages).
func buildNative(ctx context.Context, dir string, m *manifest.Manifest, base *artifact.BuildInfo, out string) error {
	if base == nil {
		self, err := artifact.SelfBuildInfo()
		if err != nil {
			return err
		}
		base = self
	}
	if base.Settings["-buildmode"] == "plugin" {
		return fmt.Errorf("the base information describes a plugin, not a base")
	}
	goVersion, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("go env GOVERSION: %w", err)
	}
	if v := strings.TrimSpace(string(goVersion)); v != base.GoVersion {
		return fmt.Errorf("the base was built with %s but the go command here is %s: a plugin must be built with the base's exact toolchain", base.GoVersion, v)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	root, modPath, err := findModule(dir)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(root, dir)
	pkgPath := modPath
	if rel != "." {
		pkgPath = modPath + "/" + filepath.ToSlash(rel)
	}
	newPath := pkgPath + "__v" + sanitizeVersion(m.Version)

	tmp, err := os.MkdirTemp("", "kouple-native-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	if err := copyTree(dir, src); err != nil {
		return fmt.Errorf("copy the module's source: %w", err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	requires := requiredPaths(gomod)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), rewriteGoMod(gomod, newPath, root), 0o644); err != nil {
		return err
	}
	if sum, err := os.ReadFile(filepath.Join(root, "go.sum")); err == nil {
		if err := os.WriteFile(filepath.Join(src, "go.sum"), sum, 0o644); err != nil {
			return err
		}
	}
	if err := rewriteImports(src, pkgPath, newPath, modPath, requires); err != nil {
		return err
	}

	raw := filepath.Join(tmp, "module.so")
	args := []string{"build", "-buildmode=plugin", "-o", raw}
	if base.Settings["-trimpath"] == "true" {
		args = append(args, "-trimpath")
	}
	for _, f := range []string{"-race", "-msan", "-asan"} {
		if base.Settings[f] == "true" {
			args = append(args, f)
		}
	}
	if t := base.Settings["-tags"]; t != "" {
		args = append(args, "-tags="+t)
	}
	if g := base.Settings["-gcflags"]; g != "" {
		args = append(args, "-gcflags="+g)
	}
	args = append(args, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	env := append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=-mod=mod", "GOWORK=off")
	for _, k := range []string{"GOOS", "GOARCH", "GOAMD64", "GOARM64", "GOEXPERIMENT"} {
		if v, ok := base.Settings[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (in a copy of %s as module %s) failed: %w\n%s", strings.Join(args, " "), dir, newPath, err, strings.TrimSpace(stderr.String()))
	}
	so, err := os.ReadFile(raw)
	if err != nil {
		return err
	}
	so, err = artifact.AppendManifest(so, m)
	if err != nil {
		return err
	}
	info, err := artifact.ReadPlugin(so)
	if err != nil {
		return fmt.Errorf("the built plugin is not a usable module: %w", err)
	}
	if err := artifact.CheckPlugin(base, info.Build); err != nil {
		return err
	}
	return writeFileAtomic(out, so)
}

// findModule finds the go.mod that holds dir: its directory and module path.
func findModule(dir string) (root, path string, err error) {
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if p := modulePath(data); p != "" {
				return d, p, nil
			}
			return "", "", fmt.Errorf("%s/go.mod names no module", d)
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("%s is not in a Go module (no go.mod above it)", dir)
		}
	}
}

var moduleLineRE = regexp.MustCompile(`(?m)^module\s+("?)([^\s"]+)("?)\s*$`)

func modulePath(gomod []byte) string {
	if m := moduleLineRE.FindSubmatch(gomod); m != nil {
		return string(m[2])
	}
	return ""
}

var (
	requireLineRE = regexp.MustCompile(`(?m)^(?:require\s+)?\s*([A-Za-z0-9._~/-]+)\s+v[0-9][^\s]*`)
	localReplace  = regexp.MustCompile(`=>\s*(\.\.?(?:/[^\s]*)?)(\s|$)`)
)

// requiredPaths lists the module paths go.mod requires or replaces.
func requiredPaths(gomod []byte) []string {
	var out []string
	for _, m := range requireLineRE.FindAllSubmatch(gomod, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// rewriteGoMod gives the copy its versioned module path and makes relative replace targets absolute.
func rewriteGoMod(gomod []byte, newPath, root string) []byte {
	out := moduleLineRE.ReplaceAll(gomod, []byte("module "+newPath))
	return localReplace.ReplaceAllFunc(out, func(b []byte) []byte {
		m := localReplace.FindSubmatch(b)
		return []byte("=> " + filepath.Join(root, string(m[1])) + string(m[2]))
	})
}

// rewriteImports points the copy's imports of its own packages (oldPath and below) at newPath. An import of
// another package of the enclosing module is refused: only the module's directory is copied.
func rewriteImports(src, oldPath, newPath, modPath string, requires []string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, data, parser.ImportsOnly)
		if err != nil {
			return err
		}
		var edits [][2]int
		var repl []string
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == oldPath || strings.HasPrefix(path, oldPath+"/"):
				edits = append(edits, [2]int{int(imp.Path.Pos()) - 1, int(imp.Path.End()) - 1})
				repl = append(repl, strconv.Quote(newPath+strings.TrimPrefix(path, oldPath)))
			case oldPath != modPath && strings.HasPrefix(path, modPath+"/") && !inRequired(path, requires):
				return fmt.Errorf("%s imports %s, another package of its enclosing module %s: a native build copies only the module's directory; give the module its own go.mod", p, path, modPath)
			}
		}
		if len(edits) == 0 {
			return nil
		}
		var out []byte
		last := 0
		for i, e := range edits {
			out = append(out, data[last:e[0]]...)
			out = append(out, repl[i]...)
			last = e[1]
		}
		out = append(out, data[last:]...)
		return os.WriteFile(p, out, 0o644)
	})
}

func inRequired(path string, requires []string) bool {
	for _, r := range requires {
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}

var versionCharRE = regexp.MustCompile(`[^A-Za-z0-9_]`)

func sanitizeVersion(v string) string { return versionCharRE.ReplaceAllString(v, "_") }

// copyTree copies the module's directory, leaving out hidden files and built artifacts.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if rel != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(p, ".wasm") || strings.HasSuffix(p, ".so") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
