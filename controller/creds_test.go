package controller_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/test/kube"
)

// TestCredentials runs the real kouple-controller with a heartbeat token ($KOUPLE_CONTROLLER_TOKEN) and the
// bases' agent token from a Secret (--base-token-secret): a base with the heartbeat token joins and gets its
// module installed through an agent that requires a credential; a base without it never joins.
func TestCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane")
	}
	cluster := kube.Start(t)
	kouple := buildKouple(t)
	dir := t.TempDir()
	v1 := writeArtifact(t, dir, "1.0.0")
	k := &kc{t: t, c: cluster, dir: dir}
	k.run("create", "secret", "generic", "kouple-tokens", "--from-literal=token=agent-token-0123456789abcdef")

	addr := freeAddr(t)
	startControllerBinary(t, []string{"KOUPLE_CONTROLLER_TOKEN=heartbeat-token-0123456789abcdef"},
		"--kubeconfig", cluster.Kubeconfig, "--listen", addr, "--base-token-secret", "default/kouple-tokens")

	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("admin agent-token-0123456789abcdef controller\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := startBase(t, kouple, "http://"+addr, "good", "--auth", "always", "--tokens", tokens, "--controller-token", "heartbeat-token-0123456789abcdef")
	bad := startBase(t, kouple, "http://"+addr, "bad", "--auth", "always", "--tokens", tokens)

	eventually(t, 120*time.Second, "the base with the heartbeat token joins", func() (bool, string) {
		return len(k.nodes().Items) == 1, k.run("get", "nodes")
	})
	time.Sleep(5 * time.Second) // a few more heartbeats of the base without a token
	if n := len(k.nodes().Items); n != 1 {
		t.Fatalf("%d vnodes: the base without the heartbeat token joined", n)
	}
	if !strings.Contains(bad.out.String(), "401") {
		t.Errorf("the base without a token does not say it was refused:\n%s", bad.out)
	}

	k.apply(deployment("hello", 1, v1, "1.0.0"))
	k.waitPods("app=hello", 1, "1.0.0")
	if code, body := get(good.gateway + "/hello/"); code != 200 || strings.TrimSpace(body) != "Hello from hello 1.0.0!" {
		t.Fatalf("gateway: %d %s", code, body)
	}
}
