package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Module states as the base reports them (sofa-ark's BizState), plus the controller's own.
const (
	stateActivated = "ACTIVATED"
	stateBroken    = "BROKEN"
	stateStopped   = "STOPPED"
	stateRefused   = "REFUSED"    // a second pod for a module version already on this base
	stateMissing   = "MISSING"    // installed, then gone from the base
	stateInstall   = "INSTALLING" // install in progress
	stateConfig    = "CONFIG"     // waiting for a ConfigMap or Secret its env names (podconfig.go)
)

// vnode is one base as a Kubernetes node: virtual-kubelet's pod lifecycle handler and node provider for it.
// Pod operations become Arklet commands on the base's agent.
type vnode struct {
	ctl  *Controller
	name string
	log  *slog.Logger

	mu         sync.Mutex
	status     BaseStatus
	lastBeat   time.Time
	ready      bool
	readySince time.Time // last change of ready
	memory     int64     // bytes the base may use, from its health; 0 when unknown
	loss       baseLoss  // liveness beyond heartbeats; baseloss.go
	pods       map[string]*podEntry
	owners     map[string]string // module name:version -> key of the pod that installed it
	notifyPod  func(*corev1.Pod)
	notifyNode func(*corev1.Node)
	stopped    chan struct{} // closed once the vnode's goroutines have ended (lease.go)
}

// podEntry is a pod on this vnode and the state of its modules (one per container).
type podEntry struct {
	pod     *corev1.Pod
	started metav1.Time
	mods    map[string]*modState // by container name
	deleted bool
}

type modState struct {
	name, version, url string
	owned              bool      // this pod installed name:version on the base
	replace            bool      // reinstall over the same version (an artifact change), when installed late
	prev               *modState // the version this one upgrades, while it waits for its config
	state              string
	reason, message    string
	since              metav1.Time
}

func (m *modState) id() string { return m.name + ":" + m.version }

func newVNode(ctl *Controller, name string, st BaseStatus) *vnode {
	return &vnode{
		ctl: ctl, name: name, status: st, lastBeat: time.Now(), ready: true, readySince: time.Now(),
		log:    ctl.log.With("vnode", name),
		pods:   map[string]*podEntry{},
		owners: map[string]string{},
		// closed by startVNode's goroutine
		stopped: make(chan struct{}),
	}
}

func (v *vnode) client() *BaseClient {
	v.mu.Lock()
	defer v.mu.Unlock()
	return &BaseClient{URL: v.status.AgentURL, Token: v.ctl.cfg.BaseToken, HTTP: v.ctl.http}
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// bizVersion is a container's module version: its BIZ_VERSION env var.
func bizVersion(c corev1.Container) string {
	for _, e := range c.Env {
		if e.Name == EnvBizVersion {
			return e.Value
		}
	}
	return ""
}

// CreatePod installs one module per container; a module version another pod already has on this base is
// refused (Arklet would answer REPEAT_BIZ, and deleting either pod would remove the other's module).
func (v *vnode) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod)
	e := &podEntry{pod: pod.DeepCopy(), started: metav1.Now(), mods: map[string]*modState{}}
	v.mu.Lock()
	v.pods[key] = e
	var todo []corev1.Container
	for _, c := range pod.Spec.Containers {
		m := &modState{name: c.Name, version: bizVersion(c), url: c.Image, since: metav1.Now()}
		e.mods[c.Name] = m
		switch owner, taken := v.owners[m.id()]; {
		case m.version == "":
			m.state, m.reason = stateRefused, "NoVersion"
			m.message = fmt.Sprintf("container %s has no %s env var: set it to the module's version", c.Name, EnvBizVersion)
		case taken && owner != key:
			m.state, m.reason = stateRefused, "DuplicateModule"
			m.message = fmt.Sprintf("module %s is already on base %s for pod %s: one pod per module version per base (use a podAntiAffinity per kubernetes.io/hostname)", m.id(), v.name, owner)
		default:
			v.owners[m.id()] = key
			m.owned, m.state, m.reason = true, stateInstall, "Installing"
			todo = append(todo, c)
		}
	}
	v.mu.Unlock()
	for _, m := range e.mods {
		if m.state == stateRefused {
			v.ctl.recorder.Event(pod, corev1.EventTypeWarning, m.reason, m.message)
		}
	}
	v.notify(key)
	for _, c := range todo {
		v.installContainer(ctx, pod, c, e.mods[c.Name], false)
	}
	v.notify(key)
	return nil
}

// install runs installBiz for m and records the outcome; a failure shows in the pod's status and as an event.
func (v *vnode) install(ctx context.Context, pod *corev1.Pod, m *modState, cfg moduleConfig, replace bool) {
	err := v.client().Install(ctx, InstallRequest{BizURL: m.url, BizName: m.name, BizVersion: m.version, Envs: cfg.env, Limits: cfg.limits, Activate: true, Replace: replace})
	var repeat *CommandError
	if errors.As(err, &repeat) && repeat.Code == "REPEAT_BIZ" {
		// Already on the base: a restarted controller meeting its pods again, or a base that kept its modules
		// across a restart. Adopt it; syncModules reports its real state.
		v.log.Info("module already on the base: adopted", "pod", podKey(pod), "module", m.id())
		err = nil
	}
	v.mu.Lock()
	m.since = metav1.Now()
	if err != nil {
		m.state, m.reason, m.message = stateBroken, "InstallFailed", fmt.Sprintf("install %s from %s on base %s: %v", m.id(), m.url, v.name, err)
		var ce *CommandError
		if errors.As(err, &ce) {
			m.reason = "InstallFailed" + codeSuffix(ce.Code)
		}
	} else {
		m.state, m.reason, m.message = stateActivated, "", ""
	}
	v.mu.Unlock()
	if err != nil {
		v.log.Warn("install failed", "pod", podKey(pod), "module", m.id(), "err", err)
		v.ctl.recorder.Event(pod, corev1.EventTypeWarning, m.reason, m.message)
	} else {
		v.log.Info("module installed", "pod", podKey(pod), "module", m.id())
	}
}

// codeSuffix turns an Arklet code into a CamelCase reason suffix: REPEAT_BIZ -> RepeatBiz; FAILED -> "".
func codeSuffix(code string) string {
	if code == "FAILED" || code == "" {
		return ""
	}
	out, up := []byte{}, true
	for _, r := range []byte(code) {
		switch {
		case r == '_':
			up = true
		case up:
			out, up = append(out, r), false
		default:
			out = append(out, r|0x20)
		}
	}
	return string(out)
}

// UpdatePod upgrades the modules whose image (artifact URL) or version changed: install the new version and
// activate it, then uninstall the old one.
func (v *vnode) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod)
	v.mu.Lock()
	e := v.pods[key]
	if e == nil {
		v.mu.Unlock()
		return v.CreatePod(ctx, pod)
	}
	e.pod = pod.DeepCopy()
	type change struct {
		c        corev1.Container
		old, new *modState
	}
	var changes []change
	for _, c := range pod.Spec.Containers {
		old := e.mods[c.Name]
		if old != nil && old.url == c.Image && old.version == bizVersion(c) {
			continue
		}
		m := &modState{name: c.Name, version: bizVersion(c), url: c.Image, since: metav1.Now()}
		if owner, taken := v.owners[m.id()]; taken && owner != key {
			m.state, m.reason = stateRefused, "DuplicateModule"
			m.message = fmt.Sprintf("module %s is already on base %s for pod %s: one pod per module version per base", m.id(), v.name, owner)
		} else {
			v.owners[m.id()] = key
			m.owned, m.state, m.reason = true, stateInstall, "Upgrading"
		}
		e.mods[c.Name] = m
		changes = append(changes, change{c, old, m})
	}
	v.mu.Unlock()
	v.notify(key)
	var errs []error
	for _, ch := range changes {
		if ch.new.state == stateRefused {
			v.ctl.recorder.Event(pod, corev1.EventTypeWarning, ch.new.reason, ch.new.message)
			continue
		}
		sameVersion := ch.old != nil && ch.old.owned && ch.old.version == ch.new.version
		if ch.old != nil && ch.old.owned && !sameVersion {
			ch.new.prev = ch.old // uninstalled once the new one is active, here or when its config arrives
		}
		v.installContainer(ctx, pod, ch.c, ch.new, sameVersion)
		if ch.new.prev != nil && ch.new.state == stateActivated {
			if err := v.client().Uninstall(ctx, ch.old.name, ch.old.version); err != nil {
				errs = append(errs, fmt.Errorf("pod %s: uninstall %s from base %s after upgrade: %w", key, ch.old.id(), v.name, err))
				continue
			}
			v.mu.Lock()
			ch.new.prev = nil
			v.mu.Unlock()
			v.release(key, ch.old)
		}
	}
	v.notify(key)
	return errors.Join(errs...)
}

func (v *vnode) release(key string, m *modState) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.owners[m.id()] == key {
		delete(v.owners, m.id())
	}
}

// DeletePod uninstalls the pod's modules. A base that stopped heartbeating is not waited for.
func (v *vnode) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod)
	v.mu.Lock()
	e := v.pods[key]
	if e == nil {
		v.mu.Unlock()
		return nil
	}
	var owned []*modState
	for _, m := range e.mods {
		if m.owned {
			owned = append(owned, m)
		}
		if m.prev != nil { // an upgrade still waiting for its config
			owned = append(owned, m.prev)
		}
	}
	ready := v.ready
	v.mu.Unlock()
	for _, m := range owned {
		if err := v.client().Uninstall(ctx, m.name, m.version); err != nil {
			if ready {
				return fmt.Errorf("pod %s: uninstall %s from base %s: %w", key, m.id(), v.name, err)
			}
			v.log.Warn("base not ready: forgetting module without uninstalling it", "pod", key, "module", m.id(), "err", err)
		}
		v.release(key, m)
		v.log.Info("module uninstalled", "pod", key, "module", m.id())
	}
	v.mu.Lock()
	now := metav1.Now()
	for _, m := range e.mods {
		m.state, m.reason, m.message, m.since = stateStopped, "Uninstalled", "", now
	}
	e.deleted = true
	final := v.podWithStatus(e)
	delete(v.pods, key)
	notify := v.notifyPod
	v.mu.Unlock()
	if notify != nil {
		notify(final)
	}
	v.removeFromAPI(ctx, pod)
	return nil
}

// removeFromAPI deletes a pod whose modules are uninstalled at once: virtual-kubelet would otherwise leave it
// Terminating for its whole grace period, though nothing is left to drain (the base drained at uninstall).
func (v *vnode) removeFromAPI(ctx context.Context, pod *corev1.Pod) {
	if v.ctl.cfg.Client == nil || pod.DeletionTimestamp == nil {
		return
	}
	opts := metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))}
	err := v.ctl.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		v.log.Warn("delete pod after uninstall", "pod", podKey(pod), "err", err)
	}
}

func (v *vnode) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.pods[namespace+"/"+name]
	if e == nil {
		return nil, nil
	}
	return v.podWithStatus(e), nil
}

func (v *vnode) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p, _ := v.GetPod(ctx, namespace, name)
	if p == nil {
		return nil, nil
	}
	return &p.Status, nil
}

func (v *vnode) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(v.pods))
	for _, e := range v.pods {
		out = append(out, v.podWithStatus(e))
	}
	return out, nil
}

// NotifyPods is virtual-kubelet's asynchronous status channel: the controller pushes a pod whenever its status
// changes.
func (v *vnode) NotifyPods(ctx context.Context, cb func(*corev1.Pod)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.notifyPod = cb
}

func (v *vnode) notify(key string) {
	v.mu.Lock()
	e, cb := v.pods[key], v.notifyPod
	var p *corev1.Pod
	if e != nil {
		p = v.podWithStatus(e)
	}
	v.mu.Unlock()
	if p != nil && cb != nil {
		cb(p)
	}
}

// podWithStatus is e's pod with the status of its modules: ACTIVATED -> Running and Ready; STOPPED ->
// Terminated; anything else -> Waiting with the reason. The pod IP is the base's. Called with v.mu held.
func (v *vnode) podWithStatus(e *podEntry) *corev1.Pod {
	p := e.pod.DeepCopy()
	ip := v.status.LocalIP
	st := corev1.PodStatus{
		Phase:     corev1.PodPending,
		HostIP:    ip,
		PodIP:     ip,
		StartTime: &e.started,
		QOSClass:  corev1.PodQOSBestEffort,
	}
	if e.pod.Status.QOSClass != "" { // set by the API server from resources, and immutable
		st.QOSClass = e.pod.Status.QOSClass
	}
	if ip != "" {
		st.HostIPs = []corev1.HostIP{{IP: ip}}
		st.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	ready, stopped := true, true
	var why []string
	for _, c := range p.Spec.Containers {
		m := e.mods[c.Name]
		if m == nil {
			m = &modState{name: c.Name, state: stateInstall, reason: "Installing"}
		}
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: m.url, ContainerID: "kouple://" + v.name + "/" + m.id()}
		switch m.state {
		case stateActivated:
			t := true
			cs.Ready, cs.Started = true, &t
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: m.since}
			stopped = false
		case stateStopped:
			ready = false
			cs.State.Terminated = &corev1.ContainerStateTerminated{Reason: m.reason, Message: m.message, StartedAt: e.started, FinishedAt: m.since}
		default:
			ready, stopped = false, false
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: m.reason, Message: m.message}
			if m.message != "" {
				why = append(why, c.Name+": "+m.message)
			}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: e.started}
	}
	switch {
	case stopped && len(p.Spec.Containers) > 0:
		st.Phase = corev1.PodSucceeded
	case ready:
		st.Phase = corev1.PodRunning
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true),
		cond(corev1.PodInitialized, true),
		cond(corev1.ContainersReady, ready),
		cond(corev1.PodReady, ready),
	}
	if len(why) > 0 {
		st.Conditions[3].Reason, st.Conditions[3].Message = "ModulesNotReady", fmt.Sprint(why)
	}
	p.Status = st
	return p
}

// heartbeat records a base's heartbeat.
func (v *vnode) heartbeat(st BaseStatus) {
	v.mu.Lock()
	v.status, v.lastBeat = st, time.Now()
	v.mu.Unlock()
}

// Ping is the node controller's liveness check of the provider: the controller itself is alive. Whether the
// base is alive is the Ready condition, from heartbeats.
func (v *vnode) Ping(ctx context.Context) error { return nil }

func (v *vnode) NotifyNodeStatus(ctx context.Context, cb func(*corev1.Node)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.notifyNode = cb
}

// run keeps the vnode in step with its base until ctx ends: Ready from heartbeats, capacity from the base's
// health, module states from queryAllBiz.
func (v *vnode) run(ctx context.Context) {
	t := time.NewTicker(v.ctl.cfg.SyncInterval)
	defer t.Stop()
	var lastHealth time.Time
	for {
		v.mu.Lock()
		ready := time.Since(v.lastSeen()) < v.ctl.cfg.HeartbeatTimeout
		changed := ready != v.ready
		v.ready = ready
		if changed {
			v.readySince = time.Now()
		}
		v.mu.Unlock()
		if ready && time.Since(lastHealth) > time.Minute {
			if v.refreshCapacity(ctx) {
				changed = true
			}
			lastHealth = time.Now()
		}
		if changed {
			v.log.Info("vnode readiness changed", "ready", ready)
			v.pushNode()
		}
		v.probe(ctx, ready) // baseloss.go: syncModules, also the liveness probe of a silent base
		if ready {
			v.retryWaiting(ctx) // podconfig.go: pods waiting for a ConfigMap or Secret
		}
		v.checkDead(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (v *vnode) refreshCapacity(ctx context.Context) bool {
	h, err := v.client().Health(ctx)
	if err != nil {
		v.log.Warn("health of base", "err", err)
		return false
	}
	mem := toInt64(h.HealthData.JVM["java max metaspace"])
	v.mu.Lock()
	defer v.mu.Unlock()
	if mem == v.memory {
		return false
	}
	v.memory = mem
	return true
}

func toInt64(x any) int64 {
	switch n := x.(type) {
	case float64:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func (v *vnode) pushNode() {
	v.mu.Lock()
	n, cb := v.buildNode(), v.notifyNode
	v.mu.Unlock()
	if cb != nil {
		cb(n)
	}
}

// syncModules compares what the base reports with what the pods expect and pushes changed pod statuses.
func (v *vnode) syncModules(ctx context.Context) {
	infos, err := v.client().QueryAll(ctx)
	if err != nil {
		v.mu.Lock()
		ready := v.ready
		v.mu.Unlock()
		if ready {
			v.log.Warn("queryAllBiz", "err", err)
		}
		return
	}
	v.answered()
	byID := map[string]BizInfo{}
	for _, b := range infos {
		byID[b.BizName+":"+b.BizVersion] = b
	}
	var changed []string
	v.mu.Lock()
	for key, e := range v.pods {
		dirty := false
		for _, m := range e.mods {
			if !m.owned || m.state == stateInstall || m.state == stateBroken || m.state == stateStopped || m.state == stateConfig {
				continue
			}
			state, reason, msg := stateMissing, "ModuleNotInstalled", fmt.Sprintf("module %s is not installed on base %s", m.id(), v.name)
			if b, ok := byID[m.id()]; ok {
				state, reason, msg = b.BizState, "", ""
				if state != stateActivated {
					reason = "Module" + codeSuffix(state)
					if n := len(b.BizStateRecords); n > 0 {
						r := b.BizStateRecords[n-1]
						msg = r.Reason + ": " + r.Message
					}
				}
			}
			if state != m.state || reason != m.reason || msg != m.message {
				m.state, m.reason, m.message, m.since = state, reason, msg, metav1.Now()
				dirty = true
			}
		}
		if dirty {
			changed = append(changed, key)
		}
	}
	v.mu.Unlock()
	for _, key := range changed {
		v.notify(key)
	}
	v.reconcile(ctx, byID)
}

// buildNode is the vnode as Kubernetes sees it. Called with v.mu held.
func (v *vnode) buildNode() *corev1.Node {
	st := v.status
	labels := map[string]string{
		LabelComponent:       ComponentVNode,
		LabelEnv:             v.env(),
		LabelBaseName:        st.BaseMetadata.Name,
		LabelBaseVersion:     st.BaseMetadata.Version,
		LabelBaseCluster:     st.BaseMetadata.ClusterName,
		LabelBaseStack:       StackGo,
		LabelVNodeName:       st.BaseMetadata.Name,
		LabelVNodeVer:        st.BaseMetadata.Version,
		LabelHostname:        v.name,
		"type":               "virtual-kubelet",
		"kubernetes.io/role": "agent",
		"kubernetes.io/os":   "linux",
		"kubernetes.io/arch": runtime.GOARCH,
	}
	capacity := corev1.ResourceList{
		corev1.ResourcePods: resource.MustParse("65535"),
	}
	if v.memory > 0 {
		capacity[corev1.ResourceMemory] = *resource.NewQuantity(v.memory, resource.BinarySI)
	}
	readyStatus, reason, msg := corev1.ConditionTrue, "BaseHeartbeating", "the base sends heartbeats"
	if !v.ready {
		readyStatus, reason = corev1.ConditionFalse, "BaseHeartbeatMissing"
		msg = fmt.Sprintf("no heartbeat from the base for %s (last at %s)", time.Since(v.lastBeat).Round(time.Second), v.lastBeat.UTC().Format(time.RFC3339))
	}
	now, since := metav1.Now(), metav1.NewTime(v.readySince)
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: since}
	}
	addrs := []corev1.NodeAddress{}
	if st.LocalIP != "" {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: st.LocalIP})
	}
	if st.LocalHostName != "" {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeHostName, Address: st.LocalHostName})
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   v.name,
			Labels: labels,
			Annotations: map[string]string{
				"kouple.io/agent-url":   st.AgentURL,
				"kouple.io/gateway-url": st.GatewayURL,
				"kouple.io/identity":    st.BaseMetadata.Identity,
			},
		},
		Spec: corev1.NodeSpec{
			Taints: []corev1.Taint{
				{Key: TaintVirtualNode, Value: "True", Effect: corev1.TaintEffectNoExecute},
				{Key: TaintNodeEnv, Value: v.env(), Effect: corev1.TaintEffectNoExecute},
			},
		},
		Status: corev1.NodeStatus{
			Phase:       corev1.NodeRunning,
			Capacity:    capacity,
			Allocatable: maps.Clone(capacity),
			Addresses:   addrs,
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: "linux",
				Architecture:    runtime.GOARCH,
				KubeletVersion:  st.BaseMetadata.Version,
				MachineID:       st.BaseMetadata.Identity,
			},
			Conditions: []corev1.NodeCondition{
				condition(corev1.NodeReady, readyStatus, reason, msg),
				condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KoupleMemoryUnchecked", "not measured yet"),
				condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KoupleDiskUnchecked", "not measured yet"),
				condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KouplePIDUnchecked", "not measured yet"),
				condition(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "KoupleNetwork", "the base's gateway serves its modules"),
			},
		},
	}
	v.ctl.advertiseKubelet(n) // logs.go
	recordStatus(n, st)       // lease.go
	return n
}

func (v *vnode) env() string {
	if v.status.Env != "" {
		return v.status.Env
	}
	return v.ctl.cfg.Env
}

// modules lists the module versions this vnode's pods own, for tests and the status endpoint.
func (v *vnode) modules() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Sorted(maps.Keys(v.owners))
}
