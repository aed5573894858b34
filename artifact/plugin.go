package artifact

import (
	"bytes"
	"debug/buildinfo"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/kouple/kouple/manifest"
)

// A native artifact is the Go plugin (an ELF shared object built with -buildmode=plugin) followed by a trailer:
// the manifest as JSON, its length (4 bytes, little-endian) and PluginTrailerMagic. The dynamic loader reads an
// ELF file through its program and section headers, so bytes after the last section are never looked at;
// the trailer lets `kouple inspect` and the registry read the manifest without opening the plugin (opening
// one runs its code, and can never be undone).
const PluginTrailerMagic = "KOUPLEMF"

var elfMagic = []byte{0x7f, 'E', 'L', 'F'}

// PluginInfo is what Kouple reads from a native artifact without opening it.
type PluginInfo struct {
	Manifest *manifest.Manifest
	// Build is how the plugin was built: toolchain, flags and the exact version of every dependency.
	Build *BuildInfo
	// Code is the size of the plugin itself, without the trailer.
	Code int
}

// ReadPlugin reads the manifest trailer and the Go build information of a native artifact.
func ReadPlugin(data []byte) (*PluginInfo, error) {
	if !bytes.HasPrefix(data, elfMagic) {
		return nil, errors.New("not a Go plugin (no ELF header)")
	}
	n := len(data)
	if n < 12 || string(data[n-8:]) != PluginTrailerMagic {
		return nil, errors.New("the Go plugin has no Kouple manifest: build it with `kouple build --runtime native`, which appends kouple.yaml")
	}
	size := int(binary.LittleEndian.Uint32(data[n-12:]))
	if size > n-12 {
		return nil, errors.New("the Go plugin's manifest trailer is truncated")
	}
	code := n - 12 - size
	m, err := manifest.FromJSON(data[code : n-12])
	if err != nil {
		return nil, err
	}
	if m.ABI == 0 {
		return nil, errors.New("the embedded manifest names no ABI version: rebuild the module with `kouple build`")
	}
	bi, err := buildinfo.Read(bytes.NewReader(data[:code]))
	if err != nil {
		return nil, fmt.Errorf("module %s: the plugin carries no Go build information: %w", m.ID(), err)
	}
	info := &PluginInfo{Manifest: m, Build: FromBuildInfo(bi), Code: code}
	if mode := info.Build.Settings["-buildmode"]; mode != "plugin" {
		return nil, fmt.Errorf("module %s: built with -buildmode=%s, not plugin", m.ID(), mode)
	}
	return info, nil
}

// AppendManifest returns the plugin with m in its trailer, replacing any earlier one.
func AppendManifest(plugin []byte, m *manifest.Manifest) ([]byte, error) {
	if !bytes.HasPrefix(plugin, elfMagic) {
		return nil, errors.New("not a Go plugin (no ELF header)")
	}
	if n := len(plugin); n >= 12 && string(plugin[n-8:]) == PluginTrailerMagic {
		size := int(binary.LittleEndian.Uint32(plugin[n-12:]))
		if size <= n-12 {
			plugin = plugin[:n-12-size]
		}
	}
	js := m.JSON()
	out := make([]byte, 0, len(plugin)+len(js)+12)
	out = append(append(out, plugin...), js...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(js)))
	return append(out, PluginTrailerMagic...), nil
}

// BuildInfo is how a Go program or plugin was built: what a native module must match to load into a base. A
// base reports its own (health, `buildInfo`); `kouple build --runtime native` builds against it.
type BuildInfo struct {
	GoVersion string `json:"goVersion"`
	// Path is the main package's import path (for a plugin, its plugin path).
	Path string `json:"path"`
	// Module is the main module's path.
	Module string `json:"module,omitempty"`
	// Settings are the build settings: -trimpath, -race, -tags, CGO_ENABLED, GOARCH, GOAMD64, ...
	Settings map[string]string `json:"settings"`
	Deps     []Dep             `json:"deps"`
}

// Dep is one dependency module at the version the program was built with.
type Dep struct {
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
	Sum     string `json:"sum,omitempty"`
	Replace *Dep   `json:"replace,omitempty"`
}

// Effective is the version that was really built: the replacement's when replaced ("" for a local directory).
func (d Dep) Effective() string {
	if d.Replace != nil {
		if d.Replace.Version == "" || d.Replace.Version == "(devel)" {
			return ""
		}
		return d.Replace.Path + "@" + d.Replace.Version
	}
	if d.Version == "(devel)" {
		return ""
	}
	return d.Version
}

// SelfBuildInfo is how the running program was built.
func SelfBuildInfo() (*BuildInfo, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil, errors.New("this program carries no Go build information")
	}
	return FromBuildInfo(bi), nil
}

// FromBuildInfo converts the standard library's build information.
func FromBuildInfo(bi *debug.BuildInfo) *BuildInfo {
	out := &BuildInfo{GoVersion: bi.GoVersion, Path: bi.Path, Module: bi.Main.Path, Settings: map[string]string{}}
	for _, s := range bi.Settings {
		out.Settings[s.Key] = s.Value
	}
	for _, d := range bi.Deps {
		out.Deps = append(out.Deps, dep(d))
	}
	return out
}

func dep(m *debug.Module) Dep {
	d := Dep{Path: m.Path, Version: m.Version, Sum: m.Sum}
	if m.Replace != nil {
		r := dep(m.Replace)
		d.Replace = &r
	}
	return d
}

// matchedSettings are the build settings that change the compiled code of every package, so a plugin and its base must agree.
var matchedSettings = []string{"-race", "-msan", "-asan", "-trimpath", "-tags", "-gcflags", "CGO_ENABLED", "GOOS", "GOARCH", "GOAMD64", "GOARM64", "GOEXPERIMENT"}

// FlagMismatches lists the build settings (and the toolchain) in which a plugin differs from its base.
func FlagMismatches(base, plugin *BuildInfo) []string {
	var out []string
	if base.GoVersion != plugin.GoVersion {
		out = append(out, fmt.Sprintf("Go toolchain: the plugin %s, the base %s", plugin.GoVersion, base.GoVersion))
	}
	for _, k := range matchedSettings {
		b, p := setting(base, k), setting(plugin, k)
		if b != p {
			out = append(out, fmt.Sprintf("%s: the plugin %q, the base %q", k, p, b))
		}
	}
	return out
}

func setting(bi *BuildInfo, k string) string {
	v := bi.Settings[k]
	if v == "false" {
		return "" // a false flag is the same as an absent one
	}
	return v
}

// DepConflicts lists the dependencies that plugin has at another version than have (the base's, or another
// native module's), naming the package and both versions. owner names have in the messages ("the base").
// Modules replaced by local directories carry no version and are left to the loader, which compares the code.
func DepConflicts(have *BuildInfo, owner string, plugin *BuildInfo) []string {
	index := map[string]Dep{}
	for _, d := range have.Deps {
		index[d.Path] = d
	}
	var out []string
	for _, d := range plugin.Deps {
		h, ok := index[d.Path]
		if !ok {
			continue
		}
		pv, hv := d.Effective(), h.Effective()
		if pv == "" || hv == "" || pv == hv {
			continue
		}
		out = append(out, fmt.Sprintf("%s: the module needs %s, but %s has %s", d.Path, pv, owner, hv))
	}
	slices.Sort(out)
	return out
}

// CheckPlugin says why a plugin cannot load into a base built as base, or nil.
func CheckPlugin(base, plugin *BuildInfo) error {
	var problems []string
	if f := FlagMismatches(base, plugin); len(f) > 0 {
		problems = append(problems, "built differently from the base ("+strings.Join(f, "; ")+"): rebuild it with `kouple build --runtime native --base URL` (or --base-info FILE)")
	}
	if d := DepConflicts(base, "the base", plugin); len(d) > 0 {
		problems = append(problems, "dependency versions differ from the base's ("+strings.Join(d, "; ")+"): a native module must use the base's version of every package they share")
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; and "))
}
