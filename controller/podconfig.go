package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// reasonConfig is the kubelet's reason for a container whose environment cannot be built (a ConfigMap or Secret
// missing); kept so that dashboards and alerts written for it match module pods too.
const reasonConfig = "CreateContainerConfigError"

// moduleConfig is what a container gives its module besides the artifact: the environment (the module's
// config, over its manifest's) and the limits (over the manifest's).
type moduleConfig struct {
	env    map[string]string
	limits *InstallLimits
}

// configError is a container whose config cannot be resolved yet: the pod waits with reason
// CreateContainerConfigError and the install is retried at every module sync.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// resolveConfig builds a container's module config as the kubelet builds a container's environment: envFrom
// first (ConfigMaps and Secrets, each key a variable, with the source's prefix), then env, later entries
// winning; valueFrom reads a ConfigMap or Secret key, a pod field or a resource of the container; $(VAR) in a
// value is replaced by a variable defined before it ($$ escapes a $). Values are never logged: they may be
// secrets.
func (c *Controller) resolveConfig(ctx context.Context, pod *corev1.Pod, ctr corev1.Container, ip string) (moduleConfig, error) {
	r := &resolver{ctl: c, ctx: ctx, ns: pod.Namespace, cms: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	env := map[string]string{}
	for _, from := range ctr.EnvFrom {
		var data map[string]string
		var err error
		switch {
		case from.ConfigMapRef != nil:
			data, err = r.configMap(from.ConfigMapRef.Name, ptrTrue(from.ConfigMapRef.Optional))
		case from.SecretRef != nil:
			data, err = r.secret(from.SecretRef.Name, ptrTrue(from.SecretRef.Optional))
		}
		if err != nil {
			return moduleConfig{}, err
		}
		for k, val := range data {
			env[from.Prefix+k] = val
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			env[e.Name] = expand(e.Value, env)
			continue
		}
		val, ok, err := r.valueFrom(pod, ctr, e.ValueFrom, ip)
		if err != nil {
			return moduleConfig{}, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			env[e.Name] = val
		}
	}
	return moduleConfig{env: env, limits: limitsOf(ctr)}, nil
}

// expand replaces $(NAME) in s by NAME's value in env, as the kubelet does: $$ is a $, and a reference to
// an undefined variable is left as written.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			ref := s[i : i+3+end]
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(ref)
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// resolver reads each ConfigMap and Secret a container names once.
type resolver struct {
	ctl     *Controller
	ctx     context.Context
	ns      string
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func ptrTrue(b *bool) bool { return b != nil && *b }

// lookup GETs a ConfigMap or Secret once per resolution; a missing optional one is nil.
func lookup[T any](r *resolver, cache map[string]*T, kind, name string, optional bool, get func(context.Context, string, metav1.GetOptions) (*T, error)) (*T, error) {
	if obj, ok := cache[name]; ok {
		return obj, nil
	}
	obj, err := get(r.ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && optional:
		obj = nil
	case apierrors.IsNotFound(err):
		return nil, &configError{fmt.Sprintf("%s %q not found", kind, name)}
	case err != nil:
		return nil, &configError{fmt.Sprintf("%s %q: %v", kind, name, err)}
	}
	cache[name] = obj
	return obj, nil
}

// configMap is a ConfigMap's data (binary data as bytes); a missing optional one is empty.
func (r *resolver) configMap(name string, optional bool) (map[string]string, error) {
	cm, err := lookup(r, r.cms, "configmap", name, optional, r.ctl.cfg.Client.CoreV1().ConfigMaps(r.ns).Get)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if cm != nil {
		for k, v := range cm.BinaryData {
			out[k] = string(v)
		}
		maps.Copy(out, cm.Data)
	}
	return out, nil
}

// secret is a Secret's data; a missing optional one is empty.
func (r *resolver) secret(name string, optional bool) (map[string]string, error) {
	s, err := lookup(r, r.secrets, "secret", name, optional, r.ctl.cfg.Client.CoreV1().Secrets(r.ns).Get)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if s != nil {
		for k, v := range s.Data {
			out[k] = string(v)
		}
	}
	return out, nil
}

// valueFrom resolves one env var's source; ok is false for an optional key that is absent (the variable is
// left unset, as the kubelet does).
func (r *resolver) valueFrom(pod *corev1.Pod, ctr corev1.Container, src *corev1.EnvVarSource, ip string) (string, bool, error) {
	switch {
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		data, err := r.configMap(ref.Name, ptrTrue(ref.Optional))
		if err != nil {
			return "", false, err
		}
		v, ok := data[ref.Key]
		if !ok && !ptrTrue(ref.Optional) {
			return "", false, &configError{fmt.Sprintf("couldn't find key %s in configmap %s/%s", ref.Key, r.ns, ref.Name)}
		}
		return v, ok, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		data, err := r.secret(ref.Name, ptrTrue(ref.Optional))
		if err != nil {
			return "", false, err
		}
		v, ok := data[ref.Key]
		if !ok && !ptrTrue(ref.Optional) {
			return "", false, &configError{fmt.Sprintf("couldn't find key %s in secret %s/%s", ref.Key, r.ns, ref.Name)}
		}
		return v, ok, nil
	case src.FieldRef != nil:
		v, err := podField(pod, src.FieldRef.FieldPath, ip)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceField(ctr, src.ResourceFieldRef)
		return v, err == nil, err
	}
	return "", false, &configError{"valueFrom names no source"}
}

// podField is the downward API's pod fields; the pod's and host's IP are the base's.
func podField(pod *corev1.Pod, path, ip string) (string, error) {
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.hostIP", "status.podIPs", "status.hostIPs":
		return ip, nil
	}
	return "", &configError{fmt.Sprintf("fieldRef %s is not supported for modules", path)}
}

// resourceField is a container's limit or request divided by the divisor, rounded up, as the downward API
// gives it.
func resourceField(ctr corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	list, name, ok := ctr.Resources.Limits, ref.Resource, false
	if n, isReq := strings.CutPrefix(name, "requests."); isReq {
		list, name = ctr.Resources.Requests, n
	} else {
		name, ok = strings.CutPrefix(name, "limits.")
		if !ok {
			return "", &configError{fmt.Sprintf("resourceFieldRef %s is not supported", ref.Resource)}
		}
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		return "0", nil
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if name == string(corev1.ResourceCPU) {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(div.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(div.Value())))), nil
}

// InstallLimits override the manifest's limits at install (agent installBiz "limits").
type InstallLimits struct {
	MemoryMB int `json:"memoryMB,omitempty"`
}

// limitsOf maps a container's resources.limits to module limits: memory to memoryMB (the cap on each
// instance's linear memory, rounded up to whole MiB). limits.cpu has no counterpart: modules share the base's
// CPU with no per-module share; the scheduler still counts requests against the vnode. See docs/kubernetes.md.
func limitsOf(ctr corev1.Container) *InstallLimits {
	q, ok := ctr.Resources.Limits[corev1.ResourceMemory]
	if !ok || q.IsZero() {
		return nil
	}
	return &InstallLimits{MemoryMB: int((q.Value() + 1<<20 - 1) >> 20)}
}

// installContainer resolves a container's config and installs its module; a config that cannot be resolved
// leaves the module waiting with reason CreateContainerConfigError until retryWaiting succeeds.
func (v *vnode) installContainer(ctx context.Context, pod *corev1.Pod, ctr corev1.Container, m *modState, replace bool) {
	v.mu.Lock()
	ip := v.status.LocalIP
	v.mu.Unlock()
	cfg, err := v.ctl.resolveConfig(ctx, pod, ctr, ip)
	if err != nil {
		var ce *configError
		if !errors.As(err, &ce) {
			err = &configError{err.Error()}
		}
		v.mu.Lock()
		first := m.reason != reasonConfig || m.message != err.Error()
		m.state, m.reason, m.message, m.since = stateConfig, reasonConfig, err.Error(), metav1.Now()
		m.replace = replace
		v.mu.Unlock()
		if first {
			v.log.Warn("module config not ready: install waits", "pod", podKey(pod), "module", m.id(), "err", err)
			v.ctl.recorder.Event(pod, corev1.EventTypeWarning, reasonConfig, fmt.Sprintf("module %s: %v", m.id(), err))
		}
		return
	}
	v.install(ctx, pod, m, cfg, replace)
}

// retryWaiting installs the modules that wait for their config, and the ones refused as duplicates whose
// version has since been released (a rollout's new pod meeting the old one on the same base), so that a pod
// waiting for a ConfigMap or Secret starts once it exists, at the next module sync; and it uninstalls the
// version an upgrade replaced once the new one is active. A module still waiting keeps its status: nothing is
// pushed unless it changed.
func (v *vnode) retryWaiting(ctx context.Context) {
	type job struct {
		key string
		pod *corev1.Pod
		ctr corev1.Container
		m   *modState
	}
	var jobs []job
	v.mu.Lock()
	for key, e := range v.pods {
		if e.deleted {
			continue
		}
		for _, ctr := range e.pod.Spec.Containers {
			m := e.mods[ctr.Name]
			switch {
			case m == nil:
				continue
			case m.state == stateConfig:
			case m.state == stateActivated && m.prev != nil: // the replaced version is still to go
			case m.state == stateRefused && m.reason == "DuplicateModule":
				if _, taken := v.owners[m.id()]; taken {
					continue
				}
				v.owners[m.id()], m.owned = key, true
				m.state, m.reason, m.message = stateInstall, "Installing", ""
			default:
				continue
			}
			jobs = append(jobs, job{key, e.pod, ctr, m})
		}
	}
	v.mu.Unlock()
	for _, j := range jobs {
		v.mu.Lock()
		pending := j.m.state != stateActivated
		v.mu.Unlock()
		if pending {
			v.installContainer(ctx, j.pod, j.ctr, j.m, j.m.replace)
		}
		v.mu.Lock()
		changed := pending && j.m.state != stateConfig
		var prev *modState
		if j.m.state == stateActivated {
			prev = j.m.prev
		}
		v.mu.Unlock()
		if prev != nil {
			if err := v.client().Uninstall(ctx, prev.name, prev.version); err != nil {
				v.log.Warn("uninstall after upgrade: retried at the next sync", "pod", j.key, "module", prev.id(), "err", err)
			} else {
				v.mu.Lock()
				j.m.prev = nil
				v.mu.Unlock()
				v.release(j.key, prev)
			}
		}
		if changed {
			v.notify(j.key)
		}
	}
}
