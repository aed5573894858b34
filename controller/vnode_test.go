package controller

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

// fakeAgent answers Arklet commands like a base: installs of URLs containing "bad" fail.
type fakeAgent struct {
	mu       sync.Mutex
	mods     map[string]string // name:version -> state
	commands []string
	auth     []string
}

func (a *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req InstallRequest
	json.Unmarshal(body, &req)
	a.mu.Lock()
	defer a.mu.Unlock()
	cmd := strings.TrimPrefix(r.URL.Path, "/")
	a.commands = append(a.commands, cmd+" "+req.BizName+":"+req.BizVersion)
	a.auth = append(a.auth, r.Header.Get("Authorization"))
	reply := func(code string, data any) { json.NewEncoder(w).Encode(map[string]any{"code": code, "data": data}) }
	switch cmd {
	case "installBiz":
		if strings.Contains(req.BizURL, "bad") {
			reply("FAILED", map[string]string{"code": "FAILED", "message": "not a wasm module"})
			return
		}
		if _, ok := a.mods[req.BizName+":"+req.BizVersion]; ok && !strings.Contains(string(body), `"replace":true`) {
			reply("FAILED", map[string]string{"code": "REPEAT_BIZ", "message": "already installed"})
			return
		}
		a.mods[req.BizName+":"+req.BizVersion] = "ACTIVATED"
		reply("SUCCESS", map[string]string{"code": "SUCCESS"})
	case "uninstallBiz":
		delete(a.mods, req.BizName+":"+req.BizVersion)
		reply("SUCCESS", map[string]string{"code": "SUCCESS"})
	case "queryAllBiz":
		var out []BizInfo
		for id, st := range a.mods {
			n, v, _ := strings.Cut(id, ":")
			out = append(out, BizInfo{BizName: n, BizVersion: v, BizState: st})
		}
		reply("SUCCESS", out)
	case "health":
		reply("SUCCESS", map[string]any{"healthData": map[string]any{"jvm": map[string]any{"java max metaspace": 1 << 30}}})
	default:
		reply("CMD_NOT_FOUND", nil)
	}
}

func testVNode(t *testing.T) (*vnode, *fakeAgent, *record.FakeRecorder, chan *corev1.Pod) {
	agent := &fakeAgent{mods: map[string]string{}}
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	rec := record.NewFakeRecorder(100)
	ctl := &Controller{
		cfg: Config{Env: "dev", BaseToken: "s3cret", HeartbeatTimeout: time.Minute, SyncInterval: time.Second},
		log: slog.New(slog.NewTextHandler(t.Output(), nil)), http: srv.Client(), recorder: rec,
		// An informer that is never started: the vnode's pods are the ones the tests hand it.
		pods: informers.NewSharedInformerFactory(fake.NewClientset(), 0).Core().V1().Pods(),
	}
	st := BaseStatus{BaseMetadata: BaseMetadata{Identity: "abc", Name: "kouple-base", Version: "1.0.0", ClusterName: "default"},
		LocalIP: "127.0.0.1", AgentURL: srv.URL, Env: "dev"}
	v := newVNode(ctl, NodeName("abc", "dev"), st)
	pods := make(chan *corev1.Pod, 100)
	v.NotifyPods(context.Background(), func(p *corev1.Pod) { pods <- p })
	return v, agent, rec, pods
}

func modulePod(name, module, url, version string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{LabelComponent: ComponentModule}},
		Spec: corev1.PodSpec{NodeName: "vnode.abc.dev", Containers: []corev1.Container{{
			Name: module, Image: url, Env: []corev1.EnvVar{{Name: EnvBizVersion, Value: version}, {Name: "GREETING", Value: "hi"}},
		}}},
	}
}

func waiting(p *corev1.Pod) *corev1.ContainerStateWaiting {
	return p.Status.ContainerStatuses[0].State.Waiting
}

func TestVNodePodLifecycle(t *testing.T) {
	v, agent, rec, _ := testVNode(t)
	ctx := context.Background()

	// Create installs and the pod turns Running/Ready with the base's IP.
	p1 := modulePod("a", "hello", "file:///hello-1.wasm", "1.0.0")
	if err := v.CreatePod(ctx, p1); err != nil {
		t.Fatal(err)
	}
	got, _ := v.GetPod(ctx, "default", "a")
	if got.Status.Phase != corev1.PodRunning || !got.Status.ContainerStatuses[0].Ready || got.Status.PodIP != "127.0.0.1" {
		t.Fatalf("pod a: %+v", got.Status)
	}
	if agent.mods["hello:1.0.0"] != "ACTIVATED" || agent.auth[0] != "Bearer s3cret" {
		t.Fatalf("agent: %v, auth %v", agent.mods, agent.auth)
	}

	// A second pod for the same module version on this base is refused, not installed twice.
	if err := v.CreatePod(ctx, modulePod("b", "hello", "file:///hello-1.wasm", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	got, _ = v.GetPod(ctx, "default", "b")
	if w := waiting(got); w == nil || w.Reason != "DuplicateModule" || !strings.Contains(w.Message, "default/a") {
		t.Fatalf("pod b: %+v", got.Status.ContainerStatuses)
	}
	if n := strings.Count(strings.Join(agent.commands, ","), "installBiz"); n != 1 {
		t.Fatalf("%d installs: %v", n, agent.commands)
	}
	// Deleting the refused pod leaves pod a's module alone.
	if err := v.DeletePod(ctx, modulePod("b", "hello", "file:///hello-1.wasm", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	if agent.mods["hello:1.0.0"] != "ACTIVATED" {
		t.Fatal("deleting the refused pod uninstalled the other pod's module")
	}

	// A bad artifact: Waiting with the install error, and an event.
	if err := v.CreatePod(ctx, modulePod("c", "broken", "file:///bad.wasm", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	got, _ = v.GetPod(ctx, "default", "c")
	if w := waiting(got); w == nil || w.Reason != "InstallFailed" || !strings.Contains(w.Message, "not a wasm module") {
		t.Fatalf("pod c: %+v", got.Status.ContainerStatuses)
	}
	events := strings.Join(drain(rec.Events), "\n")
	if !strings.Contains(events, "DuplicateModule") || !strings.Contains(events, "not a wasm module") {
		t.Fatalf("events: %s", events)
	}

	// Upgrade: a new image and version installs 2.0.0 and uninstalls 1.0.0.
	if err := v.UpdatePod(ctx, modulePod("a", "hello", "file:///hello-2.wasm", "2.0.0")); err != nil {
		t.Fatal(err)
	}
	if _, ok := agent.mods["hello:1.0.0"]; ok || agent.mods["hello:2.0.0"] != "ACTIVATED" {
		t.Fatalf("after upgrade: %v", agent.mods)
	}

	// The base losing the module (restarted empty) gets it back from the pod, which stays as it is.
	delete(agent.mods, "hello:2.0.0")
	installs := strings.Count(strings.Join(agent.commands, ","), "installBiz hello:2.0.0")
	v.syncModules(ctx)
	got, _ = v.GetPod(ctx, "default", "a")
	if agent.mods["hello:2.0.0"] != "ACTIVATED" || got.Status.Phase != corev1.PodRunning {
		t.Fatalf("pod a after the module vanished: %v %+v", agent.mods, got.Status.ContainerStatuses)
	}
	if n := strings.Count(strings.Join(agent.commands, ","), "installBiz hello:2.0.0"); n != installs+1 {
		t.Fatalf("%d installs of hello:2.0.0 after it vanished, want %d: %v", n, installs+1, agent.commands)
	}
	agent.mods["hello:2.0.0"] = "DEACTIVATED"
	v.syncModules(ctx)
	got, _ = v.GetPod(ctx, "default", "a")
	if w := waiting(got); w == nil || w.Reason != "ModuleDeactivated" || got.Status.Phase != corev1.PodPending {
		t.Fatalf("pod a deactivated: %+v", got.Status)
	}

	// Delete uninstalls and reports Terminated.
	if err := v.DeletePod(ctx, modulePod("a", "hello", "file:///hello-2.wasm", "2.0.0")); err != nil {
		t.Fatal(err)
	}
	if len(agent.mods) != 0 {
		t.Fatalf("after delete: %v", agent.mods)
	}
	if p, _ := v.GetPod(ctx, "default", "a"); p != nil {
		t.Fatal("deleted pod still known")
	}
}

func TestVNodeNode(t *testing.T) {
	v, _, _, _ := testVNode(t)
	if !v.refreshCapacity(context.Background()) {
		t.Fatal("capacity not read")
	}
	v.mu.Lock()
	n := v.buildNode()
	v.ready = false
	notReady := v.buildNode()
	v.mu.Unlock()
	if n.Name != "vnode.abc.dev" || n.Labels[LabelHostname] != n.Name || n.Labels[LabelBaseStack] != "go" || n.Labels[LabelVNodeName] != "kouple-base" {
		t.Fatalf("labels: %v", n.Labels)
	}
	if m := n.Status.Capacity.Memory().Value(); m != 1<<30 {
		t.Fatalf("memory %d", m)
	}
	if len(n.Spec.Taints) != 2 || n.Spec.Taints[1].Value != "dev" {
		t.Fatalf("taints %v", n.Spec.Taints)
	}
	if n.Status.Conditions[0].Status != corev1.ConditionTrue || notReady.Status.Conditions[0].Status != corev1.ConditionFalse {
		t.Fatal("Ready condition does not follow heartbeats")
	}
}

func TestHeartbeatValidation(t *testing.T) {
	for _, st := range []BaseStatus{
		{},
		{BaseMetadata: BaseMetadata{Identity: "Upper"}, AgentURL: "http://x"},
		{BaseMetadata: BaseMetadata{Identity: "abc"}},
	} {
		if err := st.validate(); err == nil {
			t.Errorf("%+v accepted", st)
		}
	}
	st := BaseStatus{BaseMetadata: BaseMetadata{Identity: "abc"}, LocalIP: "10.0.0.1", Port: 1238}
	if err := st.validate(); err != nil || st.AgentURL != "http://10.0.0.1:1238" {
		t.Fatalf("Koupleless heartbeat: %v %q", err, st.AgentURL)
	}
}

func drain(ch chan string) []string {
	var out []string
	for {
		select {
		case e := <-ch:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestHeartbeatToken(t *testing.T) {
	ctl := &Controller{cfg: Config{Env: "dev"}, nodes: map[string]*vnode{}}
	srv := httptest.NewServer(ctl.Handler("tok"))
	defer srv.Close()
	post := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/heartbeat", strings.NewReader(`{"baseMetadata":{"identity":"abc"},"agentURL":"http://127.0.0.1:1"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(""); c != http.StatusUnauthorized {
		t.Errorf("no token: %d", c)
	}
	if c := post("Bearer wrong"); c != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", c)
	}
	if c := post("Bearer tok"); c != http.StatusServiceUnavailable { // accepted, but the controller is not running
		t.Errorf("right token: %d", c)
	}
	if !LoopbackOnly("127.0.0.1:7777") || LoopbackOnly("0.0.0.0:7777") || LoopbackOnly(":7777") {
		t.Error("LoopbackOnly")
	}
}

// A restarted controller meets pods whose modules are already on the base: it adopts them.
func TestVNodeAdoptsInstalledModule(t *testing.T) {
	v, agent, _, _ := testVNode(t)
	agent.mods["hello:1.0.0"] = "ACTIVATED"
	if err := v.CreatePod(context.Background(), modulePod("a", "hello", "file:///hello-1.wasm", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	got, _ := v.GetPod(context.Background(), "default", "a")
	if got.Status.Phase != corev1.PodRunning {
		t.Fatalf("pod a: %+v", got.Status.ContainerStatuses)
	}
}

// A module on the base that no pod asks for is uninstalled; the pods' own modules stay.
func TestVNodeUninstallsOrphans(t *testing.T) {
	v, agent, _, _ := testVNode(t)
	ctx := context.Background()
	if err := v.CreatePod(ctx, modulePod("a", "hello", "file:///hello-1.wasm", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	agent.mu.Lock()
	agent.mods["stray:1.0.0"] = "ACTIVATED"
	agent.mu.Unlock()
	v.syncModules(ctx)
	agent.mu.Lock()
	defer agent.mu.Unlock()
	if _, ok := agent.mods["stray:1.0.0"]; ok || agent.mods["hello:1.0.0"] != "ACTIVATED" {
		t.Fatalf("after sync: %v (commands %v)", agent.mods, agent.commands)
	}
}
