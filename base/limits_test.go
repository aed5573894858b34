package base_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/test/fleet"
)

// TestInstallMemoryLimit: an install's limits.memoryMB replaces the manifest's, is applied, survives a base
// restart, and one past what wasm32 can address is refused saying so.
func TestInstallMemoryLimit(t *testing.T) {
	data, err := fleet.TinyModule("tiny", "1.0.0", "/tiny") // its manifest says memoryMB 1
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny.wasm")
	os.WriteFile(path, data, 0o644)
	dataDir := t.TempDir()
	b := embedded(t, dataDir, base.Config{})
	memoryMB := func(b *base.Base) int {
		t.Helper()
		m := b.Registry().Module("tiny")
		if m == nil || m.Active() == nil {
			t.Fatal("tiny is not active")
		}
		return m.Active().Manifest.Limits.MemoryMB
	}
	if _, err := b.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path, Activate: true, Limits: &agent.InstallLimits{MemoryMB: 3}}); err != nil {
		t.Fatal(err)
	}
	if got := memoryMB(b); got != 3 {
		t.Errorf("memoryMB %d, want 3 (the install's)", got)
	}
	if code, body := get(t, b.GatewayURL()+"/tiny/"); code != 200 || body != "ok tiny\n" {
		t.Errorf("tiny answered %d %q", code, body)
	}
	b.Shutdown(context.Background())
	b = embedded(t, dataDir, base.Config{})
	if got := memoryMB(b); got != 3 {
		t.Errorf("after a restart memoryMB %d, want 3", got)
	}
	_, err = b.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path, Replace: true, Limits: &agent.InstallLimits{MemoryMB: 8192}})
	if err == nil || !strings.Contains(err.Error(), "limits.memoryMB 8192 is out of range") {
		t.Errorf("install with 8192 MB: %v", err)
	}
}
