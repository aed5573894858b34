package artifact

import (
	"strings"
	"testing"

	"github.com/kouple/kouple/manifest"
)

func TestPluginTrailer(t *testing.T) {
	m := &manifest.Manifest{ABI: 1, Name: "hello", Version: "1.0.0", ContextPath: "/hello", Runtime: "native"}
	m.Normalize()
	elf := append([]byte{0x7f, 'E', 'L', 'F'}, make([]byte, 100)...)
	once, err := AppendManifest(elf, m)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = "2.0.0"
	twice, err := AppendManifest(once, m) // replaces, does not stack
	if err != nil {
		t.Fatal(err)
	}
	if len(twice) != len(once) || !strings.HasSuffix(string(twice), PluginTrailerMagic) {
		t.Fatalf("trailer not replaced: %d vs %d bytes", len(twice), len(once))
	}
	// Not a real plugin: the manifest reads, the Go build information does not.
	_, err = ReadPlugin(twice)
	if err == nil || !strings.Contains(err.Error(), "module hello:2.0.0: the plugin carries no Go build information") {
		t.Errorf("err = %v", err)
	}
	if _, err := ReadPlugin(elf); err == nil || !strings.Contains(err.Error(), "has no Kouple manifest") {
		t.Errorf("no trailer: %v", err)
	}
	if k, _ := Detect(twice); k != KindPlugin {
		t.Errorf("kind %s", k)
	}
}

func TestCheckPlugin(t *testing.T) {
	base := &BuildInfo{GoVersion: "go1.26.8", Settings: map[string]string{"-race": "true", "CGO_ENABLED": "1"},
		Deps: []Dep{{Path: "go.yaml.in/yaml/v3", Version: "v3.0.6"}, {Path: "example.com/local", Version: "v0.0.0", Replace: &Dep{Path: "./local"}}}}
	same := &BuildInfo{GoVersion: "go1.26.8", Settings: map[string]string{"-race": "true", "CGO_ENABLED": "1", "-buildmode": "plugin"},
		Deps: []Dep{{Path: "go.yaml.in/yaml/v3", Version: "v3.0.6"}, {Path: "example.com/local", Version: "v0.0.0", Replace: &Dep{Path: "/abs/local"}}, {Path: "example.com/new", Version: "v1.0.0"}}}
	if err := CheckPlugin(base, same); err != nil {
		t.Errorf("same build refused: %v", err)
	}
	other := &BuildInfo{GoVersion: "go1.26.7", Settings: map[string]string{"CGO_ENABLED": "1", "-trimpath": "true"},
		Deps: []Dep{{Path: "go.yaml.in/yaml/v3", Version: "v3.0.4"}}}
	err := CheckPlugin(base, other)
	for _, want := range []string{"Go toolchain: the plugin go1.26.7, the base go1.26.8", `-race: the plugin "", the base "true"`,
		`-trimpath: the plugin "true", the base ""`, "go.yaml.in/yaml/v3: the module needs v3.0.4, but the base has v3.0.6"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to say %q", err, want)
		}
	}
}
