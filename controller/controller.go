// Package controller is Kouple's virtual-kubelet provider: every base that heartbeats becomes a Kubernetes
// node (vnode.<identity>.<env>), and module pods scheduled there become Arklet commands on that base's agent,
// as Koupleless ModuleController v2 does.
package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corev1informers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Config configures a Controller.
type Config struct {
	Client kubernetes.Interface
	// Env is the environment of bases that do not name one (vnode.<identity>.<env>); default dev.
	Env string
	// BaseToken is sent as a bearer token on every agent command; none when empty.
	BaseToken string
	// HeartbeatTimeout: a vnode is NotReady once its base has neither heartbeated nor answered for this long;
	// default 25 s (Koupleless: unreachable).
	HeartbeatTimeout time.Duration
	// DeadAfter: once its base has been silent this long, a vnode's module pods are removed so that their
	// Deployments recreate them elsewhere; default 60 s (Koupleless: dead), at least HeartbeatTimeout.
	DeadAfter time.Duration
	// KubeletIP and KubeletPort: where the API server reaches this controller's kubelet API (KubeletHandler,
	// served over TLS by the caller) for `kubectl logs`; vnodes advertise it when both are set.
	KubeletIP   string
	KubeletPort int
	// SyncInterval is how often module states are read from each base; default 5 s.
	SyncInterval time.Duration
	// Workers reconcile pods, per vnode; default 4.
	Workers int
	// ResyncPeriod of the shared pod informer; default 1 min.
	ResyncPeriod time.Duration
	Logger       *slog.Logger
	// Identity names this controller in the vnodes' Leases; default <hostname>-<random>.
	Identity string
	// LeaseNamespace holds a Lease per vnode (kouple-owner.<vnode>) naming the controller that drives it;
	// default kube-node-lease.
	LeaseNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod of the vnode Leases (client-go leader election);
	// default 20 s, 15 s and 5 s: a dead controller's vnodes are taken over within about 25 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Controller runs one virtual-kubelet node per base, all sharing one pod informer (module pods only) and one
// event broadcaster.
type Controller struct {
	cfg      Config
	log      *slog.Logger
	http     *http.Client
	factory  informers.SharedInformerFactory
	pods     corev1informers.PodInformer
	unused   informers.SharedInformerFactory // listers virtual-kubelet requires for env resolution; never started
	events   record.EventBroadcaster
	recorder record.EventRecorder

	mu      sync.Mutex
	runCtx  context.Context
	nodes   map[string]*vnode // the vnodes this controller drives (holds the lease of)
	claims  map[string]*claim // the vnodes it is a candidate for; lease.go
	wg      sync.WaitGroup
	stopped bool
}

// New makes a controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("controller: no Kubernetes client")
	}
	cfg.Env = cmp.Or(cfg.Env, "dev")
	cfg.HeartbeatTimeout = cmp.Or(cfg.HeartbeatTimeout, 25*time.Second)
	cfg.DeadAfter = max(cmp.Or(cfg.DeadAfter, 60*time.Second), cfg.HeartbeatTimeout)
	cfg.SyncInterval = cmp.Or(cfg.SyncInterval, 5*time.Second)
	cfg.Workers = cmp.Or(cfg.Workers, 4)
	cfg.ResyncPeriod = cmp.Or(cfg.ResyncPeriod, time.Minute)
	cfg.LeaseNamespace = cmp.Or(cfg.LeaseNamespace, corev1.NamespaceNodeLease)
	cfg.LeaseDuration = cmp.Or(cfg.LeaseDuration, 20*time.Second)
	cfg.RenewDeadline = cmp.Or(cfg.RenewDeadline, 15*time.Second)
	cfg.RetryPeriod = cmp.Or(cfg.RetryPeriod, 5*time.Second)
	if cfg.Identity == "" {
		cfg.Identity = defaultIdentity()
	}
	if float64(cfg.RenewDeadline) <= 1.2*float64(cfg.RetryPeriod) || cfg.RenewDeadline >= cfg.LeaseDuration { // client-go's leader election rules
		return nil, fmt.Errorf("controller: want lease retry period %v × 1.2 < renew deadline %v < duration %v", cfg.RetryPeriod, cfg.RenewDeadline, cfg.LeaseDuration)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		cfg:   cfg,
		log:   cfg.Logger,
		http:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}},
		nodes: map[string]*vnode{},
	}
	c.claims = map[string]*claim{}
	// One informer for every vnode: module pods only, whatever node; each pod controller filters by node name.
	c.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.ResyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{LabelComponent: ComponentModule}.String()
		}))
	c.pods = c.factory.Core().V1().Pods()
	c.pods.Informer() // register before Start
	c.unused = informers.NewSharedInformerFactory(cfg.Client, 0)
	c.events = record.NewBroadcaster()
	c.recorder = c.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kouple-controller"})
	return c, nil
}

// Run starts the shared informer and event sink, serves vnodes as bases heartbeat, and on ctx's end stops
// every vnode and returns.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.events.StartRecordingToSink(&corev1client.EventSinkImpl{Interface: c.cfg.Client.CoreV1().Events("")})
	defer c.events.Shutdown()
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	for typ, ok := range c.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("controller: informer for %v did not sync", typ)
		}
	}
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()
	if err := c.watchVNodes(ctx); err != nil {
		return err
	}
	c.log.Info("controller running", "env", c.cfg.Env, "identity", c.cfg.Identity)
	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
	c.log.Info("controller stopped")
	return nil
}

// ErrNotRunning is answered to heartbeats before Run has started or after it ended.
var ErrNotRunning = errors.New("controller not running")

// Heartbeat records a base's heartbeat, starting its vnode at the first one.
func (c *Controller) Heartbeat(st BaseStatus) error {
	if err := st.validate(); err != nil {
		return err
	}
	st.Env = cmp.Or(st.Env, c.cfg.Env)
	name := NodeName(st.BaseMetadata.Identity, st.Env)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runCtx == nil || c.stopped {
		return ErrNotRunning
	}
	if v := c.nodes[name]; v != nil {
		v.heartbeat(st)
		return nil
	}
	// Not driven here (yet): stand for its lease; the holder, whichever controller it is, drives it.
	c.claimVNode(name, st, nil)
	return nil
}

// startVNode builds virtual-kubelet's node and pod controllers for v on the shared informer and runs them, with
// v's own loop, until ctx ends. Called with c.mu held.
func (c *Controller) startVNode(ctx context.Context, v *vnode) error {
	v.mu.Lock()
	spec := v.buildNode()
	v.mu.Unlock()
	nc, err := node.NewNodeController(v, spec, c.cfg.Client.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1(c.cfg.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease), 0))
	if err != nil {
		return err
	}
	pc, err := node.NewPodController(node.PodControllerConfig{
		PodClient:         c.cfg.Client.CoreV1(),
		PodInformer:       c.pods,
		EventRecorder:     c.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: path.Join(v.name, "pod-controller")}),
		Provider:          v,
		ConfigMapInformer: c.unused.Core().V1().ConfigMaps(),
		SecretInformer:    c.unused.Core().V1().Secrets(),
		ServiceInformer:   c.unused.Core().V1().Services(),
		// The provider resolves env itself (podconfig.go: GETs of the ConfigMaps and Secrets a pod names,
		// retried at each module sync), so no cluster-wide Secret/ConfigMap/Service informers and no list RBAC.
		SkipDownwardAPIResolution: true,
		PodEventFilterFunc: func(_ context.Context, p *corev1.Pod) bool {
			return p.Spec.NodeName == v.name
		},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	c.wg.Go(func() {
		defer close(v.stopped)
		defer cancel()
		done := make(chan struct{})
		go func() { // owned: ends with pc.Run, awaited below
			defer close(done)
			if err := pc.Run(ctx, c.cfg.Workers); err != nil && ctx.Err() == nil {
				v.log.Error("pod controller stopped", "err", err)
			}
		}()
		select {
		case <-pc.Ready():
		case <-done:
			return
		}
		ncDone := make(chan struct{})
		go func() {
			defer close(ncDone)
			if err := nc.Run(ctx); err != nil && ctx.Err() == nil {
				v.log.Error("node controller stopped", "err", err)
			}
		}()
		select {
		case <-nc.Ready(): // the node exists and takes status updates
			v.run(ctx)
		case <-ncDone:
		case <-ctx.Done():
		}
		cancel()
		<-ncDone
		<-done
	})
	return nil
}

// VNodes lists the vnodes and the module versions their pods hold.
func (c *Controller) VNodes() map[string][]string {
	c.mu.Lock()
	nodes := make([]*vnode, 0, len(c.nodes))
	for _, v := range c.nodes {
		nodes = append(nodes, v)
	}
	c.mu.Unlock()
	out := map[string][]string{}
	for _, v := range nodes {
		out[v.name] = v.modules()
	}
	return out
}

// BaseStatus is a base's heartbeat: Koupleless ModuleController's HTTP-tunnel BaseStatus plus Kouple's fields.
type BaseStatus struct {
	BaseMetadata  BaseMetadata `json:"baseMetadata"`
	LocalIP       string       `json:"localIP"`
	LocalHostName string       `json:"localHostName"`
	Port          int          `json:"port"`
	State         string       `json:"state"`
	// Kouple's extras: where the agent and gateway are, the base's environment and stack.
	AgentURL   string `json:"agentURL"`
	GatewayURL string `json:"gatewayURL"`
	Env        string `json:"env"`
	Stack      string `json:"stack"`
}

// BaseMetadata identifies a base.
type BaseMetadata struct {
	Identity    string `json:"identity"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	ClusterName string `json:"clusterName"`
}

func (st *BaseStatus) validate() error {
	id := st.BaseMetadata.Identity
	if id == "" {
		return errors.New("heartbeat without baseMetadata.identity")
	}
	if !dns1123(id) || (st.Env != "" && !dns1123(st.Env)) {
		return fmt.Errorf("heartbeat: identity %q and env %q must be lower-case letters, digits and dashes (they name the node)", id, st.Env)
	}
	if st.AgentURL == "" {
		if st.LocalIP == "" || st.Port == 0 {
			return fmt.Errorf("heartbeat from base %s says neither agentURL nor localIP and port", id)
		}
		st.AgentURL = fmt.Sprintf("http://%s:%d", st.LocalIP, st.Port)
	}
	return nil
}

func dns1123(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	return !slices.ContainsFunc([]byte(s), func(b byte) bool {
		return !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-')
	})
}
