package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/kouple/kouple/base"
)

// fileConfig is `kouple base --config FILE`: the same settings as the flags, and the modules to install.
type fileConfig struct {
	HTTP    string   `yaml:"http"`
	Agent   string   `yaml:"agent"`
	DataDir string   `yaml:"dataDir"`
	Modules []string `yaml:"modules"` // artifact URLs, installed at start
	Name    string   `yaml:"name"`
	Version string   `yaml:"version"`
	Cluster string   `yaml:"cluster"`
	Env     string   `yaml:"env"`
}

func baseCmd() *cobra.Command {
	var cfg base.Config
	var configFile, logLevel string
	var mbRecycle int64
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Run a base: one process hosting modules behind one gateway",
		Long: `Run a base. Modules are installed through the agent (Arklet-compatible, on --agent) and served through
the gateway (--http), routed by context path. The base remembers its modules in --data-dir and brings them back
at restart; --modules DIR and the config file's modules are installed at start (Koupleless's static merge).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile != "" {
				if err := applyConfigFile(cmd, configFile, &cfg); err != nil {
					return err
				}
			}
			if cfg.ControllerToken == "" {
				cfg.ControllerToken = os.Getenv("KOUPLE_CONTROLLER_TOKEN")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if cfg.SQLDSN == "" {
				cfg.SQLDSN = os.Getenv("KOUPLE_SQL_DSN")
			}
			return runBase(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8080", "gateway address")
	f.StringVar(&cfg.AgentAddr, "agent", "127.0.0.1:1238", "agent (command API) address")
	f.StringVar(&cfg.DataDir, "data-dir", base.DefaultDataDir(), "where the base keeps its modules across restarts")
	f.StringVar(&cfg.ModulesDir, "modules", "", "directory of artifacts to install at start")
	f.StringVar(&cfg.CacheDir, "cache-dir", "", "compiled wasm code, shareable by several bases (default <data-dir>/cache/wasm)")
	f.StringVar(&cfg.Name, "name", "kouple-base", "base name")
	f.StringVar(&cfg.Version, "version", "1.0.0", "base version")
	f.StringVar(&cfg.Cluster, "cluster", "default", "cluster name")
	f.StringVar(&cfg.Env, "env", "dev", "environment")
	f.BoolVar(&cfg.RequireSignature, "require-signature", false, "refuse artifacts not signed by a --trusted-key")
	f.StringArrayVar(&cfg.TrustedKeys, "trusted-key", nil, "ed25519 public key (PEM) whose signatures this base accepts; repeatable")
	f.StringArrayVar(&cfg.Services.Deny, "deny", nil, "capability the base refuses to modules even when requested (sql, kv, kv:NS, config, ...); repeatable")
	f.StringArrayVar(&cfg.Services.Allow, "grant", nil, "grant a capability that needs the operator: CAP or MODULE=CAP (outbound hosts: http:HOST, custom services: service:NAME); repeatable")
	f.Int64Var(&mbRecycle, "recycle-native-mb", 0, "when uninstalled native modules (whose code Go cannot unload) hold this many MB, drain and restart this base in place, replaying its modules; 0: never")
	f.StringVar(&cfg.SQLDSN, "sql-dsn", "", "run modules' database/sql on this PostgreSQL server (postgres://USER:PASSWORD@HOST/DATABASE; default $KOUPLE_SQL_DSN, which keeps the password off the command line) instead of SQLite files in the data dir")
	f.StringToStringVar(&cfg.SharedConfig, "share-config", nil, "KEY=VALUE every module granted \"config\" can read; repeatable")
	f.StringVar(&cfg.LogDir, "log-dir", "", "also write each module's log records to DIR/NAME.log (JSON lines, rotated at 10 MiB, 3 kept)")
	f.IntVar(&cfg.LogRecords, "log-records", 2000, "log records kept in memory per module version (kouple logs)")
	var authMode string
	f.StringVar(&authMode, "auth", "auto", "auto: credentials required when the agent listens beyond loopback; always: on loopback too")
	f.BoolVar(&cfg.Insecure, "insecure", false, "take agent requests without credentials beyond loopback (trusted networks only)")
	f.StringVar(&cfg.TokensFile, "tokens", "", "file of further bearer tokens, `ROLE TOKEN [NAME]` per line (ROLE read or admin)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve the agent over HTTPS with this certificate (PEM)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "the certificate's key (PEM)")
	f.StringVar(&cfg.ClientCA, "client-ca", "", "require agent clients to present a certificate signed by this CA (mTLS)")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if mbRecycle < 0 {
			return fmt.Errorf("--recycle-native-mb %d: give a size in MB, or 0 to never recycle", mbRecycle)
		}
		cfg.RecycleNativeBytes = mbRecycle << 20
		switch authMode {
		case "auto":
		case "always":
			cfg.AuthAlways = true
		default:
			return fmt.Errorf("--auth %q: use auto or always", authMode)
		}
		return nil
	}
	f.StringVar(&cfg.ControllerURL, "controller", "", "send heartbeats to this kouple-controller (http://host:port), which then drives this base")
	f.StringVar(&cfg.ControllerToken, "controller-token", "", "bearer token for the controller's heartbeat endpoint (default $KOUPLE_CONTROLLER_TOKEN)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 10*time.Second, "time between heartbeats to --controller")
	f.DurationVar(&cfg.OutboundTimeout, "outbound-timeout", 30*time.Second, "longest outbound HTTP exchange of a module through the base")
	f.StringVar(&configFile, "config", "", "YAML file with these settings and `modules:` artifact URLs to install at start")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	// A benchmarking aid (docs/benchmarks.md), hidden: a base without the guard is one runaway module away from
	// a stall of every module.
	f.BoolVar(&cfg.NoGuard, "no-guard", false, "load wasm modules without the fuel guard (benchmarking only)")
	f.MarkHidden("no-guard")
	return cmd
}

func applyConfigFile(cmd *cobra.Command, path string, cfg *base.Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	set := func(flag string, dst *string, v string) {
		if v != "" && !cmd.Flags().Changed(flag) {
			*dst = v
		}
	}
	set("http", &cfg.HTTPAddr, fc.HTTP)
	set("agent", &cfg.AgentAddr, fc.Agent)
	set("data-dir", &cfg.DataDir, fc.DataDir)
	set("name", &cfg.Name, fc.Name)
	set("version", &cfg.Version, fc.Version)
	set("cluster", &cfg.Cluster, fc.Cluster)
	set("env", &cfg.Env, fc.Env)
	cfg.Modules = append(cfg.Modules, fc.Modules...)
	return nil
}

func runBase(ctx context.Context, cfg base.Config) error {
	b, err := base.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := b.Start(ctx); err != nil {
		b.Shutdown(context.Background())
		return err
	}
	fmt.Fprintf(os.Stdout, "kouple base %s: gateway %s, agent %s\n", b.Identity(), b.GatewayURL(), b.AgentURL())
	for _, mod := range b.Modules() {
		if v := mod.Active(); v != nil {
			fmt.Fprintf(os.Stdout, "  %s %s\n", v.ID(), b.GatewayURL()+v.Manifest.ContextPath+"/")
		}
	}
	select {
	case <-ctx.Done():
	case err := <-b.Err():
		b.Shutdown(context.Background())
		return err
	case <-b.Recycle():
		// Uninstalled native modules hold too much code: drain, stop, and run this very command again in
		// this process, which replays the modules from the data dir into a fresh address space.
		stop()
		if err := b.Shutdown(context.Background()); err != nil {
			return fmt.Errorf("recycling: %w", err)
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("recycling: %w", err)
		}
		fmt.Fprintln(os.Stdout, "kouple base: recycling (uninstalled native modules held too much code): starting again")
		return fmt.Errorf("recycling: exec %s: %w", exe, syscall.Exec(exe, os.Args, os.Environ()))
	}
	stop()
	return b.Shutdown(context.Background())
}
