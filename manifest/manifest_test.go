package manifest

import (
	"strings"
	"testing"
)

func TestParseDefaults(t *testing.T) {
	m, err := Parse([]byte("name: hello\nversion: 1.0.0\ncontextPath: /hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Runtime != RuntimeWasm || m.Priority != DefaultPriority || m.Limits.MemoryMB != DefaultMemoryMB || m.Limits.Instances != 1 {
		t.Errorf("defaults not filled: %+v", m)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"version: 1\ncontextPath: /a\n", "name is missing"},
		{"name: Hello\nversion: 1\ncontextPath: /a\n", `module name "Hello" is not valid`},
		{"name: a\ncontextPath: /a\n", "version is missing"},
		{"name: a\nversion: 1/2\ncontextPath: /a\n", `version "1/2" is not valid`},
		{"name: a\nversion: 1\n", "contextPath is missing"},
		{"name: a\nversion: 1\ncontextPath: a\n", `contextPath "a" is not valid`},
		{"name: a\nversion: 1\ncontextPath: /a/\n", `contextPath "/a/" is not valid`},
		{"name: a\nversion: 1\ncontextPath: /a\nruntime: jvm\n", `runtime "jvm" is not known`},
		{"name: a\nversion: 1\ncontextPath: /a\nlimits: {memoryMB: 99999}\n", "limits.memoryMB 99999 is out of range"},
		{"name: a\nversion: 1\ncontextPath: /a\ncontext_path: /b\n", "field context_path not found"},
		{"name: a\nversion: 1\ncontextPath: /a\nconfig: {\"1x\": y}\n", `config key "1x" is not valid`},
		{"name: [\n", "manifest: yaml"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want it to say %q", tc.yaml, err, tc.want)
		}
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	_, err := Parse([]byte("name: A\nversion: /\ncontextPath: x\n"))
	for _, want := range []string{"name", "version", "contextPath"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
