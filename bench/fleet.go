package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kouple/kouple/test/fleet"
)

// fleet: FleetPods module pods over FleetBases bases under one kouple-controller on a local control plane
// (test/fleet), timed from apply until every pod is Ready, with the controller's CPU and peak memory. The
// controller is a child process (kouple links no Kubernetes library); the Kubernetes binaries must have been
// built (make k8s-up or make k8s-build): building them takes minutes, so the bench does not.
func (r *runner) fleet(ctx context.Context, rt string) error {
	if rt != Runtimes[0] {
		return nil // the fleet's modules are tiny wasm ones whatever the runtime: one row is enough
	}
	bases, pods := r.sizes.FleetBases, r.sizes.FleetPods
	name := fmt.Sprintf("fleet, %d module pods over %d bases", pods, bases)
	notMeasured := func(why string) error {
		r.add(Row{Comparison: "fleet", Metric: "module pods Ready under one kouple-controller", Kouple: "not measured: " + why, Baseline: "-"})
		return nil
	}
	if pods == 0 {
		return notMeasured("no fleet in this suite")
	}
	k8s, err := k8sBinDir(ctx, r.cfg.Repo)
	if err != nil {
		return notMeasured(err.Error())
	}
	ctl := filepath.Join(r.tmp, "kouple-controller")
	build := exec.CommandContext(ctx, "go", "build", "-o", ctl, "./cmd/kouple-controller")
	build.Dir = r.cfg.Repo
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build kouple-controller: %v\n%s", err, out)
	}
	dir := filepath.Join(r.tmp, "fleet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	res, err := fleet.Run(ctx, fleet.Options{Bases: bases, Pods: pods, K8sBin: k8s, ControllerBin: ctl, Dir: dir, Log: r.cfg.Log})
	if err != nil {
		return err
	}
	row := Row{Comparison: name, Metric: "apply → every module pod Ready", Kouple: fmt.Sprintf("%.1f s", res.PodsReady.Seconds()),
		Baseline: "Koupleless ModuleController: not published"}
	if pods >= 500 && bases >= 20 {
		row.Target, row.Status = "≤ 60 s", metIf(res.PodsReady <= time.Minute)
	}
	r.add(row)
	r.add(Row{Comparison: name, Metric: "apply → last module pod created (kube-controller-manager)", Kouple: fmt.Sprintf("%.0f s", res.PodsCreated.Seconds()), Baseline: "-"})
	r.add(Row{Comparison: name, Metric: "controller CPU from apply to all Ready", Kouple: fmt.Sprintf("%.1f s", res.ControllerCPU.Seconds()), Baseline: "-"})
	r.add(Row{Comparison: name, Metric: "controller peak RSS", Kouple: mb(float64(res.PeakRSS)) + fmt.Sprintf(" (idle %s)", mb(float64(res.IdleRSS))), Baseline: "-"})
	r.add(Row{Comparison: name, Metric: "first base started → every vnode Ready", Kouple: fmt.Sprintf("%.1f s", res.VNodesReady.Seconds()), Baseline: "-"})
	return nil
}

// k8sBinDir is where tools/k8s/k8s.sh keeps the Kubernetes binaries, or why they are not there.
func k8sBinDir(ctx context.Context, repo string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(repo, "tools", "k8s", "k8s.sh"), "bindir").Output()
	if err != nil {
		return "", fmt.Errorf("tools/k8s/k8s.sh bindir: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("Kubernetes binaries not built (make k8s-build builds them into %s)", dir)
		}
	}
	return dir, nil
}
