// Package base is a Kouple base: one process hosting modules behind one HTTP gateway, driven through an
// Arklet-compatible agent, remembering its modules across restarts. `kouple base` runs one; any Go program can
// embed one with New and Start.
package base

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/module"
	"github.com/kouple/kouple/observe"
	"github.com/kouple/kouple/runtime"
	"github.com/kouple/kouple/runtime/native"
	"github.com/kouple/kouple/runtime/wasm"
	"github.com/kouple/kouple/services"
	"github.com/kouple/kouple/store"
)

// Config configures a base. Zero values take the defaults.
type Config struct {
	HTTPAddr  string // gateway; default 127.0.0.1:8080
	AgentAddr string // agent; default 127.0.0.1:1238
	DataDir   string // default $HOME/.kouple/base
	// CacheDir holds compiled wasm code; default <DataDir>/cache/wasm. A cache dir shared by several bases
	// is never garbage collected.
	CacheDir   string
	ModulesDir string // artifacts to install at start (Koupleless's static merge)
	Modules    []string
	Name       string // base name; default kouple-base
	Version    string // base version; default 1.0.0
	Cluster    string // cluster name; default default
	Env        string // environment; default dev
	// AuthAlways requires a credential on every agent request, on loopback too.
	AuthAlways bool
	// Insecure lets an agent listening beyond loopback take requests without a credential.
	Insecure bool
	// TokensFile lists further bearer tokens: `ROLE TOKEN [NAME]` per line.
	TokensFile string
	// TLSCert and TLSKey make the agent serve HTTPS; ClientCA makes it require client certificates signed by
	// that CA (mTLS).
	TLSCert, TLSKey, ClientCA string
	// Services is the operator's policy for base services (kv, sql, config, custom ones).
	Services services.Policy
	// SQLDSN, when set, runs modules' SQL on this PostgreSQL server (postgres://USER:PASSWORD@HOST/DATABASE)
	// instead of SQLite files in DataDir: a database and a role per module, named after DATABASE.
	SQLDSN string
	// SharedConfig are keys every module granted "config" reads; ModuleConfig the keys of one module.
	SharedConfig map[string]string
	ModuleConfig map[string]map[string]string
	// OutboundTimeout bounds a module's outbound HTTP exchange through the base (default 30 s).
	OutboundTimeout time.Duration
	// Clock is the time module timers run on; nil is the real clock (tests pass a services.ManualClock).
	Clock services.Clock
	// RequireSignature refuses artifacts not signed by one of TrustedKeys (ed25519 public key files, PEM).
	RequireSignature bool
	TrustedKeys      []string
	// RecycleNativeBytes, when not 0, is how much code of uninstalled native modules (still mapped: Go cannot
	// unload a plugin) makes the base ask to be recycled: Recycle is closed, and the program embedding the base
	// shuts it down and starts it again, which replays its modules from the data dir.
	RecycleNativeBytes int64
	// DrainTimeout bounds how long shutdown waits for requests in flight.
	DrainTimeout time.Duration
	// ArtifactGrace is how long an unused artifact is kept before garbage collection.
	ArtifactGrace time.Duration
	// LogDir, if set, receives each module's log records as JSON lines in <LogDir>/<module>.log (the base's own
	// in _base.log), rotated by size; LogRecords bounds the records kept in memory per module version.
	LogDir     string
	LogRecords int
	// ControllerURL makes the base send its heartbeat (Koupleless's BaseStatus) to <ControllerURL>/heartbeat
	// every HeartbeatInterval (default 10 s), with ControllerToken as a bearer token when set.
	ControllerURL     string
	ControllerToken   string
	HeartbeatInterval time.Duration
	// NoGuard loads wasm modules without the fuel guard (wasm.Config.NoGuard): a computing module then stalls
	// the whole base and cannot be stopped. Only for measuring what the guard costs and buys (kouple bench).
	NoGuard bool
	Logger  *slog.Logger
}

// DefaultDataDir is the data dir used when none is given: $HOME/.kouple/base.
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".kouple", "base")
}

func (c *Config) fill() {
	c.HTTPAddr = cmp.Or(c.HTTPAddr, "127.0.0.1:8080")
	c.AgentAddr = cmp.Or(c.AgentAddr, "127.0.0.1:1238")
	c.DataDir = cmp.Or(c.DataDir, DefaultDataDir())
	c.Name = cmp.Or(c.Name, "kouple-base")
	c.Version = cmp.Or(c.Version, "1.0.0")
	c.Cluster = cmp.Or(c.Cluster, "default")
	c.Env = cmp.Or(c.Env, "dev")
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, 10*time.Second)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 30*time.Second)
	c.ArtifactGrace = cmp.Or(c.ArtifactGrace, time.Hour)
	c.OutboundTimeout = cmp.Or(c.OutboundTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Base is a running base.
type Base struct {
	cfg      Config
	logger   *slog.Logger
	store    *store.Store
	wasm     *wasm.Runtime
	native   *native.Runtime // nil if this program cannot load plugins
	registry *module.Registry
	agent    *agent.Agent
	logs     *observe.Hub // every module version's log records, and the base's own
	metrics  *metrics
	id       string
	started  time.Time

	gatewaySrv, agentSrv *http.Server
	gatewayLn, agentLn   net.Listener
	serveErr             chan error
	recycle              chan struct{} // closed when the base should be recycled (recycleOnce)
	release              chan struct{} // an install or uninstall left garbage to return to the OS (releaseMemory)
	recycleOnce          sync.Once
	stop                 chan struct{} // closed at shutdown: ends the garbage collector
	ownCache             bool          // the compile cache is this base's alone, so it may collect it
	insecure             bool          // the agent listens beyond loopback without requiring credentials
	authRequired         bool
	trusted              []ed25519.PublicKey
	policy               *services.Policy
	kv                   *services.KV
	sql                  *services.SQL
	outbound             *services.Outbound
	events               *services.Events
	timers               *services.Timers
	syncMu               sync.Mutex // one syncServices at a time
	wg                   sync.WaitGroup
	closeOnce            sync.Once
}

// New opens the data dir and prepares the runtimes. It fails at once if another base holds the data dir.
func New(cfg Config) (*Base, error) {
	cfg.fill()
	st, err := store.Open(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	id, err := st.BaseID(func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return hex.EncodeToString(b)
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	logs, err := observe.NewHub(observe.HubConfig{PerVersion: cfg.LogRecords, Dir: cfg.LogDir})
	if err != nil {
		st.Close()
		return nil, err
	}
	// Every record of the base goes through the hub: a module's (its logger carries module and version
	// attributes, given by the registry) into that module version's ring, the base's own into its ring; all
	// still reach the configured logger.
	cfg.Logger = slog.New(logs.Handler(cfg.Logger.Handler()))
	ownCache := cfg.CacheDir == ""
	if ownCache {
		cfg.CacheDir = filepath.Join(cfg.DataDir, "cache", "wasm")
	}
	w, err := wasm.New(wasm.Config{CacheDir: cfg.CacheDir, NoGuard: cfg.NoGuard, Logger: cfg.Logger})
	if err != nil {
		st.Close()
		return nil, err
	}
	if cfg.NoGuard {
		cfg.Logger.Warn("wasm modules load without the fuel guard: a module that computes stalls the whole base (a benchmarking setting)")
	}
	b := &Base{
		cfg:      cfg,
		logger:   cfg.Logger,
		store:    st,
		wasm:     w,
		id:       id,
		serveErr: make(chan error, 2),
		recycle:  make(chan struct{}),
		release:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
		ownCache: ownCache,
		logs:     logs,
	}
	b.metrics = newMetrics(b)
	runtimes := map[string]runtime.Runtime{"wasm": w}
	if b.native = newNative(cfg.DataDir, cfg.Logger); b.native != nil {
		runtimes["native"] = b.native
	}
	b.registry = module.NewRegistry(runtimes, cfg.Logger)
	b.registry.SetJournal(journal{st})
	b.policy = &b.cfg.Services
	if b.kv, err = services.OpenKV(filepath.Join(cfg.DataDir, "kv.db"), b.policy); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.SQLDSN != "" {
		b.sql, err = services.OpenPostgres(context.Background(), cfg.SQLDSN, b.policy)
	} else {
		b.sql, err = services.OpenSQL(filepath.Join(cfg.DataDir, "sql"), b.policy)
	}
	if err != nil {
		b.kv.Close()
		st.Close()
		return nil, err
	}
	b.registry.RegisterService("kv", b.kv.Host())
	b.registry.RegisterService("sql", b.sql.Host())
	b.registry.RegisterService("config", (&services.Config{PerModule: cfg.ModuleConfig, Shared: cfg.SharedConfig, Policy: b.policy}).Host())
	if err := b.openSharing(); err != nil {
		b.sql.Close()
		b.kv.Close()
		st.Close()
		return nil, err
	}
	b.insecure = cfg.Insecure && !loopbackOnly(cfg.AgentAddr)
	auth := agent.NewAuth(cfg.AuthAlways || !loopbackOnly(cfg.AgentAddr) && !cfg.Insecure, cfg.Logger)
	if _, err := auth.EnsureTokenFile(filepath.Join(cfg.DataDir, "token")); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.TokensFile != "" {
		if err := auth.LoadTokens(cfg.TokensFile); err != nil {
			st.Close()
			return nil, err
		}
	}
	for _, path := range cfg.TrustedKeys {
		key, err := artifact.LoadPublicKey(path)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("trusted key: %w", err)
		}
		b.trusted = append(b.trusted, key)
	}
	if cfg.RequireSignature && len(b.trusted) == 0 {
		st.Close()
		return nil, errors.New("--require-signature needs at least one --trusted-key: the public key(s) whose signatures this base accepts")
	}
	b.agent = agent.New(b, auth, cfg.Logger)
	b.authRequired = auth.Required
	return b, nil
}

// Service makes a service of the embedding program available to modules as name (with the capability
// "service:NAME", granted by the operator); add methods with services.Method.
func (b *Base) Service(name string) *services.Service {
	s := services.NewService(name, b.policy)
	b.registry.RegisterService(name, s)
	return s
}

// Granted lists the capabilities of a module version that this base grants.
func (b *Base) Granted(m *manifest.Manifest) []string { return b.policy.Granted(m) }

// Logs is the base's log hub: each module version's records, and the base's own.
func (b *Base) Logs() *observe.Hub { return b.logs }

// MetricsHandler serves the base's metrics in the Prometheus format (the agent's /metrics).
func (b *Base) MetricsHandler() http.Handler { return b.metrics.Handler() }

// Identity is the base's persisted identity.
func (b *Base) Identity() string { return b.id }

// Registry is the base's module registry.
func (b *Base) Registry() *module.Registry { return b.registry }

// Config is the base's configuration, with defaults filled in.
func (b *Base) Config() Config { return b.cfg }

// Start listens on the gateway and agent addresses, brings back the modules the store remembers, installs
// the static modules, and serves. A port in use is an error that names it.
func (b *Base) Start(ctx context.Context) error {
	b.started = time.Now()
	var err error
	if b.gatewayLn, err = listen("gateway", b.cfg.HTTPAddr, "--http"); err != nil {
		return err
	}
	if b.agentLn, err = listen("agent", b.cfg.AgentAddr, "--agent"); err != nil {
		b.gatewayLn.Close()
		return err
	}
	b.restore(ctx)
	b.installStatic(ctx)
	b.syncServices()
	b.gatewaySrv = &http.Server{Handler: b, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(b.logger.Handler(), slog.LevelWarn)}
	b.agentSrv = &http.Server{Handler: b.agent, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(b.logger.Handler(), slog.LevelWarn)}
	b.agentSrv.RegisterOnShutdown(b.agent.StopStreams) // log followers must not hold the shutdown
	if b.cfg.TLSCert != "" {
		tc, err := serverTLS(b.cfg.TLSCert, b.cfg.TLSKey, b.cfg.ClientCA)
		if err != nil {
			b.gatewayLn.Close()
			b.agentLn.Close()
			return err
		}
		b.agentLn = tls.NewListener(b.agentLn, tc)
	} else if b.cfg.ClientCA != "" {
		b.gatewayLn.Close()
		b.agentLn.Close()
		return errors.New("--client-ca needs --tls-cert and --tls-key: mutual TLS runs over the agent's HTTPS")
	}
	if b.insecure {
		b.logger.Warn("INSECURE: the agent listens beyond loopback and takes requests without a credential (--insecure): anyone who reaches " + b.cfg.AgentAddr + " can run code in this base")
	}
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{b.gatewaySrv, b.gatewayLn}, {b.agentSrv, b.agentLn}} {
		b.wg.Go(func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.serveErr <- err
			}
		})
	}
	b.wg.Go(b.collectGarbage)
	b.wg.Go(b.releaseMemory)
	if b.cfg.ControllerURL != "" {
		b.wg.Go(b.heartbeat)
	}
	b.logger.Info("base started", "id", b.id, "gateway", "http://"+b.gatewayLn.Addr().String(), "agent", "http://"+b.agentLn.Addr().String(), "dataDir", b.cfg.DataDir)
	return nil
}

func listen(what, addr, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, errAddrInUse) {
			return nil, fmt.Errorf("%s address %s is in use: another base or program listens there; stop it or choose another with %s", what, addr, flag)
		}
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	return ln, nil
}

// GatewayURL is the gateway's base URL.
func (b *Base) GatewayURL() string { return "http://" + b.gatewayLn.Addr().String() }

// AgentURL is the agent's base URL.
func (b *Base) AgentURL() string {
	if b.cfg.TLSCert != "" {
		return "https://" + b.agentLn.Addr().String()
	}
	return "http://" + b.agentLn.Addr().String()
}

// loopbackOnly reports whether addr listens only on loopback (an unspecified host listens everywhere).
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serverTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("agent TLS certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", clientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Recycle is closed once the code held by uninstalled native modules reaches Config.RecycleNativeBytes: the
// process should then shut the base down and start it again (`kouple base` re-executes itself).
func (b *Base) Recycle() <-chan struct{} { return b.recycle }

// Err reports a listener that failed after Start.
func (b *Base) Err() <-chan error { return b.serveErr }

// Shutdown stops accepting, lets requests in flight finish (up to the drain timeout or ctx), stops every module
// and releases the data dir.
func (b *Base) Shutdown(ctx context.Context) error {
	var errs []error
	b.closeOnce.Do(func() {
		dctx, cancel := context.WithTimeout(ctx, b.cfg.DrainTimeout)
		defer cancel()
		b.logger.Info("base stopping: draining requests")
		close(b.stop)
		for _, s := range []*http.Server{b.gatewaySrv, b.agentSrv} {
			if s != nil {
				if err := s.Shutdown(dctx); err != nil {
					errs = append(errs, fmt.Errorf("drain: %w", err))
					s.Close()
				}
			}
		}
		b.wg.Wait()
		b.agent.Close()
		errs = append(errs, b.timers.Close(), b.events.Close()) // no deliveries to stopping modules
		b.registry.Close(ctx)
		b.outbound.Close()
		errs = append(errs, b.wasm.Close(context.Background()), b.sql.Close(), b.kv.Close(), b.store.Close())
		b.logs.Close()
		b.logger.Info("base stopped")
	})
	return errors.Join(errs...)
}

// afterChange asks releaseMemory to run, without waiting for it.
func (b *Base) afterChange() {
	select {
	case b.release <- struct{}{}:
	default:
	}
}

// releaseMemory returns to the OS, once installs and uninstalls have paused for two seconds, the memory
// they left behind: an install holds the artifact several times over (fetched, stored, instrumented) and
// compiles, tens of MB that Go's scavenger would otherwise give back only over minutes, so that the base's RSS —
// what status, health and an operator see — is what its modules use.
func (b *Base) releaseMemory() {
	const settle = 2 * time.Second // not between the installs of a deploy or a batch: re-faulting costs them
	for {
		select {
		case <-b.stop:
			return
		case <-b.release:
		}
		for quiet := false; !quiet; {
			select {
			case <-b.stop:
				return
			case <-b.release: // another change: wait again
			case <-time.After(settle):
				quiet = true
			}
		}
		debug.FreeOSMemory()
	}
}

// collectGarbage removes, every quarter of the grace period, the artifacts and compiled code that no version
// has used for the grace period.
func (b *Base) collectGarbage() {
	t := time.NewTicker(b.cfg.ArtifactGrace / 4)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		var keep []string
		for _, mod := range b.registry.Modules() {
			for _, v := range mod.Versions() {
				keep = append(keep, v.Digest)
			}
		}
		removed, err := b.store.GC(b.cfg.ArtifactGrace, keep...)
		if err != nil {
			b.logger.Warn("garbage collection", "err", err)
			continue
		}
		if len(removed) > 0 && b.ownCache {
			b.wasm.RemoveCache(func(d string) bool { return !slices.Contains(removed, d) })
			b.logger.Info("garbage collected", "artifacts", len(removed))
		}
	}
}
