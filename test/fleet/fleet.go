// Package fleet measures kouple-controller at fleet size: a local control plane (test/kube), the real
// kouple-controller binary as a child process, N bases embedded in this process, and M module pods (DaemonSets
// of tiny modules, one per base each) timed from apply until every pod is Ready, with the controller's CPU
// time and peak memory read from /proc. It links no Kubernetes library (kubectl does the API work), so
// `kouple bench` can run it.
package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/test/kube"
)

// Options of a fleet run.
type Options struct {
	Bases int // bases (vnodes), all in this process
	Pods  int // module pods; a multiple of Bases (Pods/Bases DaemonSets)
	// K8sBin holds the Kubernetes binaries (tools/k8s/k8s.sh bindir); ControllerBin is kouple-controller.
	K8sBin, ControllerBin string
	Dir                   string // scratch space
	Log                   io.Writer
}

// Result of a fleet run.
type Result struct {
	Bases, Pods   int
	VNodesReady   time.Duration // first base started -> every vnode Ready
	PodsReady     time.Duration // apply -> every module pod Ready
	PodsCreated   time.Duration // apply -> the last module pod created (by the DaemonSet controller; 1 s resolution)
	ControllerCPU time.Duration // the controller's user+system CPU from apply to all Ready
	PeakRSS       int64         // the controller's peak resident memory (VmHWM), bytes
	IdleRSS       int64         // the controller's resident memory once it answered, before any base
}

// Run runs the fleet and stops everything it started before returning.
func Run(ctx context.Context, o Options) (res Result, err error) {
	if o.Bases <= 0 || o.Pods < o.Bases || o.Pods%o.Bases != 0 {
		return res, fmt.Errorf("fleet: %d pods over %d bases: pods must be a positive multiple of bases", o.Pods, o.Bases)
	}
	res.Bases, res.Pods = o.Bases, o.Pods
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "fleet: "+format+"\n", args...)
		}
	}
	cp, err := startControlPlane(ctx, o)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, cp.Stop(context.WithoutCancel(ctx))) }()
	k := &kubectl{cp: cp, dir: o.Dir}
	logf("control plane up")

	ctlAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	ctl := exec.CommandContext(ctx, o.ControllerBin, "--kubeconfig", cp.Kubeconfig, "--listen", ctlAddr, "--log-level", "warn")
	var ctlOut bytes.Buffer
	ctl.Stdout, ctl.Stderr = &ctlOut, &ctlOut
	ctl.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := ctl.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", o.ControllerBin, err)
	}
	exited := make(chan struct{})
	go func() { ctl.Wait(); close(exited) }() // owned: awaited below
	defer func() {
		ctl.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			ctl.Process.Kill()
			<-exited
		}
		if err != nil {
			err = fmt.Errorf("%w\ncontroller output:\n%s", err, tailLines(ctlOut.String(), 30))
		}
	}()
	if err := waitFor(ctx, time.Minute, "controller answering", func() (bool, string) {
		select {
		case <-exited:
			return false, "exited"
		default:
		}
		resp, err := http.Get("http://" + ctlAddr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	}); err != nil {
		return res, err
	}
	res.IdleRSS, _ = procStatus(ctl.Process.Pid, "VmRSS")

	began := time.Now()
	quiet := slog.New(slog.DiscardHandler)
	var bases []*base.Base
	defer func() {
		for _, b := range bases {
			b.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	for i := range o.Bases {
		b, err := base.New(base.Config{
			HTTPAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0",
			DataDir: filepath.Join(o.Dir, fmt.Sprintf("base-%d", i)), CacheDir: filepath.Join(o.Dir, "cache"),
			ControllerURL: "http://" + ctlAddr, HeartbeatInterval: 2 * time.Second, Logger: quiet,
		})
		if err != nil {
			return res, fmt.Errorf("base %d: %w", i, err)
		}
		if err := b.Start(ctx); err != nil {
			return res, fmt.Errorf("start base %d: %w", i, err)
		}
		bases = append(bases, b)
	}
	if err := waitFor(ctx, 5*time.Minute, fmt.Sprintf("%d Ready vnodes", o.Bases), func() (bool, string) {
		n, err := k.readyNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		return n == o.Bases, fmt.Sprintf("%d ready", n)
	}); err != nil {
		return res, err
	}
	res.VNodesReady = time.Since(began)
	logf("%d vnodes Ready in %v", o.Bases, res.VNodesReady.Round(time.Millisecond))

	perBase := o.Pods / o.Bases
	var manifests strings.Builder
	for i := range perBase {
		name := fmt.Sprintf("fleet-%d", i+1)
		data, err := TinyModule(name, "1.0.0", "/"+name)
		if err != nil {
			return res, err
		}
		path := filepath.Join(o.Dir, name+".wasm")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return res, err
		}
		fmt.Fprintf(&manifests, daemonSet, name, "file://"+path)
	}
	cpu0, err := procCPU(ctl.Process.Pid)
	if err != nil {
		return res, err
	}
	began = time.Now()
	if err := k.apply(ctx, manifests.String()); err != nil {
		return res, err
	}
	if err := waitFor(ctx, 10*time.Minute, fmt.Sprintf("%d Ready module pods", o.Pods), func() (bool, string) {
		n, err := k.readyPods(ctx)
		if err != nil {
			return false, err.Error()
		}
		return n == o.Pods, fmt.Sprintf("%d ready", n)
	}); err != nil {
		return res, err
	}
	res.PodsReady = time.Since(began)
	cpu1, err := procCPU(ctl.Process.Pid)
	if err != nil {
		return res, err
	}
	res.ControllerCPU = cpu1 - cpu0
	res.PeakRSS, _ = procStatus(ctl.Process.Pid, "VmHWM")
	if last, err := k.lastCreated(ctx); err == nil {
		res.PodsCreated = max(0, last.Sub(began.Truncate(time.Second)))
	}
	logf("%d module pods Ready in %v (the last created after %v); controller CPU %v, peak RSS %d MB", o.Pods,
		res.PodsReady.Round(time.Millisecond), res.PodsCreated, res.ControllerCPU, res.PeakRSS>>20)

	// Every module answers through its base's gateway (not timed).
	for _, b := range bases {
		for i := range perBase {
			name := fmt.Sprintf("fleet-%d", i+1)
			resp, err := http.Get(b.GatewayURL() + "/" + name + "/")
			if err != nil {
				return res, fmt.Errorf("%s on %s: %w", name, b.GatewayURL(), err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "ok " + name + "\n"; resp.StatusCode != 200 || string(body) != want {
				return res, fmt.Errorf("%s on %s answered %s %q, want %q", name, b.GatewayURL(), resp.Status, body, want)
			}
		}
	}
	return res, nil
}

// daemonSet is one tiny module on every base: name, artifact URL.
const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %[1]s}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata:
      labels: {app: %[1]s, virtual-kubelet.koupleless.io/component: module}
    spec:
      nodeSelector: {base.koupleless.io/stack: go}
      tolerations:
      - {key: schedule.koupleless.io/virtual-node, operator: Equal, value: "True", effect: NoExecute}
      - {key: schedule.koupleless.io/node-env, operator: Equal, value: dev, effect: NoExecute}
      containers:
      - name: %[1]s
        image: %[2]s
        env:
        - {name: BIZ_VERSION, value: "1.0.0"}
---
`

func startControlPlane(ctx context.Context, o Options) (*kube.ControlPlane, error) {
	for attempt := 1; ; attempt++ {
		ports, err := kube.FreePorts()
		if err != nil {
			return nil, err
		}
		cp, err := kube.StartControlPlane(ctx, kube.Options{BinDir: o.K8sBin, StateDir: filepath.Join(o.Dir, fmt.Sprintf("k8s-%d", attempt)), Ports: ports})
		var busy *kube.PortBusyError
		if errors.As(err, &busy) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("start control plane: %w", err)
		}
		return cp, nil
	}
}

type kubectl struct {
	cp  *kube.ControlPlane
	dir string
	n   int
}

func (k *kubectl) apply(ctx context.Context, manifest string) error {
	k.n++
	path := filepath.Join(k.dir, fmt.Sprintf("manifest-%d.yaml", k.n))
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		return err
	}
	_, err := k.cp.Kubectl(ctx, "apply", "-f", path)
	return err
}

// readyNodes counts vnodes whose Ready condition is True.
func (k *kubectl) readyNodes(ctx context.Context) (int, error) {
	return k.countTrue(ctx, "nodes", "virtual-kubelet.koupleless.io/component=vnode")
}

// readyPods counts module pods whose Ready condition is True.
func (k *kubectl) readyPods(ctx context.Context) (int, error) {
	return k.countTrue(ctx, "pods", "virtual-kubelet.koupleless.io/component=module")
}

// lastCreated is the creation time of the newest module pod.
func (k *kubectl) lastCreated(ctx context.Context) (time.Time, error) {
	out, err := k.cp.Kubectl(ctx, "get", "pods", "-l", "virtual-kubelet.koupleless.io/component=module", "-o", `jsonpath={range .items[*]}{.metadata.creationTimestamp}{"\n"}{end}`)
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, f := range strings.Fields(out) {
		if t, err := time.Parse(time.RFC3339, f); err == nil && t.After(last) {
			last = t
		}
	}
	return last, nil
}

func (k *kubectl) countTrue(ctx context.Context, kind, selector string) (int, error) {
	out, err := k.cp.Kubectl(ctx, "get", kind, "-l", selector, "-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "True"), nil
}

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v; last: %s", what, timeout, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// procCPU is a process's user and system CPU time from /proc/<pid>/stat (clock ticks of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) start at state; utime and stime are the 14th and 15th.
	rest := string(raw[bytes.LastIndexByte(raw, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
