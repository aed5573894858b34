// Command kouple-controller registers every Kouple base that heartbeats to it as a Kubernetes node (a
// virtual-kubelet provider, like Koupleless ModuleController v2) and turns module pods scheduled there into
// installs, upgrades and uninstalls on the bases.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kouple/kouple/controller"
)

type options struct {
	kubeconfig       string
	listen           string
	env              string
	qps              float32
	burst            int
	baseTokenSecret  string
	heartbeatTimeout time.Duration
	deadAfter        time.Duration
	syncInterval     time.Duration
	workers          int
	logLevel         string
	kubeletListen    string
	kubeletAddress   string
	kubeletCert      string
	kubeletKey       string
	kubeletClientCA  string
	identity         string
	leaseNamespace   string
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
}

func main() {
	var o options
	cmd := &cobra.Command{
		Use:   "kouple-controller",
		Short: "Schedule Kouple modules with Kubernetes: each base is a virtual node, each module pod an install",
		Long: `kouple-controller is a virtual-kubelet provider. Bases started with ` + "`kouple base --controller URL`" + ` heartbeat
to it (POST URL/heartbeat, Koupleless's BaseStatus) and each becomes a node vnode.<identity>.<env>. Pods labelled
virtual-kubelet.koupleless.io/component=module scheduled on such a node are installed on its base: one module
per container (name = module name, image = artifact URL, env BIZ_VERSION = version).`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default $KUBECONFIG; in-cluster config when empty)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:7777", "address bases send heartbeats to; beyond loopback a heartbeat token is required")
	f.StringVar(&o.env, "env", "dev", "environment of bases that do not name one")
	f.Float32Var(&o.qps, "kube-api-qps", 100, "queries per second to the API server (client-go's default 5 is too few for many pods)")
	f.IntVar(&o.burst, "kube-api-burst", 200, "burst of queries to the API server")
	f.StringVar(&o.baseTokenSecret, "base-token-secret", "", "NAMESPACE/NAME of a Secret whose key \"token\" the controller sends to bases' agents (none sent when empty)")
	f.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", 25*time.Second, "a vnode turns NotReady after its base has neither heartbeated nor answered for this long")
	f.DurationVar(&o.deadAfter, "base-dead-after", 60*time.Second, "once its base has been silent this long, a vnode's module pods (not DaemonSet pods) are deleted so that they are recreated on other bases; at least --heartbeat-timeout")
	f.DurationVar(&o.syncInterval, "sync-interval", 5*time.Second, "how often module states are read from each base")
	f.IntVar(&o.workers, "workers", 4, "pod workers per vnode")
	f.StringVar(&o.kubeletListen, "kubelet-listen", "", "serve the vnodes' kubelet API (`kubectl logs` of module pods) over TLS on this address, e.g. :10250; off when empty")
	f.StringVar(&o.kubeletAddress, "kubelet-address", "", "IP the API server reaches --kubelet-listen at (advertised as every vnode's address); default the host of --kubelet-listen")
	f.StringVar(&o.kubeletCert, "kubelet-cert", "", "PEM certificate of the kubelet API (with --kubelet-key); a self-signed one when empty")
	f.StringVar(&o.kubeletKey, "kubelet-key", "", "PEM key of --kubelet-cert")
	f.StringVar(&o.kubeletClientCA, "kubelet-client-ca", "", "PEM CA whose client certificates the kubelet API requires (the API server's --kubelet-client-certificate); any client when empty")
	f.StringVar(&o.identity, "id", "", "this controller's name in the vnodes' Leases (default <hostname>-<random>)")
	f.StringVar(&o.leaseNamespace, "lease-namespace", "kube-node-lease", "namespace of the Lease per vnode (kouple-owner.<vnode>) that says which controller drives it")
	f.DurationVar(&o.leaseDuration, "lease-duration", 20*time.Second, "a vnode whose controller stopped renewing its Lease this long is taken over by another controller")
	f.DurationVar(&o.renewDeadline, "lease-renew-deadline", 15*time.Second, "a controller that could not renew a vnode's Lease for this long stops driving it (less than --lease-duration)")
	f.DurationVar(&o.retryPeriod, "lease-retry-period", 5*time.Second, "how often Leases are renewed, and tried by the other controllers")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// virtual-kubelet's own logs, one level quieter: its info lines are per pod operation.
	vkLevel := max(level, slog.LevelWarn)
	vklog.L = vkslog.FromSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: vkLevel})).With("component", "virtual-kubelet"))

	if o.deadAfter < o.heartbeatTimeout {
		return fmt.Errorf("--base-dead-after %v is shorter than --heartbeat-timeout %v: a base must be unreachable before it is dead", o.deadAfter, o.heartbeatTimeout)
	}
	if o.renewDeadline >= o.leaseDuration || o.retryPeriod >= o.renewDeadline {
		return fmt.Errorf("want --lease-retry-period %v < --lease-renew-deadline %v < --lease-duration %v", o.retryPeriod, o.renewDeadline, o.leaseDuration)
	}
	heartbeatToken := os.Getenv("KOUPLE_CONTROLLER_TOKEN")
	if heartbeatToken == "" && !controller.LoopbackOnly(o.listen) {
		return fmt.Errorf("--listen %s reaches beyond loopback: set $KOUPLE_CONTROLLER_TOKEN, the token bases must send with their heartbeats (kouple base --controller-token)", o.listen)
	}

	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = o.qps, o.burst
	cfg.UserAgent = "kouple-controller"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	baseToken, err := readBaseToken(ctx, client, o.baseTokenSecret)
	if err != nil {
		return err
	}
	kubeletLn, kubeletIP, kubeletPort, err := listenKubelet(o)
	if err != nil {
		return err
	}

	ctl, err := controller.New(controller.Config{
		Client: client, Env: o.env, BaseToken: baseToken, HeartbeatTimeout: o.heartbeatTimeout,
		DeadAfter:    o.deadAfter,
		SyncInterval: o.syncInterval, KubeletIP: kubeletIP, KubeletPort: kubeletPort,
		Identity: o.identity, LeaseNamespace: o.leaseNamespace, LeaseDuration: o.leaseDuration,
		RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod, Workers: o.workers, Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	srv := &http.Server{Handler: ctl.Handler(heartbeatToken), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stdout, "kouple-controller: heartbeats to http://%s/heartbeat\n", ln.Addr())

	if kubeletLn != nil {
		ksrv := &http.Server{Handler: ctl.KubeletHandler(), ReadHeaderTimeout: 10 * time.Second}
		go ksrv.Serve(kubeletLn) // owned: closed below with the controller
		defer ksrv.Close()
		fmt.Fprintf(os.Stdout, "kouple-controller: kubelet API on https://%s (advertised as %s:%d)\n", kubeletLn.Addr(), kubeletIP, kubeletPort)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- ctl.Run(ctx) }()
	var result error
	select {
	case err := <-serveErr:
		result = fmt.Errorf("heartbeat listener: %w", err)
		cancel()
		<-runErr
	case err := <-runErr:
		result = err
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	if errors.Is(result, http.ErrServerClosed) {
		result = nil
	}
	return result
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// readBaseToken reads key "token" of the Secret NAMESPACE/NAME.
func readBaseToken(ctx context.Context, client kubernetes.Interface, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return "", fmt.Errorf("--base-token-secret %q: want NAMESPACE/NAME", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("--base-token-secret %s: %w", ref, err)
	}
	tok := strings.TrimSpace(string(s.Data["token"]))
	if tok == "" {
		return "", fmt.Errorf("--base-token-secret %s: the Secret has no key \"token\"", ref)
	}
	return tok, nil
}

// listenKubelet opens the TLS listener of the kubelet API, and says the IP and port vnodes advertise.
func listenKubelet(o options) (net.Listener, string, int, error) {
	if o.kubeletListen == "" {
		return nil, "", 0, nil
	}
	host, portStr, err := net.SplitHostPort(o.kubeletListen)
	if err != nil {
		return nil, "", 0, fmt.Errorf("--kubelet-listen %q: %w", o.kubeletListen, err)
	}
	ip := o.kubeletAddress
	if ip == "" {
		if p := net.ParseIP(host); p != nil && !p.IsUnspecified() {
			ip = host
		} else {
			return nil, "", 0, fmt.Errorf("--kubelet-listen %s names no IP: set --kubelet-address to the IP the API server reaches it at", o.kubeletListen)
		}
	}
	if net.ParseIP(ip) == nil {
		return nil, "", 0, fmt.Errorf("--kubelet-address %q is not an IP", ip)
	}
	var cert tls.Certificate
	if o.kubeletCert != "" {
		cert, err = tls.LoadX509KeyPair(o.kubeletCert, o.kubeletKey)
	} else {
		cert, err = controller.SelfSignedCert(ip)
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("kubelet API certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.kubeletClientCA != "" {
		pem, err := os.ReadFile(o.kubeletClientCA)
		if err != nil {
			return nil, "", 0, fmt.Errorf("--kubelet-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", 0, fmt.Errorf("--kubelet-client-ca %s holds no PEM certificate", o.kubeletClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	ln, err := net.Listen("tcp", o.kubeletListen)
	if err != nil {
		return nil, "", 0, fmt.Errorf("--kubelet-listen %s: %w", o.kubeletListen, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if portStr != "0" {
		port, _ = strconv.Atoi(portStr)
	}
	return tls.NewListener(ln, cfg), ip, port, nil
}
