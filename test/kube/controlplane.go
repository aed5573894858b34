// Package kube runs a local Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) on 127.0.0.1 from binaries built
// by tools/k8s/k8s.sh. It drives them by exec and plain HTTPS only, so the
// root module never links client-go.
//
// There is no kubelet and no container runtime: pods are scheduled (bound to
// a node) but only run where a virtual kubelet serves the node. See
// docs/kubernetes-local.md.
package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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
	"sync"
	"syscall"
	"time"
)

// Ports are the TCP ports on 127.0.0.1 that one control plane listens on.
type Ports struct {
	APIServer         int `json:"apiserver"`
	Etcd              int `json:"etcd"`
	EtcdPeer          int `json:"etcdPeer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
}

func (p Ports) list() []namedPort {
	return []namedPort{
		{"kube-apiserver", p.APIServer}, {"etcd", p.Etcd}, {"etcd-peer", p.EtcdPeer},
		{"kube-controller-manager", p.ControllerManager}, {"kube-scheduler", p.Scheduler},
	}
}

type namedPort struct {
	Name string
	Port int
}

// PortBusyError reports that a port the control plane needs is already in use.
type PortBusyError struct {
	Name string // which listener needed it, e.g. "kube-apiserver"
	Port int
	Err  error
}

func (e *PortBusyError) Error() string {
	return fmt.Sprintf("port %d on 127.0.0.1 (for %s) is already in use: %v", e.Port, e.Name, e.Err)
}

func (e *PortBusyError) Unwrap() error { return e.Err }

// Options configure StartControlPlane.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler and kubectl (see BuildBinaries).
	BinDir string
	// StateDir receives certificates, etcd data, logs and kubeconfigs.
	StateDir string
	Ports    Ports
	// Detach starts the daemons in their own session so that they outlive
	// the calling process (make k8s-up). Otherwise they are killed when the
	// calling process dies, so a crashed test leaves nothing behind.
	Detach bool
	// ReadyTimeout bounds the wait for each component; default 2 minutes.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// ControlPlane is a running local control plane.
type ControlPlane struct {
	// Kubeconfig is the absolute path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	// KubectlPath is the absolute path of the kubectl built with the cluster.
	KubectlPath string
	// Server is the API server URL, https://127.0.0.1:<port>.
	Server   string
	StateDir string
	Ports    Ports

	opts     Options
	log      *slog.Logger
	caPool   *x509.CertPool
	token    string
	procs    []*process
	stopOnce sync.Once
	stopErr  error
}

// process is one daemon started by this process; its waiter goroutine reaps
// it, records the exit error and closes done.
type process struct {
	name, path, logPath string
	cmd                 *exec.Cmd
	done                chan struct{}
	err                 error // valid after done is closed
}

// stateFile is written to <StateDir>/state.json so that another process
// (make k8s-down) can stop the daemons.
type stateFile struct {
	Ports      Ports       `json:"ports"`
	Kubeconfig string      `json:"kubeconfig"`
	Kubectl    string      `json:"kubectl"`
	Processes  []procState `json:"processes"`
}

type procState struct {
	Name string `json:"name"`
	Path string `json:"path"` // argv[0]; checked before signalling a pid
	Pid  int    `json:"pid"`
	Log  string `json:"log"`
}

const stateFileName = "state.json"

// StartControlPlane generates certificates and kubeconfigs under opts.StateDir, starts
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler on
// 127.0.0.1 and returns once the API server is ready, the controller manager
// and scheduler are healthy and the default service account exists. On error
// every daemon it started is stopped again.
func StartControlPlane(ctx context.Context, opts Options) (*ControlPlane, error) {
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil || fi.IsDir() {
			return nil, fmt.Errorf("binary %s missing in %q; build them with tools/k8s/k8s.sh build: %w", b, opts.BinDir, err)
		}
	}
	state, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir %q: %w", opts.StateDir, err)
	}
	bin, err := filepath.Abs(opts.BinDir)
	if err != nil {
		return nil, fmt.Errorf("bin dir %q: %w", opts.BinDir, err)
	}
	if err := clearStaleState(state); err != nil {
		return nil, err
	}
	for _, np := range opts.Ports.list() {
		if err := portFree(np.Port); err != nil {
			return nil, &PortBusyError{Name: np.Name, Port: np.Port, Err: err}
		}
	}
	for _, d := range []string{state, filepath.Join(state, "logs"), filepath.Join(state, "etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create state dir: %w", err)
		}
	}
	pk, err := writePKI(filepath.Join(state, "pki"))
	if err != nil {
		return nil, fmt.Errorf("generate certificates: %w", err)
	}
	caPEM, err := os.ReadFile(pk.CACert)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	cp := &ControlPlane{
		Kubeconfig:  filepath.Join(state, "kubeconfig"),
		KubectlPath: filepath.Join(bin, "kubectl"),
		Server:      "https://127.0.0.1:" + strconv.Itoa(opts.Ports.APIServer),
		StateDir:    state,
		Ports:       opts.Ports,
		opts:        opts,
		log:         log,
		caPool:      pool,
		token:       randomToken(),
	}
	if err := cp.start(ctx, bin, pk); err != nil {
		stopErr := cp.Stop(context.WithoutCancel(ctx))
		return nil, errors.Join(err, stopErr)
	}
	return cp, nil
}

func (cp *ControlPlane) start(ctx context.Context, bin string, pk pki) error {
	state, p := cp.StateDir, cp.Ports
	kcmToken, schedToken := randomToken(), randomToken()
	tokenFile := filepath.Join(state, "pki", "tokens.csv")
	tokens := fmt.Sprintf("%s,kouple-admin,kouple-admin,system:masters\n"+
		"%s,system:kube-controller-manager,system:kube-controller-manager\n"+
		"%s,system:kube-scheduler,system:kube-scheduler\n", cp.token, kcmToken, schedToken)
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	kcmConfig := filepath.Join(state, "kube-controller-manager.kubeconfig")
	schedConfig := filepath.Join(state, "kube-scheduler.kubeconfig")
	for path, tok := range map[string]string{cp.Kubeconfig: cp.token, kcmConfig: kcmToken, schedConfig: schedToken} {
		if err := writeKubeconfig(path, cp.Server, pk.CACert, tok); err != nil {
			return err
		}
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(p.Etcd)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(p.EtcdPeer)
	if err := cp.spawn(ctx, bin, "etcd",
		"--name=default",
		"--data-dir="+filepath.Join(state, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--initial-cluster-state=new",
		// Throwaway data: skipping fsync keeps the API fast on slow disks.
		"--unsafe-no-fsync=true",
	); err != nil {
		return err
	}
	if err := cp.waitFor(ctx, "etcd", func(ctx context.Context) error {
		return cp.get(ctx, etcdURL+"/health", nil, false)
	}); err != nil {
		return err
	}

	if err := cp.spawn(ctx, bin, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// With a loopback advertise address v1.37 refuses to start unless
		// the "kubernetes" Endpoints reconciler is off; nothing in-cluster
		// dials the API server through that Service here.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(p.APIServer),
		"--cert-dir="+filepath.Join(state, "pki"),
		"--tls-cert-file="+pk.ServingCert,
		"--tls-private-key-file="+pk.ServingKey,
		"--client-ca-file="+pk.CACert,
		"--token-auth-file="+tokenFile,
		// Without a request-header CA the controller manager and scheduler
		// log an error every few seconds while reading the authentication
		// ConfigMap. No front proxy exists; only a client certificate named
		// front-proxy-client (which nothing here issues) could use it.
		"--requestheader-client-ca-file="+pk.CACert,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range="+serviceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pk.SAPub,
		"--service-account-signing-key-file="+pk.SAKey,
		"--allow-privileged=true",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := cp.waitFor(ctx, "kube-apiserver", func(ctx context.Context) error {
		return cp.get(ctx, cp.Server+"/readyz", cp.caPool, false)
	}); err != nil {
		return err
	}

	if err := cp.spawn(ctx, bin, "kube-controller-manager",
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig,
		"--authorization-kubeconfig="+kcmConfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(p.ControllerManager),
		"--leader-elect=false",
		// Each controller runs under its own service account, as in kubeadm
		// clusters, so RBAC behaves like a real cluster.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+pk.SAKey,
		"--root-ca-file="+pk.CACert,
		"--cluster-signing-cert-file="+pk.CACert,
		"--cluster-signing-key-file="+pk.CAKey,
		"--service-cluster-ip-range="+serviceCIDR,
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := cp.spawn(ctx, bin, "kube-scheduler",
		"--kubeconfig="+schedConfig,
		"--authentication-kubeconfig="+schedConfig,
		"--authorization-kubeconfig="+schedConfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(p.Scheduler),
		"--leader-elect=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	// Their serving certificates are self-signed in memory; only /healthz
	// is read, on loopback, so the certificate is not verified.
	for _, c := range []namedPort{{"kube-controller-manager", p.ControllerManager}, {"kube-scheduler", p.Scheduler}} {
		url := "https://127.0.0.1:" + strconv.Itoa(c.Port) + "/healthz"
		if err := cp.waitFor(ctx, c.Name, func(ctx context.Context) error {
			return cp.get(ctx, url, nil, true)
		}); err != nil {
			return err
		}
	}
	// Pods are rejected until the service account controller has created
	// the default service account, so wait for it before saying "ready".
	if err := cp.waitFor(ctx, "default service account", func(ctx context.Context) error {
		return cp.get(ctx, cp.Server+"/api/v1/namespaces/default/serviceaccounts/default", cp.caPool, false)
	}); err != nil {
		return err
	}
	return nil
}

// spawn starts one daemon logging to <state>/logs/<name>.log and records it
// in the state file before waiting for anything.
func (cp *ControlPlane) spawn(ctx context.Context, bin, name string, args ...string) error {
	logPath := filepath.Join(cp.StateDir, "logs", name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log for %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	path := filepath.Join(bin, name)
	// Not exec.CommandContext: the daemon's life is bounded by Stop, not by ctx.
	cmd := exec.Command(path, args...)
	cmd.Dir = cp.StateDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cp.opts.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	pr := &process{name: name, path: path, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { // owned by pr: ends when the daemon exits, which Stop ensures
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	cp.procs = append(cp.procs, pr)
	cp.log.InfoContext(ctx, "started", "component", name, "pid", cmd.Process.Pid, "log", logPath)
	return cp.writeState()
}

func (cp *ControlPlane) writeState() error {
	st := stateFile{Ports: cp.Ports, Kubeconfig: cp.Kubeconfig, Kubectl: cp.KubectlPath}
	for _, pr := range cp.procs {
		st.Processes = append(st.Processes, procState{Name: pr.name, Path: pr.path, Pid: pr.cmd.Process.Pid, Log: pr.logPath})
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := filepath.Join(cp.StateDir, stateFileName+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(cp.StateDir, stateFileName)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// waitFor polls check until it succeeds, a daemon exits or the timeout passes.
func (cp *ControlPlane) waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, cp.opts.ReadyTimeout)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, pr := range cp.procs {
			select {
			case <-pr.done:
				logTail := tail(pr.logPath, 30)
				err := fmt.Errorf("%s exited (%v) while waiting for %s; last lines of %s:\n%s",
					pr.name, pr.err, what, pr.logPath, logTail)
				if strings.Contains(logTail, "address already in use") {
					// Another process took a port between our check and the bind.
					for _, np := range cp.Ports.list() {
						if np.Name == pr.name {
							return &PortBusyError{Name: np.Name, Port: np.Port, Err: err}
						}
					}
				}
				return err
			default:
			}
		}
		err := check(ctx)
		if err == nil {
			cp.log.InfoContext(ctx, "ready", "component", what, "after", time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last error: %v); look at the logs in %s",
				what, time.Since(start).Round(time.Second), err, filepath.Join(cp.StateDir, "logs"))
		case <-tick.C:
		}
	}
}

// get does one GET and wants 200. With pool it verifies the server against
// the cluster CA and sends the admin token; insecure skips verification.
func (cp *ControlPlane) get(ctx context.Context, url string, pool *x509.CertPool, insecure bool) error {
	tr := &http.Transport{
		DisableKeepAlives: true,                                                     // no idle connections (or their goroutines) outlive the call
		TLSClientConfig:   &tls.Config{RootCAs: pool, InsecureSkipVerify: insecure}, //nolint:gosec // loopback health probe only
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if pool != nil {
		req.Header.Set("Authorization", "Bearer "+cp.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Kubectl runs the cluster's kubectl against it and returns stdout; the
// error carries stderr.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, cp.KubectlPath, append([]string{"--kubeconfig=" + cp.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Pids returns the process id of each daemon by name.
func (cp *ControlPlane) Pids() map[string]int {
	m := make(map[string]int, len(cp.procs))
	for _, pr := range cp.procs {
		m[pr.name] = pr.cmd.Process.Pid
	}
	return m
}

// Logs returns the last n lines of every daemon's log, for failure reports.
func (cp *ControlPlane) Logs(n int) string {
	var b strings.Builder
	for _, pr := range cp.procs {
		fmt.Fprintf(&b, "==> %s <==\n%s\n", pr.logPath, tail(pr.logPath, n))
	}
	return b.String()
}

// Stop terminates the daemons (SIGTERM, then SIGKILL after 20 s) in reverse
// start order, waits until each has exited and checks that every port is
// free again. It keeps the state dir. It is safe to call more than once.
func (cp *ControlPlane) Stop(ctx context.Context) error {
	cp.stopOnce.Do(func() {
		var errs []error
		for i := len(cp.procs) - 1; i >= 0; i-- {
			pr := cp.procs[i]
			if err := terminate(ctx, pr.name, pr.cmd.Process.Pid, func() bool {
				select {
				case <-pr.done:
					return true
				default:
					return false
				}
			}); err != nil {
				errs = append(errs, err)
			} else {
				cp.log.InfoContext(ctx, "stopped", "component", pr.name)
			}
		}
		if err := waitPortsFree(ctx, cp.Ports); err != nil {
			errs = append(errs, err)
		}
		cp.stopErr = errors.Join(errs...)
	})
	return cp.stopErr
}

// StopStateDir stops the daemons recorded in <stateDir>/state.json by a
// process that has since exited (make k8s-up), checks that they are gone
// and their ports free, then removes stateDir. A missing state dir is not
// an error.
func StopStateDir(ctx context.Context, stateDir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := readState(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.RemoveAll(stateDir); err != nil {
			return fmt.Errorf("remove %s: %w", stateDir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w; remove %s by hand once no etcd or kube-* process from it is left", err, stateDir)
	}
	var errs []error
	for i := len(st.Processes) - 1; i >= 0; i-- {
		ps := st.Processes[i]
		if !ours(ps) {
			continue // already gone, or the pid now belongs to something else
		}
		if err := terminate(ctx, ps.Name, ps.Pid, func() bool { return !ours(ps) }); err != nil {
			errs = append(errs, err)
			continue
		}
		log.InfoContext(ctx, "stopped", "component", ps.Name, "pid", ps.Pid)
	}
	if err := waitPortsFree(ctx, st.Ports); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("state kept in %s: %w", stateDir, errors.Join(errs...))
	}
	if err := os.RemoveAll(stateDir); err != nil {
		return fmt.Errorf("remove %s: %w", stateDir, err)
	}
	return nil
}

func readState(stateDir string) (stateFile, error) {
	var st stateFile
	data, err := os.ReadFile(filepath.Join(stateDir, stateFileName))
	if err != nil {
		return st, fmt.Errorf("read control plane state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("parse %s: %w", filepath.Join(stateDir, stateFileName), err)
	}
	return st, nil
}

// clearStaleState refuses to reuse a state dir whose daemons still run and
// otherwise removes what a previous, dead control plane left there.
func clearStaleState(stateDir string) error {
	st, err := readState(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		for _, ps := range st.Processes {
			if ours(ps) {
				return fmt.Errorf("a control plane from %s is still running (%s pid %d); stop it first (make k8s-down)",
					stateDir, ps.Name, ps.Pid)
			}
		}
	}
	if err := os.RemoveAll(stateDir); err != nil {
		return fmt.Errorf("remove stale state %s: %w", stateDir, err)
	}
	return nil
}

// ours reports whether pid is still alive (not a zombie) and still runs the
// recorded binary, so that a recycled pid is never signalled.
func ours(ps procState) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(ps.Pid) + "/cmdline")
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	if string(argv0) != ps.Path {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(ps.Pid) + "/stat")
	if err != nil {
		return false
	}
	// Field 3 (after "(comm)") is the state; Z is a zombie, X dead.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		if s := stat[i+2]; s == 'Z' || s == 'X' {
			return false
		}
	}
	return true
}

// terminate sends SIGTERM, waits up to 20 s for exited() and then SIGKILLs
// and waits up to 10 s more.
func terminate(ctx context.Context, name string, pid int, exited func() bool) error {
	wait := func(d time.Duration) bool {
		deadline := time.Now().Add(d)
		for !exited() {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
		return true
	}
	if exited() {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", name, pid, err)
	}
	if wait(20 * time.Second) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
	}
	if wait(10 * time.Second) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) still runs after SIGKILL; kill it by hand", name, pid)
}

// waitPortsFree checks, for up to 10 s, that every port can be bound again.
func waitPortsFree(ctx context.Context, ports Ports) error {
	var errs []error
	for _, np := range ports.list() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := portFree(np.Port)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				errs = append(errs, fmt.Errorf("after stopping, port %d (%s) is still in use: %w", np.Port, np.Name, err))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// portFree binds the port on 127.0.0.1 and releases it at once.
func portFree(port int) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("invalid port %d", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeKubeconfig(path, server, caFile, token string) error {
	// JSON is valid YAML, and kubectl reads either.
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"current-context": "kouple-local",
		"clusters": []any{map[string]any{"name": "kouple-local", "cluster": map[string]any{
			"server": server, "certificate-authority": caFile}}},
		"users": []any{map[string]any{"name": "kouple-local", "user": map[string]any{"token": token}}},
		"contexts": []any{map[string]any{"name": "kouple-local", "context": map[string]any{
			"cluster": "kouple-local", "user": "kouple-local"}}},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
