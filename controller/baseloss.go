package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// baseLoss is what a vnode knows about its base's liveness beyond heartbeats. Guarded by vnode.mu.
type baseLoss struct {
	lastAnswer time.Time // the base's agent last answered a command
	dead       bool      // past DeadAfter: its module pods are being removed
}

// lastSeen is the last sign of life from the base: a heartbeat to this controller or an answer of its agent.
// The agent's answers count so that a controller that took the vnode over (HA) knows the base is alive even
// though the base heartbeats to another replica. Called with v.mu held.
func (v *vnode) lastSeen() time.Time {
	if v.loss.lastAnswer.After(v.lastBeat) {
		return v.loss.lastAnswer
	}
	return v.lastBeat
}

// answered records that the base's agent answered.
func (v *vnode) answered() {
	v.mu.Lock()
	v.loss.lastAnswer = time.Now()
	v.mu.Unlock()
}

// probe syncs the base's modules. A base that is not Ready is first asked with a short timeout, so that an
// address that does not answer at all does not hold the loop (and the dead timer) for queryAllBiz's 30 s;
// the sync itself, which may reinstall modules, then runs without it.
func (v *vnode) probe(ctx context.Context, ready bool) {
	if !ready {
		pctx, cancel := context.WithTimeout(ctx, max(v.ctl.cfg.SyncInterval, 2*time.Second))
		_, err := v.client().QueryAll(pctx)
		cancel()
		if err != nil {
			return
		}
	}
	v.syncModules(ctx)
}

// checkDead removes the module pods of a base silent for DeadAfter, so that their Deployments create them
// again on live bases: Kubernetes would not for a long time, since this controller keeps the vnode's node
// lease fresh and the not-ready taint's default toleration is 300 s. DaemonSet pods stay (their controller
// would create them on this node again at once); a base that comes back gets theirs reinstalled.
func (v *vnode) checkDead(ctx context.Context) {
	after := v.ctl.cfg.DeadAfter
	v.mu.Lock()
	silent := time.Since(v.lastSeen())
	dead := !v.ready && silent >= after
	first := dead && !v.loss.dead
	v.loss.dead = dead
	v.mu.Unlock()
	if !dead {
		return
	}
	pods, err := v.ctl.pods.Lister().List(labels.Everything())
	if err != nil {
		v.log.Warn("list module pods of a dead base", "err", err)
		return
	}
	var removed []string
	for _, p := range pods {
		if p.Spec.NodeName != v.name || p.DeletionTimestamp != nil || ownedByDaemonSet(p) {
			continue
		}
		// Grace 0: the pod goes from the API at once (the base cannot drain it anyway), and the vnode's
		// DeletePod then forgets its modules without reaching the base.
		opts := metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(p.UID))}
		err := v.ctl.cfg.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, opts)
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			v.log.Warn("remove module pod of a dead base", "pod", podKey(p), "err", err)
			continue
		}
		v.ctl.recorder.Eventf(p, corev1.EventTypeWarning, "BaseLost", "base of node %s silent for %s (more than %s): pod removed so that its controller recreates it elsewhere", v.name, silent.Round(time.Second), after)
		removed = append(removed, podKey(p))
	}
	if first || len(removed) > 0 {
		v.log.Warn("base lost: module pods removed", "silent", silent.Round(time.Second), "pods", removed)
	}
}

func ownedByDaemonSet(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}
