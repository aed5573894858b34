package controller

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// High availability: any number of controllers run at once, and each vnode is driven by exactly one of them,
// the holder of its Lease (LeaseNamespace/kouple-owner.<vnode>), taken and renewed with client-go's leader
// election (resourceVersion-checked updates, so two candidates cannot both win).
//
// Every controller is a candidate for every vnode it knows of: from a heartbeat it received, or from a vnode
// node in the API (a node informer). So when the holder dies, another controller takes its vnodes once their
// leases expire, whatever controller the bases heartbeat to. The holder needs no heartbeats to keep a vnode
// Ready: its base's agent answering the module sync counts as alive (baseloss.go), and the node's
// kouple.io/base-status annotation says where the agent is.

// AnnotationBaseStatus on a vnode is its base's last heartbeat, as JSON: what a controller that takes the
// vnode over starts from.
const AnnotationBaseStatus = "kouple.io/base-status"

// claim is this controller's candidacy for one vnode.
type claim struct {
	status BaseStatus   // the latest heartbeat, else the node's annotation: where the base is
	beat   time.Time    // when this controller last received the base's heartbeat; zero if never
	node   *corev1.Node // the vnode's node as last seen in the API, for its readiness; nil if not seen
	cancel context.CancelFunc
}

func leaseName(node string) string { return "kouple-owner." + node }

// claimVNode makes this controller a candidate for vnode name, or updates what its candidacy knows: st
// from a heartbeat (node nil) or from the vnode's node. Called with c.mu held.
func (c *Controller) claimVNode(name string, st BaseStatus, node *corev1.Node) {
	cl := c.claims[name]
	if cl == nil {
		ctx, cancel := context.WithCancel(c.runCtx)
		cl = &claim{status: st, cancel: cancel}
		c.claims[name] = cl
		c.wg.Go(func() { c.elect(ctx, name) })
	}
	if node == nil {
		cl.status, cl.beat = st, time.Now()
		return
	}
	cl.node = node
	if cl.beat.IsZero() {
		cl.status = st
	}
}

// elect runs for vnode name until ctx ends: wait to hold its lease, drive it while held, and stand again
// when the lease is lost.
func (c *Controller) elect(ctx context.Context, name string) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.cfg.LeaseNamespace, Name: leaseName(name)},
		Client:     c.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: c.cfg.LeaseDuration,
			RenewDeadline: c.cfg.RenewDeadline,
			RetryPeriod:   c.cfg.RetryPeriod,
			Name:          name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) { c.drive(ctx, name) },
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			c.log.Error("lease of vnode", "vnode", name, "err", err)
			return
		}
		le.Run(ctx) // returns when the lease is lost or ctx ends
		c.mu.Lock()
		v := c.nodes[name]
		c.mu.Unlock()
		if v != nil {
			<-v.stopped // every goroutine of the vnode has ended before anyone else may take it
			c.mu.Lock()
			if c.nodes[name] == v {
				delete(c.nodes, name)
			}
			c.mu.Unlock()
			if ctx.Err() == nil {
				c.log.Warn("lease of vnode lost: no longer driving it", "vnode", name)
			} else {
				c.release(lock, name)
			}
		}
	}
}

// drive starts vnode name on this controller, now that it holds the lease, until ctx ends.
func (c *Controller) drive(ctx context.Context, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.claims[name]
	if cl == nil || c.stopped || ctx.Err() != nil { // lost already: elect has stopped waiting for a vnode
		return
	}
	v := newVNode(c, name, cl.status)
	if cl.node != nil && time.Since(cl.beat) > c.cfg.HeartbeatTimeout {
		v.takeOver(cl.node)
	}
	if err := c.startVNode(ctx, v); err != nil {
		c.log.Error("start vnode", "vnode", name, "err", err)
		close(v.stopped)
		return
	}
	c.nodes[name] = v
	c.log.Info("driving vnode", "vnode", name, "agent", v.status.AgentURL, "identity", c.cfg.Identity)
}

// release gives up the lease of a vnode this controller stopped driving at shutdown, so that another
// controller takes it at once instead of after the lease expires.
func (c *Controller) release(lock *resourcelock.LeaseLock, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != c.cfg.Identity {
		return
	}
	now := metav1.Now()
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions: rec.LeaderTransitions, LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now,
	})
	if err != nil && !apierrors.IsConflict(err) {
		c.log.Warn("release lease of vnode", "vnode", name, "err", err)
	}
}

// takeOver starts a vnode from the state its node shows: a base already silent stays NotReady, and its
// silence counts from when the node turned NotReady, so that a takeover does not reset the dead timer.
func (v *vnode) takeOver(n *corev1.Node) {
	for _, cond := range n.Status.Conditions {
		if cond.Type != corev1.NodeReady || cond.Status == corev1.ConditionTrue {
			continue
		}
		v.ready = false
		v.readySince = cond.LastTransitionTime.Time
		v.lastBeat = cond.LastTransitionTime.Add(-v.ctl.cfg.HeartbeatTimeout)
	}
}

// watchVNodes makes this controller a candidate for every vnode node in the API, until ctx ends.
func (c *Controller) watchVNodes(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(c.cfg.Client, c.cfg.ResyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{LabelComponent: ComponentVNode}.String()
		}))
	inf := factory.Core().V1().Nodes().Informer()
	seen := func(obj any) {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return
		}
		st, ok := statusOf(n)
		if !ok {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.runCtx != nil && !c.stopped {
			c.claimVNode(n.Name, st, n.DeepCopy())
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	c.wg.Go(func() {
		<-ctx.Done()
		factory.Shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("controller: node informer did not sync")
	}
	return nil
}

// statusOf is the base status a vnode node records; false for a node without one.
func statusOf(n *corev1.Node) (BaseStatus, bool) {
	var st BaseStatus
	raw := n.Annotations[AnnotationBaseStatus]
	if raw == "" || json.Unmarshal([]byte(raw), &st) != nil || st.validate() != nil {
		return st, false
	}
	return st, true
}

// recordStatus writes the base's status on its node (AnnotationBaseStatus).
func recordStatus(n *corev1.Node, st BaseStatus) {
	raw, err := json.Marshal(st)
	if err == nil {
		n.Annotations[AnnotationBaseStatus] = string(raw)
	}
}

func defaultIdentity() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%x", cmp.Or(host, "kouple-controller"), b)
}
