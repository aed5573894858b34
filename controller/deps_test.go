package controller_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBaseLinksNoKubernetes keeps Kubernetes libraries out of kouple (and so out of every base): client-go
// alone costs an idle process ~17 MB of RSS.
func TestBaseLinksNoKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../cmd/kouple").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/") || strings.Contains(pkg, "virtual-kubelet") {
			t.Errorf("cmd/kouple links %s", pkg)
		}
	}
}
