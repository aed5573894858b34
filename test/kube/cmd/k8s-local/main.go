// Command k8s-local starts and stops the local control plane for
// make k8s-up / k8s-down (through tools/k8s/k8s.sh). It uses the same code
// as the Go test helper in package kube.
//
//	k8s-local up -bin DIR -state DIR [-apiserver-port 6443 ...]
//	k8s-local down -state DIR
//
// up returns once the control plane is ready, leaving the daemons running in
// the background with their logs under DIR/logs, and prints KUBECONFIG= and
// KUBECTL= lines on stdout. down stops them and removes DIR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kouple/kouple/test/kube"
)

// envForPort names the k8s.sh variable that sets each port, for error hints.
var envForPort = map[string]string{
	"kube-apiserver":          "K8S_APISERVER_PORT",
	"etcd":                    "K8S_ETCD_PORT",
	"etcd-peer":               "K8S_ETCD_PEER_PORT",
	"kube-controller-manager": "K8S_KCM_PORT",
	"kube-scheduler":          "K8S_SCHEDULER_PORT",
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k8s-local up|down [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = up(ctx, os.Args[2:], log)
	case "down":
		err = down(ctx, os.Args[2:], log)
	default:
		err = fmt.Errorf("unknown command %q; want up or down", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-local:", err)
		stop()
		os.Exit(1)
	}
}

func up(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	bin := fs.String("bin", "", "directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl")
	state := fs.String("state", ".k8s", "state directory (certificates, etcd data, logs, kubeconfig)")
	var p kube.Ports
	fs.IntVar(&p.APIServer, "apiserver-port", 6443, "kube-apiserver secure port")
	fs.IntVar(&p.Etcd, "etcd-port", 2379, "etcd client port")
	fs.IntVar(&p.EtcdPeer, "etcd-peer-port", 2380, "etcd peer port")
	fs.IntVar(&p.ControllerManager, "kcm-port", 10257, "kube-controller-manager secure port")
	fs.IntVar(&p.Scheduler, "scheduler-port", 10259, "kube-scheduler secure port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("-bin is required (tools/k8s/k8s.sh bindir prints it)")
	}
	cp, err := kube.StartControlPlane(ctx, kube.Options{BinDir: *bin, StateDir: *state, Ports: p, Detach: true, Logger: log})
	var busy *kube.PortBusyError
	if errors.As(err, &busy) {
		return fmt.Errorf("%w\nfree it (ss -ltnp 'sport = :%d' shows the owner) or pick another port with %s=<port>",
			err, busy.Port, envForPort[busy.Name])
	}
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	fmt.Printf("KUBECONFIG=%s\nKUBECTL=%s\n", cp.Kubeconfig, cp.KubectlPath)
	// The daemons run in their own session; this process exits and they are
	// re-parented. Their waiter goroutines end with this process.
	return nil
}

func down(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	state := fs.String("state", ".k8s", "state directory given to up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return kube.StopStateDir(ctx, *state, log)
}
