package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kouple/kouple/controller"
	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/test/kube"
)

func TestMain(m *testing.M) { moduletest.Main(m) }

// TestKubernetes runs a real control plane, the controller in-process and three real `kouple base`
// processes, and drives real modules through Deployments and a DaemonSet.
func TestKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane")
	}
	cluster := kube.Start(t)
	kouple := buildKouple(t)
	dir := t.TempDir()
	v1 := writeArtifact(t, dir, "1.0.0")
	v2 := writeArtifact(t, dir, "2.0.0")
	bad := filepath.Join(dir, "bad.wasm")
	if err := os.WriteFile(bad, []byte("this is not a module"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The controller, in this process, on a loopback listener (no heartbeat token needed).
	cfg, err := clientcmd.BuildConfigFromFlags("", cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	client := kubernetes.NewForConfigOrDie(cfg)
	addr := freeAddr(t)
	stopController := startController(t, client, addr)
	t.Cleanup(func() { stopController() })
	ctlURL := "http://" + addr

	// base-0 listens on this machine's own address when it has one: Kubernetes refuses loopback addresses in
	// a Service's endpoints, so only a pod there can be reached through one (step 7a).
	hostIP := outboundIP()
	var bases []*baseProc
	for i := range 3 {
		if i == 0 && hostIP != "" {
			bases = append(bases, startBaseAt(t, kouple, ctlURL, "base-0", hostIP, "--insecure"))
			continue
		}
		bases = append(bases, startBase(t, kouple, ctlURL, fmt.Sprintf("base-%d", i)))
	}

	k := &kc{t: t, c: cluster, dir: dir}

	// 1. Three bases join as Ready vnodes with Koupleless's labels and taints.
	began := time.Now()
	eventually(t, 120*time.Second, "3 Ready vnodes", func() (bool, string) {
		nodes := k.nodes()
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == 3, fmt.Sprintf("%d nodes, %d ready", len(nodes.Items), ready)
	})
	t.Logf("3 vnodes Ready %v after the bases started", time.Since(began).Round(time.Millisecond))
	for _, n := range k.nodes().Items {
		if !strings.HasPrefix(n.Name, "vnode.") || !strings.HasSuffix(n.Name, ".dev") {
			t.Errorf("node name %s, want vnode.<identity>.dev", n.Name)
		}
		for l, want := range map[string]string{
			"base.koupleless.io/stack": "go", "base.koupleless.io/name": "kouple-base", "base.koupleless.io/version": "1.0.0",
			"base.koupleless.io/cluster-name": "default", "vnode.koupleless.io/name": "kouple-base", "vnode.koupleless.io/version": "1.0.0",
			"virtual-kubelet.koupleless.io/component": "vnode", "virtual-kubelet.koupleless.io/env": "dev", "kubernetes.io/hostname": n.Name,
		} {
			if got := n.Labels[l]; got != want {
				t.Errorf("node %s: label %s = %q, want %q", n.Name, l, got, want)
			}
		}
		var taints []string
		for _, tn := range n.Spec.Taints {
			taints = append(taints, fmt.Sprintf("%s=%s:%s", tn.Key, tn.Value, tn.Effect))
		}
		slices.Sort(taints)
		if want := []string{"schedule.koupleless.io/node-env=dev:NoExecute", "schedule.koupleless.io/virtual-node=True:NoExecute"}; !slices.Equal(taints, want) {
			t.Errorf("node %s: taints %v, want %v", n.Name, taints, want)
		}
	}
	eventually(t, 60*time.Second, "memory capacity from each base's health", func() (bool, string) {
		var desc []string
		ok := true
		for _, n := range k.nodes().Items {
			m, a := n.Status.Capacity.Memory(), n.Status.Allocatable.Memory()
			desc = append(desc, n.Name+" "+m.String())
			ok = ok && !m.IsZero() && m.Cmp(*a) == 0 && n.Status.Capacity.Pods().Value() == 65535
		}
		return ok, fmt.Sprint(desc)
	})

	// 2. A 3-replica module Deployment lands one per base and answers through each gateway.
	began = time.Now()
	k.apply(deployment("hello", 3, v1, "1.0.0"))
	k.waitPods("app=hello", 3, "1.0.0")
	t.Logf("3 module pods Ready %v after apply", time.Since(began).Round(time.Millisecond))
	waitGateways(t, bases, 3, "Hello from hello 1.0.0!")

	// 3. Scale to 2 and back.
	k.run("scale", "deployment/hello", "--replicas=2")
	k.waitPods("app=hello", 2, "1.0.0")
	waitGateways(t, bases, 2, "Hello from hello 1.0.0!")
	k.run("scale", "deployment/hello", "--replicas=3")
	k.waitPods("app=hello", 3, "1.0.0")
	waitGateways(t, bases, 3, "Hello from hello 1.0.0!")

	// 4. A bad artifact shows in the pod's status, with the install error.
	k.apply(deployment("broken", 1, "file://"+bad, "1.0.0"))
	eventually(t, 120*time.Second, "broken pod waiting with the install error", func() (bool, string) {
		pods := k.pods("app=broken")
		if len(pods.Items) != 1 || len(pods.Items[0].Status.ContainerStatuses) != 1 {
			return false, fmt.Sprintf("%d pods", len(pods.Items))
		}
		w := pods.Items[0].Status.ContainerStatuses[0].State.Waiting
		if w == nil {
			return false, "container not waiting"
		}
		return strings.HasPrefix(w.Reason, "InstallFailed") && strings.Contains(w.Message, "broken:1.0.0"), w.Reason + ": " + w.Message
	})
	k.run("delete", "deployment/broken", "--wait=false")
	k.waitPods("app=broken", 0, "")

	// 5. Roll to v2: every base ends with hello 2.0.0 only.
	k.apply(deployment("hello", 3, v2, "2.0.0"))
	k.waitPods("app=hello", 3, "2.0.0")
	waitGateways(t, bases, 3, "Hello from hello 2.0.0!")
	eventually(t, 60*time.Second, "hello 1.0.0 uninstalled everywhere", func() (bool, string) {
		var all []string
		for _, b := range bases {
			all = append(all, b.modules(t)...)
		}
		return !slices.Contains(all, "hello:1.0.0"), fmt.Sprint(all)
	})

	// 6. Roll back with kubectl rollout undo, and forward again.
	k.run("rollout", "undo", "deployment/hello")
	k.waitPods("app=hello", 3, "1.0.0")
	waitGateways(t, bases, 3, "Hello from hello 1.0.0!")

	// 7. Deleting the Deployment removes every module.
	k.run("delete", "deployment/hello", "--wait=false")
	k.waitPods("app=hello", 0, "")
	eventually(t, 60*time.Second, "no module left on any base", func() (bool, string) {
		var all []string
		for _, b := range bases {
			all = append(all, b.modules(t)...)
		}
		return len(all) == 0, fmt.Sprint(all)
	})

	// 7a. A Service reaches module pods: the pod IP is the base's and the container port its gateway's, so the
	// Service's EndpointSlice lists base-0's address and gateway port while its pod is Ready, and drops it when
	// the pod goes away. (There is no kube-proxy here: the endpoint itself is asked.)
	if hostIP == "" {
		t.Log("no non-loopback address on this machine: the Service step is left out")
	} else {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(bases[0].gateway, "http://"))
		node := ""
		for _, n := range k.nodes().Items {
			if n.Annotations["kouple.io/agent-url"] == bases[0].agent {
				node = n.Name
			}
		}
		k.apply(`apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: gateway}]
---
` + strings.Replace(deployment("web", 1, v1, "1.0.0"), "      nodeSelector:\n", fmt.Sprintf("      nodeSelector:\n        kubernetes.io/hostname: %s\n", node), 1) + fmt.Sprintf(`
        ports:
        - {name: gateway, containerPort: %s}
`, port))
		k.waitPods("app=web", 1, "1.0.0")
		want := net.JoinHostPort(hostIP, port)
		eventually(t, 60*time.Second, "the Service's endpoint "+want, func() (bool, string) {
			eps := k.endpoints("web")
			return slices.Equal(eps, []string{want}), fmt.Sprint(eps)
		})
		if code, body := get("http://" + want + "/hello/"); code != 200 || strings.TrimSpace(body) != "Hello from hello 1.0.0!" {
			t.Errorf("GET through the endpoint %s: %d %q", want, code, body)
		}
		k.run("scale", "deployment/web", "--replicas=0")
		k.waitPods("app=web", 0, "")
		eventually(t, 60*time.Second, "the Service's endpoint dropped", func() (bool, string) {
			eps := k.endpoints("web")
			return len(eps) == 0, fmt.Sprint(eps)
		})
		k.run("delete", "deployment/web", "service/web", "--wait=false")
	}

	// 7b. Env from a Secret and a ConfigMap becomes the module's config; while the ConfigMap is missing the pods
	// wait with the kubelet's CreateContainerConfigError, and they start once it exists. resources.limits.memory
	// becomes the module's memoryMB. A rollout with new env installs the new config.
	k.apply(deployment("hello", 3, v1, "1.0.0") + `
        - name: GREETING
          valueFrom: {secretKeyRef: {name: hello-secret, key: greeting}}
        envFrom:
        - configMapRef: {name: hello-config}
        resources:
          limits: {memory: 64Mi}
`)
	eventually(t, 60*time.Second, "pods waiting for their ConfigMap", func() (bool, string) {
		pods := k.pods("app=hello")
		var desc []string
		ok := len(pods.Items) == 3
		for _, p := range pods.Items {
			w := p.Status.ContainerStatuses
			if len(w) != 1 || w[0].State.Waiting == nil {
				return false, p.Name + " not waiting"
			}
			desc = append(desc, w[0].State.Waiting.Reason+": "+w[0].State.Waiting.Message)
			ok = ok && w[0].State.Waiting.Reason == "CreateContainerConfigError" && strings.Contains(w[0].State.Waiting.Message, `configmap "hello-config" not found`)
		}
		return ok, strings.Join(desc, "; ")
	})
	k.apply(`apiVersion: v1
kind: ConfigMap
metadata: {name: hello-config}
data: {GREETING: "Overridden", OTHER: "x"}
---
apiVersion: v1
kind: Secret
metadata: {name: hello-secret}
stringData: {greeting: "Psst"}
`)
	k.waitPods("app=hello", 3, "1.0.0")
	waitGateways(t, bases, 3, "Psst from hello 1.0.0!") // env wins over envFrom, as in a container
	for _, b := range bases {
		if mb := b.memoryMB(t, "hello"); mb != 64 {
			t.Errorf("base %s: hello's memoryMB %d, want 64 (the pod's limits.memory)", b.agent, mb)
		}
	}
	k.apply(deployment("hello", 3, v1, "1.0.0") + `
        - {name: GREETING, value: "Hey"}
`)
	waitGateways(t, bases, 3, "Hey from hello 1.0.0!")
	k.waitPods("app=hello", 3, "1.0.0")
	k.run("delete", "deployment/hello", "--wait=false")
	k.waitPods("app=hello", 0, "")

	// 8. A DaemonSet puts a module on every base.
	k.apply(daemonSet("hello-ds", v1, "1.0.0"))
	k.waitPods("app=hello-ds", 3, "1.0.0")
	waitGateways(t, bases, 3, "Hello from hello 1.0.0!")
	// 9. A restarted controller takes its vnodes and pods back as the bases heartbeat: modules stay, pods
	// stay Ready, and deleting still uninstalls.
	stopController()
	stopController = startController(t, client, addr)
	time.Sleep(5 * time.Second) // a few heartbeats (every 2 s) and module syncs
	k.waitPods("app=hello-ds", 3, "1.0.0")
	waitGateways(t, bases, 3, "Hello from hello 1.0.0!")

	k.run("delete", "daemonset/hello-ds", "--wait=false")
	k.waitPods("app=hello-ds", 0, "")
	eventually(t, 60*time.Second, "no module left after the DaemonSet", func() (bool, string) {
		var all []string
		for _, b := range bases {
			all = append(all, b.modules(t)...)
		}
		return len(all) == 0, fmt.Sprint(all)
	})

	// 10. A base that stops heartbeating is not Ready any more (after the 20 s heartbeat timeout).
	dead := bases[0]
	dead.cmd.Process.Signal(syscall.SIGKILL)
	<-dead.exited
	eventually(t, 120*time.Second, "the killed base's vnode NotReady", func() (bool, string) {
		var desc []string
		for _, n := range k.nodes().Items {
			if n.Annotations["kouple.io/agent-url"] != dead.agent {
				continue
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionFalse && c.Reason == "BaseHeartbeatMissing" {
						return true, ""
					}
					desc = append(desc, n.Name+" "+string(c.Status)+" "+c.Reason)
				}
			}
		}
		return false, fmt.Sprint(desc)
	})
}

// podTemplate is a module pod: Koupleless's label, tolerations for both vnode taints, a Go base, and at most
// one pod of the app per base.
func podTemplate(app, url, version string) string {
	return fmt.Sprintf(`
    metadata:
      labels:
        app: %[1]s
        virtual-kubelet.koupleless.io/component: module
    spec:
      nodeSelector:
        base.koupleless.io/stack: go
      tolerations:
      - {key: schedule.koupleless.io/virtual-node, operator: Equal, value: "True", effect: NoExecute}
      - {key: schedule.koupleless.io/node-env, operator: Equal, value: dev, effect: NoExecute}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: %[1]s}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: %[4]s
        image: %[2]s
        env:
        - {name: BIZ_VERSION, value: "%[3]s"}
`, app, url, version, moduleName(app))
}

func moduleName(app string) string {
	if app == "broken" || app == "greeter" {
		return app
	}
	return "hello"
}

func deployment(app string, replicas int, url, version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 0, maxUnavailable: 1}
  template:%[3]s`, app, replicas, podTemplate(app, url, version))
}

func daemonSet(app, url, version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %[1]s
spec:
  selector:
    matchLabels: {app: %[1]s}
  template:%[2]s`, app, podTemplate(app, url, version))
}

// kc runs kubectl against the test cluster.
type kc struct {
	t   *testing.T
	c   *kube.Cluster
	dir string
	n   int
}

func (k *kc) run(args ...string) string {
	k.t.Helper()
	return k.c.Kubectl(args...)
}

func (k *kc) apply(manifest string) {
	k.t.Helper()
	k.n++
	path := filepath.Join(k.dir, fmt.Sprintf("manifest-%d.yaml", k.n))
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		k.t.Fatal(err)
	}
	k.run("apply", "-f", path)
}

func (k *kc) nodes() corev1.NodeList {
	k.t.Helper()
	var l corev1.NodeList
	if err := json.Unmarshal([]byte(k.run("get", "nodes", "-l", "virtual-kubelet.koupleless.io/component=vnode", "-o", "json")), &l); err != nil {
		k.t.Fatal(err)
	}
	return l
}

func (k *kc) pods(selector string) corev1.PodList {
	k.t.Helper()
	var l corev1.PodList
	if err := json.Unmarshal([]byte(k.run("get", "pods", "-l", selector, "-o", "json")), &l); err != nil {
		k.t.Fatal(err)
	}
	return l
}

// waitPods waits until exactly n pods match selector, every one Ready, on distinct nodes, with the module at
// version, and with the base's IP.
func (k *kc) waitPods(selector string, n int, version string) {
	k.t.Helper()
	k.waitPodsFor(selector, n, version, 120*time.Second)
}

func (k *kc) waitPodsFor(selector string, n int, version string, timeout time.Duration) {
	k.t.Helper()
	eventually(k.t, timeout, fmt.Sprintf("%d Ready pods %s at %s", n, selector, version), func() (bool, string) {
		pods := k.pods(selector)
		nodes := map[string]bool{}
		var desc []string
		ok := len(pods.Items) == n
		for _, p := range pods.Items {
			ready := false
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			v := ""
			for _, e := range p.Spec.Containers[0].Env {
				if e.Name == "BIZ_VERSION" {
					v = e.Value
				}
			}
			desc = append(desc, fmt.Sprintf("%s@%s %s ready=%v ip=%s v=%s deleting=%v", p.Name, p.Spec.NodeName, p.Status.Phase, ready, p.Status.PodIP, v, p.DeletionTimestamp != nil))
			if !ready || v != version || nodes[p.Spec.NodeName] || p.Status.PodIP == "" || p.Status.PodIP != p.Status.HostIP || p.DeletionTimestamp != nil {
				ok = false
			}
			nodes[p.Spec.NodeName] = true
		}
		return ok, strings.Join(desc, "; ")
	})
}

// endpoints lists the ready address:port pairs of a Service's EndpointSlices.
func (k *kc) endpoints(service string) []string {
	k.t.Helper()
	var l struct {
		Items []struct {
			Endpoints []struct {
				Addresses  []string `json:"addresses"`
				Conditions struct {
					Ready *bool `json:"ready"`
				} `json:"conditions"`
			} `json:"endpoints"`
			Ports []struct {
				Port int `json:"port"`
			} `json:"ports"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(k.run("get", "endpointslices", "-l", "kubernetes.io/service-name="+service, "-o", "json")), &l); err != nil {
		k.t.Fatal(err)
	}
	var out []string
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				for _, p := range s.Ports {
					out = append(out, net.JoinHostPort(a, fmt.Sprint(p.Port)))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// outboundIP is the address this machine reaches others by, or "" when it has only loopback.
func outboundIP() string {
	c, err := net.Dial("udp", "192.0.2.1:9") // no packet is sent: UDP only picks a route
	if err != nil {
		return ""
	}
	defer c.Close()
	ip := c.LocalAddr().(*net.UDPAddr).IP
	if ip.IsLoopback() {
		return ""
	}
	return ip.String()
}

// waitGateways waits until exactly n bases answer want on /hello/ and the others 404.
func waitGateways(t *testing.T, bases []*baseProc, n int, want string) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%d gateways answering %q", n, want), func() (bool, string) {
		serving, other := 0, 0
		var desc []string
		for _, b := range bases {
			code, body := get(b.gateway + "/hello/")
			desc = append(desc, fmt.Sprintf("%d %q", code, strings.TrimSpace(body)))
			switch {
			case code == 200 && strings.TrimSpace(body) == want:
				serving++
			case code == 404:
			default:
				other++
			}
		}
		return serving == n && other == 0, strings.Join(desc, ", ")
	})
}

func get(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildKouple(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kouple-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kouple")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/kouple")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func writeArtifact(t *testing.T, dir, version string) string {
	t.Helper()
	path := filepath.Join(dir, "hello-"+version+".wasm")
	if err := os.WriteFile(path, moduletest.Build(t, "examples/hello", version), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

type baseProc struct {
	cmd     *exec.Cmd
	gateway string
	agent   string
	out     *syncBuffer
	exited  chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string { return freeAddrOn(t, "127.0.0.1") }

func freeAddrOn(t *testing.T, host string) string {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startBase starts `kouple base --controller` on free loopback ports and waits for its agent.
func startBase(t *testing.T, bin, ctlURL, name string, extra ...string) *baseProc {
	t.Helper()
	return startBaseAt(t, bin, ctlURL, name, "127.0.0.1", extra...)
}

// startBaseAt is startBase with the gateway and agent on host (whose address becomes the base's pod IP).
func startBaseAt(t *testing.T, bin, ctlURL, name, host string, extra ...string) *baseProc {
	t.Helper()
	httpAddr, agentAddr := freeAddrOn(t, host), freeAddrOn(t, host)
	p := &baseProc{gateway: "http://" + httpAddr, agent: "http://" + agentAddr, out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "base", "--http", httpAddr, "--agent", agentAddr, "--data-dir", filepath.Join(t.TempDir(), name),
		"--cache-dir", moduletest.CacheDir(), "--controller", ctlURL, "--heartbeat-interval", "2s")
	p.cmd.Args = append(p.cmd.Args, extra...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out)
		}
	})
	eventually(t, 60*time.Second, name+" agent answering", func() (bool, string) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited at start:\n%s", name, p.out)
		default:
		}
		resp, err := http.Get(p.gateway + "/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, ""
	})
	return p
}

// bizInfo is what the tests read of queryAllBiz.
type bizInfo struct {
	BizName    string `json:"bizName"`
	BizVersion string `json:"bizVersion"`
	Active     bool   `json:"active"`
	MemoryMB   int    `json:"memoryMB"`
}

// bizInfos lists every module version on the base.
func (p *baseProc) bizInfos(t testing.TB) []bizInfo {
	t.Helper()
	resp, err := http.Post(p.agent+"/queryAllBiz", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data []bizInfo `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	return env.Data
}

// modules lists name:version of every module on the base.
func (p *baseProc) modules(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, b := range p.bizInfos(t) {
		out = append(out, b.BizName+":"+b.BizVersion)
	}
	return out
}

// memoryMB is the memory limit the base applies to module name's active version.
func (p *baseProc) memoryMB(t testing.TB, name string) int {
	t.Helper()
	for _, b := range p.bizInfos(t) {
		if b.BizName == name && b.Active {
			return b.MemoryMB
		}
	}
	return 0
}

// startController runs a controller in this process with its heartbeat listener on addr (loopback: no
// token) and returns a function that stops it; calling that again does nothing.
func startController(t *testing.T, client kubernetes.Interface, addr string) (stop func()) {
	t.Helper()
	ctl, err := controller.New(controller.Config{
		Client: client, SyncInterval: 2 * time.Second, HeartbeatTimeout: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for range 50 { // the previous controller's listener may still be closing
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ctl.Handler("")}
	go srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- ctl.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			srv.Close()
			select {
			case err := <-runDone:
				if err != nil {
					t.Errorf("controller: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("controller did not stop within 30 s")
			}
		})
	}
}
