package controller_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kouple/kouple/test/kube"
)

// TestScale measures the real kouple-controller binary: N bases join, an N-replica module Deployment (one
// per base) becomes Ready, and the controller's resident memory is read from /proc. Opt-in:
//
//	KOUPLE_SCALE_BASES=20 go test ./controller -run TestScale -v -timeout 30m
func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KOUPLE_SCALE_BASES"))
	if n <= 0 {
		t.Skip("set KOUPLE_SCALE_BASES=N to measure N bases")
	}
	cluster := kube.Start(t)
	kouple := buildKouple(t)
	dir := t.TempDir()
	v1 := writeArtifact(t, dir, "1.0.0")

	addr := freeAddr(t)
	cmd := startControllerBinary(t, nil, "--kubeconfig", cluster.Kubeconfig, "--listen", addr, "--log-level", "warn")
	t.Logf("controller RSS idle: %d MB", rssMB(t, cmd.Process.Pid))

	began := time.Now()
	var bases []*baseProc
	for i := range n {
		bases = append(bases, startBase(t, kouple, "http://"+addr, fmt.Sprintf("base-%d", i)))
	}
	t.Logf("%d bases started in %v", n, time.Since(began).Round(time.Millisecond))
	k := &kc{t: t, c: cluster, dir: dir}
	eventually(t, 300*time.Second, fmt.Sprintf("%d Ready vnodes", n), func() (bool, string) {
		ready := 0
		for _, nd := range k.nodes().Items {
			for _, c := range nd.Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					ready++
				}
			}
		}
		return ready == n, fmt.Sprintf("%d ready", ready)
	})
	t.Logf("%d vnodes Ready %v after the first base started; controller RSS %d MB", n, time.Since(began).Round(time.Millisecond), rssMB(t, cmd.Process.Pid))

	began = time.Now()
	k.apply(deployment("hello", n, v1, "1.0.0"))
	k.waitPodsFor("app=hello", n, "1.0.0", 300*time.Second)
	t.Logf("%d module pods Ready in %v after apply; controller RSS %d MB", n, time.Since(began).Round(time.Millisecond), rssMB(t, cmd.Process.Pid))
	// Where the time went: created -> handed to the provider (scheduling, binding, informer) -> installed.
	var toProvider, toInstalled time.Duration
	first, last := time.Time{}, time.Time{}
	for _, p := range k.pods("app=hello").Items {
		created := p.CreationTimestamp.Time
		if first.IsZero() || created.Before(first) {
			first = created
		}
		if created.After(last) {
			last = created
		}
		if p.Status.StartTime != nil {
			toProvider = max(toProvider, p.Status.StartTime.Sub(created))
			if r := p.Status.ContainerStatuses[0].State.Running; r != nil {
				toInstalled = max(toInstalled, r.StartedAt.Sub(p.Status.StartTime.Time))
			}
		}
	}
	t.Logf("pods created over %v; slowest created->provider %v, provider->installed %v (1 s resolution)", last.Sub(first), toProvider, toInstalled)
	waitGateways(t, bases, n, "Hello from hello 1.0.0!")

	began = time.Now()
	k.run("delete", "deployment/hello", "--wait=false")
	k.waitPodsFor("app=hello", 0, "", 300*time.Second)
	t.Logf("%d module pods gone in %v after delete", n, time.Since(began).Round(time.Millisecond))
}

func rssMB(t *testing.T, pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb / 1024
		}
	}
	return 0
}

// startControllerBinary builds and runs kouple-controller with args and env, stops it with SIGTERM at
// cleanup (failing the test if it does not stop), and waits until its --listen address answers /healthz.
func startControllerBinary(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	ctlBin := filepath.Join(t.TempDir(), "kouple-controller")
	if out, err := exec.Command("go", "build", "-o", ctlBin, "../cmd/kouple-controller").CombinedOutput(); err != nil {
		t.Fatalf("go build kouple-controller: %v\n%s", err, out)
	}
	addr := ""
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	out := &syncBuffer{}
	cmd := exec.Command(ctlBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Error("kouple-controller did not stop within 30 s of SIGTERM")
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("controller output:\n%s", out)
		}
	})
	eventually(t, 60*time.Second, "controller answering", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("kouple-controller exited at start:\n%s", out)
		default:
		}
		code, body := get("http://" + addr + "/healthz")
		return code == 200, body
	})
	return cmd
}
