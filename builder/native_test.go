package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRewriteForVersion(t *testing.T) {
	gomod := []byte("module example.com/app\n\ngo 1.26\n\nrequire (\n\tgithub.com/kouple/kouple/sdk v0.0.0-00010101000000-000000000000\n\tgo.yaml.in/yaml/v3 v3.0.6\n)\n\nreplace github.com/kouple/kouple/sdk => ../sdk\n")
	out := string(rewriteGoMod(gomod, "example.com/app__v1_2_0", "/src/app"))
	if !strings.Contains(out, "module example.com/app__v1_2_0\n") || !strings.Contains(out, "=> /src/sdk\n") {
		t.Errorf("go.mod:\n%s", out)
	}
	if got := requiredPaths(gomod); len(got) != 2 || got[0] != "github.com/kouple/kouple/sdk" || got[1] != "go.yaml.in/yaml/v3" {
		t.Errorf("required: %v", got)
	}
	if v := sanitizeVersion("1.2.0-rc.1+b"); v != "1_2_0_rc_1_b" {
		t.Errorf("sanitized %q", v)
	}

	dir := t.TempDir()
	src := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/app/store\"\n\tx \"example.com/app\"\n\t\"example.com/apple\"\n)\n"
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	if err := rewriteImports(dir, "example.com/app", "example.com/app__v2", "example.com/app", nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "main.go"))
	want := strings.NewReplacer(`"example.com/app/store"`, `"example.com/app__v2/store"`, `x "example.com/app"`, `x "example.com/app__v2"`).Replace(src)
	if string(got) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}

	// A directory inside a bigger module may not import that module's other packages.
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport _ \"example.com/big/internal/x\"\n"), 0o644)
	err := rewriteImports(dir, "example.com/big/cmd/app", "example.com/big/cmd/app__v1", "example.com/big", nil)
	if err == nil || !strings.Contains(err.Error(), "give the module its own go.mod") {
		t.Errorf("err = %v", err)
	}
}
