package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Cluster is a control plane owned by a test: Start stops it in t.Cleanup.
type Cluster struct {
	*ControlPlane
	t testing.TB
}

// Start builds the binaries if needed (tools/k8s/k8s.sh build: about 5
// minutes the first time on 2 cores, so run such tests with -timeout 25m),
// starts a control plane on free loopback ports with its state in a
// temporary directory, and registers a cleanup that stops it and fails the
// test if a daemon or port is left behind. Several clusters may run in
// parallel.
func Start(t testing.TB) *Cluster {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := BuildBinaries(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var cp *ControlPlane
	for attempt := 1; ; attempt++ {
		ports, err := FreePorts()
		if err != nil {
			t.Fatal(err)
		}
		cp, err = StartControlPlane(ctx, Options{BinDir: bin, StateDir: filepath.Join(t.TempDir(), "k8s"), Ports: ports, Logger: log})
		var busy *PortBusyError
		if errors.As(err, &busy) && attempt < 3 {
			t.Logf("port race, retrying with other ports: %v", err)
			continue
		}
		if err != nil {
			t.Fatalf("start control plane: %v", err)
		}
		break
	}
	c := &Cluster{ControlPlane: cp, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", cp.Logs(40))
		}
		c.Stop()
	})
	return c
}

// Stop stops the control plane and fails the test if a daemon survives or a
// port stays in use. Safe to call more than once.
func (c *Cluster) Stop() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.ControlPlane.Stop(ctx); err != nil {
		c.t.Errorf("stop control plane: %v", err)
	}
}

// Kubectl runs kubectl against the cluster and fails the test on error.
func (c *Cluster) Kubectl(args ...string) string {
	c.t.Helper()
	out, err := c.TryKubectl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// TryKubectl runs kubectl against the cluster (60 s limit) and returns its
// stdout or an error carrying stderr.
func (c *Cluster) TryKubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.ControlPlane.Kubectl(ctx, args...)
}

// RepoRoot finds the Kouple repository root (holding tools/k8s/k8s.sh) from
// the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tools", "k8s", "k8s.sh")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no tools/k8s/k8s.sh above %s; run from inside the Kouple repository", dir)
		}
	}
}

// BuildBinaries runs tools/k8s/k8s.sh build, which builds the binaries into
// the cache once (serialised by a lock) and prints their directory.
func BuildBinaries(ctx context.Context, repoRoot string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "tools", "k8s", "k8s.sh"), "build")
	cmd.Dir = repoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		out := strings.TrimSpace(stderr.String() + stdout.String())
		if lines := strings.Split(out, "\n"); len(lines) > 60 {
			out = strings.Join(lines[len(lines)-60:], "\n")
		}
		return "", fmt.Errorf("build Kubernetes binaries with tools/k8s/k8s.sh build: %w\n%s", err, out)
	}
	fields := strings.Fields(stdout.String())
	if len(fields) == 0 {
		return "", fmt.Errorf("tools/k8s/k8s.sh build printed no bin directory; stderr:\n%s", stderr.String())
	}
	return fields[len(fields)-1], nil
}

// FreePorts asks the kernel for five distinct free ports on 127.0.0.1. They
// are released before use, so a race with another process is possible;
// Start in this package retries when that happens.
func FreePorts() (Ports, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports [5]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Ports{}, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return Ports{APIServer: ports[0], Etcd: ports[1], EtcdPeer: ports[2], ControllerManager: ports[3], Scheduler: ports[4]}, nil
}
