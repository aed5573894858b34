package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// reconcile makes the base hold what the pods ask for, both ways, after syncModules has read it (byID):
//   - a module a pod installed that the base no longer has (a base restarted empty, or that lost it) is
//     installed again from the pod, which stays as it is: Koupleless's baseline replay, without pod churn;
//   - a module on the base that no pod of this vnode asks for (its pod was deleted while the base was away,
//     or someone installed it by hand) is uninstalled: the controller owns what runs on its bases.
//
// A module some pod in the informer asks for is never an orphan, even before the pod reaches CreatePod: a
// restarted controller adopts such modules instead of reinstalling them.
func (v *vnode) reconcile(ctx context.Context, byID map[string]BizInfo) {
	type replay struct {
		pod *corev1.Pod
		c   corev1.Container
		m   *modState
	}
	var missing []replay
	v.mu.Lock()
	wanted := map[string]bool{}
	for id := range v.owners {
		wanted[id] = true
	}
	for _, e := range v.pods {
		for _, c := range e.pod.Spec.Containers {
			m := e.mods[c.Name]
			if m != nil && m.owned && m.state == stateMissing {
				m.state, m.reason, m.message = stateInstall, "Reinstalling", ""
				missing = append(missing, replay{e.pod, c, m})
			}
		}
	}
	v.mu.Unlock()
	pods, err := v.ctl.pods.Lister().List(labels.Everything())
	if err != nil {
		v.log.Warn("list module pods", "err", err)
		return
	}
	for _, p := range pods {
		if p.Spec.NodeName != v.name {
			continue
		}
		for _, c := range p.Spec.Containers {
			wanted[c.Name+":"+bizVersion(c)] = true
		}
	}

	for _, r := range missing {
		v.log.Info("module missing on the base: installing it again", "pod", podKey(r.pod), "module", r.m.id())
		v.installContainer(ctx, r.pod, r.c, r.m, false)
		v.notify(podKey(r.pod))
	}
	for id, b := range byID {
		if wanted[id] {
			continue
		}
		v.log.Info("module on the base without a pod: uninstalling it", "module", id)
		if err := v.client().Uninstall(ctx, b.BizName, b.BizVersion); err != nil {
			v.log.Warn("uninstall orphan module", "module", id, "err", err)
		}
	}
}
