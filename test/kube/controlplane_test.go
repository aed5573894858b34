package kube_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/test/kube"
)

// TestControlPlane starts a control plane, registers a Ready node by hand
// (nothing serves it: there is no kubelet), checks that a Deployment's pods
// are bound to that node, and that stopping leaves no process or port.
//
// The first run builds the binaries (~5 min on 2 cores):
//
//	go test ./test/kube/ -run TestControlPlane -timeout 25m -v
func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane (and may build it for minutes); run without -short")
	}
	start := time.Now()
	c := kube.Start(t)
	t.Logf("control plane ready in %s (includes the build if it was needed); KUBECONFIG=%s", time.Since(start).Round(time.Millisecond), c.Kubeconfig)

	version := c.Kubectl("version", "-o", "json")
	if n := strings.Count(version, `"gitVersion": "v1.37.2"`); n != 2 {
		t.Errorf("kubectl version does not report v1.37.2 for client and server:\n%s", version)
	}

	const node = "kouple-test-node"
	writeFile := func(name, content string) string {
		path := t.TempDir() + "/" + name
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	c.Kubectl("create", "-f", writeFile("node.json", fmt.Sprintf(`{
  "apiVersion": "v1", "kind": "Node",
  "metadata": {"name": %q, "labels": {"kouple.io/test-node": "true"}},
  "spec": {"taints": [{"key": "kouple.io/virtual", "value": "true", "effect": "NoSchedule"}]}
}`, node)))
	// A kubelet would report this; the scheduler only binds to Ready nodes
	// with allocatable resources.
	now := time.Now().UTC().Format(time.RFC3339)
	c.Kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p", fmt.Sprintf(`{"status": {
  "capacity":    {"cpu": "8", "memory": "16Gi", "pods": "110"},
  "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
  "conditions": [{"type": "Ready", "status": "True", "reason": "KoupleTest", "message": "hand-made node",
                  "lastHeartbeatTime": %q, "lastTransitionTime": %q}]
}}`, now, now))

	deployed := time.Now()
	c.Kubectl("create", "-f", writeFile("deploy.json", `{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "demo", "namespace": "default"},
  "spec": {
    "replicas": 3,
    "selector": {"matchLabels": {"app": "demo"}},
    "template": {
      "metadata": {"labels": {"app": "demo"}},
      "spec": {
        "nodeSelector": {"kouple.io/test-node": "true"},
        "tolerations": [{"key": "kouple.io/virtual", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
        "containers": [{"name": "demo", "image": "kouple.io/demo:none",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]
      }
    }
  }
}`))

	deadline := time.Now().Add(120 * time.Second)
	for {
		out, err := c.TryKubectl("get", "pods", "-n", "default", "-l", "app=demo",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}`)
		if err != nil {
			t.Fatalf("list pods: %v", err)
		}
		bound := 0
		lines := strings.Fields(out)
		for _, l := range lines {
			if strings.HasSuffix(l, "="+node) {
				bound++
			}
		}
		if len(lines) == 3 && bound == 3 {
			t.Logf("3 pods bound to %s %s after the Deployment was created", node, time.Since(deployed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods not all bound to %s after 120 s; pods (name=node):\n%s\nevents:\n%s",
				node, out, c.Kubectl("get", "events", "-n", "default"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	ports := c.Ports
	pids := c.Pids()
	if len(pids) != 4 {
		t.Errorf("want 4 daemons, got %v", pids)
	}
	c.Stop()
	for name, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("%s (pid %d) still exists after Stop", name, pid)
		}
	}
	for _, p := range []int{ports.APIServer, ports.Etcd, ports.EtcdPeer, ports.ControllerManager, ports.Scheduler} {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d still in use after Stop: %v", p, err)
			continue
		}
		l.Close()
	}
}
