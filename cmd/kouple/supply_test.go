package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/kouple/kouple/artifact"
)

// TestSupplyChain: each refusal with a real base (unsigned under the policy, signed by an untrusted key, a
// signature that no longer matches, a path-traversing name), and an install from an OCI registry pinned by
// digest.
func TestSupplyChain(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		out, err := execKouple(t, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kouple %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("keygen", filepath.Join(dir, "team"))
	run("keygen", filepath.Join(dir, "stranger"))
	hello := artifactFile(t, "examples/hello", "1.0.0")
	copyTo := func(name string) string {
		data, _ := os.ReadFile(hello)
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	signed, stranger, tampered := copyTo("signed.wasm"), copyTo("stranger.wasm"), copyTo("tampered.wasm")
	run("sign", "--key", filepath.Join(dir, "team.key"), signed)
	run("sign", "--key", filepath.Join(dir, "stranger.key"), stranger)
	run("sign", "--key", filepath.Join(dir, "team.key"), tampered)
	if out := run("verify", "--key", filepath.Join(dir, "team.pub"), signed); !strings.Contains(out, "good signature") {
		t.Errorf("verify: %s", out)
	}
	data, _ := os.ReadFile(tampered)
	os.WriteFile(tampered, []byte(strings.Replace(string(data), `"contextPath":"/hello"`, `"contextPath":"/hijak"`, 1)), 0o644)
	// A name that would traverse the data dir, in an otherwise valid module.
	info, _ := artifact.ReadWasm(data)
	bad := *info.Manifest
	bad.Name = "../../etc"
	evil, _ := artifact.EmbedManifest(data, &bad)
	evilPath := filepath.Join(dir, "evil.wasm")
	os.WriteFile(evilPath, evil, 0o644)

	b := startBase(t, t.TempDir()) // no policy: the name check alone
	if env := b.command("installBiz", fmt.Sprintf(`{"bizUrl":"file://%s"}`, evilPath)); env.Code != "FAILED" || !strings.Contains(env.Message, `module name "../../etc" is not valid`) {
		t.Errorf("name ../../etc: %s", env.raw)
	}
	b.kill()

	b = startBaseArgs(t, "--require-signature", "--trusted-key", filepath.Join(dir, "team.pub"))
	for _, tc := range []struct{ path, want string }{
		{hello, "refused by this base's signature policy: the artifact is not signed"},
		{stranger, "which this base does not trust"},
		{tampered, "does not match the artifact"},
	} {
		if env := b.command("installBiz", fmt.Sprintf(`{"bizUrl":"file://%s"}`, tc.path)); env.Code != "FAILED" || !strings.Contains(env.Message, tc.want) {
			t.Errorf("%s: %s\nwant %q", filepath.Base(tc.path), env.raw, tc.want)
		}
	}
	if code, _ := b.get("/hello/"); code != 404 {
		t.Errorf("a refused module serves: %d", code)
	}

	// Through an OCI registry, pinned by digest.
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	out := run("push", signed, host+"/team/hello:1.0.0")
	pinned := regexp.MustCompile(`oci://\S+@sha256:[0-9a-f]{64}`).FindString(out)
	if pinned == "" {
		t.Fatalf("push printed no pinned reference:\n%s", out)
	}
	if env := b.command("installBiz", fmt.Sprintf(`{"bizUrl":%q}`, pinned)); env.Code != "SUCCESS" {
		t.Fatalf("install %s: %s", pinned, env.raw)
	}
	if code, body := b.get("/hello/"); code != 200 || body != "Hello from hello 1.0.0!\n" {
		t.Errorf("hello from the registry: %d %q", code, body)
	}
}

// startBaseArgs starts a base on free ports with extra flags.
func startBaseArgs(t *testing.T, flags ...string) *baseProc {
	t.Helper()
	return startBaseWith(t, t.TempDir(), flags, nil)
}
