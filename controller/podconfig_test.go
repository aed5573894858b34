package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func TestResolveConfig(t *testing.T) {
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "cfg"}, Data: map[string]string{"GREETING": "from envFrom", "COLOR": "blue"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sec"}, Data: map[string][]byte{"password": []byte("hunter2"), "user": []byte("ann")}},
	)
	ctl := &Controller{cfg: Config{Client: client}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", UID: "u-1", Labels: map[string]string{"app": "hello"}},
		Spec:       corev1.PodSpec{NodeName: "vnode.abc.dev"},
	}
	opt := true
	ctr := corev1.Container{
		Name: "hello",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{Prefix: "DB_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: &opt}},
		},
		Env: []corev1.EnvVar{
			{Name: "BIZ_VERSION", Value: "1.0.0"},
			{Name: "GREETING", Value: "literal wins"},
			{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "nope", Optional: &opt}}},
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "URL", Value: "http://$(IP):8080/$(COLOR)/$(UNDEFINED)/$$(COLOR)"},
			{Name: "MEM_MB", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100M"), corev1.ResourceCPU: resource.MustParse("500m")}},
	}
	got, err := ctl.resolveConfig(context.Background(), pod, ctr, "10.0.0.7")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"BIZ_VERSION": "1.0.0", "GREETING": "literal wins", "COLOR": "blue", "DB_password": "hunter2", "DB_user": "ann",
		"PASSWORD": "hunter2", "POD": "p", "APP": "hello", "IP": "10.0.0.7", "MEM_MB": "96",
		"URL": "http://10.0.0.7:8080/blue/$(UNDEFINED)/$(COLOR)",
	}
	if !maps.Equal(got.env, want) {
		t.Errorf("env %v, want %v", got.env, want)
	}
	if got.limits == nil || got.limits.MemoryMB != 96 { // 100e6 bytes, rounded up to whole MiB
		t.Errorf("limits %+v, want memoryMB 96", got.limits)
	}

	for _, tc := range []struct {
		env  corev1.EnvVar
		from []corev1.EnvFromSource
		want string
	}{
		{from: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}}, want: `secret "gone" not found`},
		{env: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}, want: `configmap "gone" not found`},
		{env: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "nope"}}}, want: "couldn't find key nope in configmap default/cfg"},
		{env: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.hostname"}}}, want: "fieldRef spec.hostname is not supported"},
	} {
		c := corev1.Container{Name: "hello", EnvFrom: tc.from}
		if tc.env.Name != "" {
			c.Env = []corev1.EnvVar{tc.env}
		}
		_, err := ctl.resolveConfig(context.Background(), pod, c, "")
		var ce *configError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want a config error saying %q", err, tc.want)
		}
	}
}

// capture records the env of each installBiz before the fake agent answers it.
type capture struct {
	next http.Handler
	mu   sync.Mutex
	envs []map[string]string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if strings.HasSuffix(r.URL.Path, "/installBiz") {
		var req InstallRequest
		json.Unmarshal(body, &req)
		c.mu.Lock()
		c.envs = append(c.envs, req.Envs)
		c.mu.Unlock()
	}
	c.next.ServeHTTP(w, r)
}

// TestVNodeUpgradeWaitsForConfig: an image change whose new env names a missing ConfigMap keeps the old
// version installed until the new one can be; then the new is installed and the old uninstalled.
func TestVNodeUpgradeWaitsForConfig(t *testing.T) {
	v, agent, _, _ := testVNode(t)
	client := fake.NewClientset()
	v.ctl.cfg.Client = client
	ctx := context.Background()
	pod := modulePod("p1", "hello", "file:///hello-1.wasm", "1.0.0")
	if err := v.CreatePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod = pod.DeepCopy()
	c := &pod.Spec.Containers[0]
	c.Image, c.Env[0].Value = "file:///hello-2.wasm", "2.0.0"
	c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
	if err := v.UpdatePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	mods := func() string {
		agent.mu.Lock()
		defer agent.mu.Unlock()
		return strings.Join(slices.Sorted(maps.Keys(agent.mods)), " ")
	}
	if got := mods(); got != "hello:1.0.0" {
		t.Fatalf("while 2.0.0 waits for its ConfigMap the base has %q, want hello:1.0.0 still", got)
	}
	client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "cfg"}}, metav1.CreateOptions{})
	v.retryWaiting(ctx)
	if got := mods(); got != "hello:2.0.0" {
		t.Fatalf("after the ConfigMap appeared the base has %q, want hello:2.0.0 only", got)
	}
	if got := v.modules(); !slices.Equal(got, []string{"hello:2.0.0"}) {
		t.Errorf("the vnode owns %v, want [hello:2.0.0]", got)
	}
}

// TestVNodeDuplicateRetried: a second pod for a module version already on the base waits as DuplicateModule
// and is installed once the first pod is gone (a rollout's new pod meeting the old one on a base).
func TestVNodeDuplicateRetried(t *testing.T) {
	v, agent, _, _ := testVNode(t)
	v.ctl.cfg.Client = fake.NewClientset()
	ctx := context.Background()
	old := modulePod("old", "hello", "file:///hello-1.wasm", "1.0.0")
	if err := v.CreatePod(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := v.CreatePod(ctx, modulePod("new", "hello", "file:///hello-1.wasm", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	p, _ := v.GetPod(ctx, "default", "new")
	if w := waiting(p); w == nil || w.Reason != "DuplicateModule" {
		t.Fatalf("second pod: %+v, want Waiting DuplicateModule", p.Status.ContainerStatuses[0].State)
	}
	v.retryWaiting(ctx) // the first pod still holds it
	if p, _ = v.GetPod(ctx, "default", "new"); waiting(p) == nil {
		t.Fatal("installed while the first pod still holds the version")
	}
	if err := v.DeletePod(ctx, old); err != nil {
		t.Fatal(err)
	}
	v.retryWaiting(ctx)
	if p, _ = v.GetPod(ctx, "default", "new"); !p.Status.ContainerStatuses[0].Ready {
		t.Fatalf("second pod after the first went: %+v", p.Status.ContainerStatuses[0].State)
	}
	agent.mu.Lock()
	defer agent.mu.Unlock()
	if agent.mods["hello:1.0.0"] != "ACTIVATED" {
		t.Errorf("base modules %v, want hello:1.0.0 installed again", agent.mods)
	}
}

// TestVNodeWaitsForSecret: a pod naming a missing Secret waits with the kubelet's reason and one event, installs
// once the Secret exists (at the next retry), and the secret's value never reaches the log.
func TestVNodeWaitsForSecret(t *testing.T) {
	agent := &fakeAgent{mods: map[string]string{}}
	capt := &capture{next: agent}
	srv := httptest.NewServer(capt)
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	client := fake.NewClientset()
	rec := record.NewFakeRecorder(100)
	ctl := &Controller{
		cfg: Config{Client: client, Env: "dev", HeartbeatTimeout: time.Minute, SyncInterval: time.Second},
		log: slog.New(slog.NewTextHandler(&logs, nil)), http: srv.Client(), recorder: rec,
	}
	v := newVNode(ctl, NodeName("abc", "dev"), BaseStatus{BaseMetadata: BaseMetadata{Identity: "abc"}, LocalIP: "127.0.0.1", AgentURL: srv.URL})
	pods := make(chan *corev1.Pod, 100)
	v.NotifyPods(context.Background(), func(p *corev1.Pod) { pods <- p })
	ctx := context.Background()

	pod := modulePod("p1", "hello", "file:///hello.wasm", "1.0.0")
	pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "tok"}, Key: "token"}}})
	if err := v.CreatePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	p, _ := v.GetPod(ctx, "default", "p1")
	if w := waiting(p); w == nil || w.Reason != "CreateContainerConfigError" || !strings.Contains(w.Message, `secret "tok" not found`) {
		t.Fatalf("waiting %+v, want CreateContainerConfigError: secret \"tok\" not found", w)
	}
	v.retryWaiting(ctx) // still missing: no second event
	if n := len(rec.Events); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
	if len(capt.envs) != 0 {
		t.Fatalf("installed without its config: %v", capt.envs)
	}

	client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tok"},
		Data: map[string][]byte{"token": []byte("t0ps3cr3t")}}, metav1.CreateOptions{})
	v.retryWaiting(ctx)
	p, _ = v.GetPod(ctx, "default", "p1")
	if !p.Status.ContainerStatuses[0].Ready {
		t.Fatalf("not Ready after the Secret appeared: %+v", p.Status.ContainerStatuses[0].State)
	}
	if len(capt.envs) != 1 || capt.envs[0]["TOKEN"] != "t0ps3cr3t" || capt.envs[0]["GREETING"] != "hi" {
		t.Errorf("installs with env %v, want TOKEN from the Secret and GREETING", capt.envs)
	}
	if strings.Contains(logs.String(), "t0ps3cr3t") {
		t.Errorf("the secret's value is in the log:\n%s", logs.String())
	}
}
