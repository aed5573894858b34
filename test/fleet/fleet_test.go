package fleet_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/test/fleet"
	"github.com/kouple/kouple/test/kube"
)

// TestTinyModule installs the hand-assembled module in a real base and asks it through the gateway 50 times
// (connection after connection; an answer before the request was read would fail some with 502).
func TestTinyModule(t *testing.T) {
	dir := t.TempDir()
	data, err := fleet.TinyModule("tiny", "1.0.0", "/tiny")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tiny.wasm")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := base.New(base.Config{HTTPAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown(context.Background()) })
	if _, err := b.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path, Activate: true}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		resp, err := http.Get(b.GatewayURL() + "/tiny/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok tiny\n" {
			t.Fatalf("answer %s %q, want 200 \"ok tiny\\n\"", resp.Status, body)
		}
	}
	t.Logf("tiny module: %d bytes", len(data))
}

// TestFleet measures the controller with KOUPLE_FLEET_PODS module pods over KOUPLE_FLEET_BASES bases (default
// 20). Opt-in:
//
//	KOUPLE_FLEET_PODS=500 KOUPLE_FLEET_BASES=20 go test ./test/fleet -run TestFleet -v -timeout 30m
func TestFleet(t *testing.T) {
	pods, _ := strconv.Atoi(os.Getenv("KOUPLE_FLEET_PODS"))
	if pods <= 0 {
		t.Skip("set KOUPLE_FLEET_PODS=N (and KOUPLE_FLEET_BASES, default 20) to measure a fleet")
	}
	bases := 20
	if n, err := strconv.Atoi(os.Getenv("KOUPLE_FLEET_BASES")); err == nil {
		bases = n
	}
	root, err := kube.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	k8s, err := kube.BuildBinaries(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	ctlBin := filepath.Join(t.TempDir(), "kouple-controller")
	if out, err := exec.Command("go", "build", "-o", ctlBin, filepath.Join(root, "cmd", "kouple-controller")).CombinedOutput(); err != nil {
		t.Fatalf("go build kouple-controller: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	res, err := fleet.Run(ctx, fleet.Options{Bases: bases, Pods: pods, K8sBin: k8s, ControllerBin: ctlBin, Dir: t.TempDir(), Log: t.Output()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d module pods over %d bases Ready in %v (the last created after %v; vnodes Ready in %v); controller CPU %v, peak RSS %d MB, idle %d MB",
		res.Pods, res.Bases, res.PodsReady.Round(time.Millisecond), res.PodsCreated, res.VNodesReady.Round(time.Millisecond), res.ControllerCPU, res.PeakRSS>>20, res.IdleRSS>>20)
}
