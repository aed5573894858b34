package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/bench"
)

func benchCmd() *cobra.Command {
	var cfg bench.Config
	var out string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Compare Kouple with real baselines: deploy, density, calls, serving, concurrency, churn, guard",
		Long: `Run each comparison against a baseline run in the same invocation — the same example service built natively
and run as its own process, loopback HTTP and gRPC between two processes, an Extism host calling a plugin — print
the table and write table.md and chart.png to --out. The base and the load generator run as child processes of
this binary. Modules are built from the Kouple repository: --repo, else the current directory or one above it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Log = os.Stderr
			// Interrupted, the bench still stops its children and removes its temporary directory.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			rep.WriteText(os.Stdout)
			if out != "" {
				if err := rep.WriteFiles(out); err != nil {
					return err
				}
				fmt.Printf("wrote %s/table.md and %s/chart.png\n", out, out)
			}
			if len(rep.Failures) > 0 {
				return fmt.Errorf("%d comparison(s) failed", len(rep.Failures))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&cfg.Quick, "quick", false, "the quick suite: smaller N and counts (under 3 minutes on 2 cores)")
	cmd.Flags().StringVar(&out, "out", "", "directory for table.md and chart.png")
	cmd.Flags().StringVar(&cfg.Repo, "repo", ".", "the Kouple repository (its examples are built)")
	cacheDir, pluginCache := filepath.Join(os.TempDir(), "kouple-bench-cache"), filepath.Join(os.TempDir(), "kouple-bench-plugins")
	if d, err := os.UserCacheDir(); err == nil {
		cacheDir, pluginCache = filepath.Join(d, "kouple", "bench-wasm"), filepath.Join(d, "kouple", "bench-plugins")
	}
	cmd.Flags().StringVar(&cfg.CacheDir, "cache-dir", cacheDir, "compile cache kept across runs (the uncached install uses a fresh one); empty: a new one per run")
	cmd.Flags().StringVar(&cfg.PluginCache, "plugin-cache", pluginCache, "native modules built for this kouple binary, kept across runs; empty: built anew each run")
	cmd.Flags().StringSliceVar(&cfg.Only, "only", nil, "run only these comparisons (deploy, density, calls, serving, concurrency, churn, services, guard, fleet)")
	return cmd
}

// benchLoadCmd is the load generator `kouple bench` runs as a process of its own.
func benchLoadCmd() *cobra.Command {
	var c int
	var d time.Duration
	cmd := &cobra.Command{
		Use:    "bench-load URL",
		Short:  "Load generator of kouple bench: GET URL from -c connections for -d, print JSON",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res := bench.Load(context.Background(), args[0], c, d)
			return json.NewEncoder(os.Stdout).Encode(res)
		},
	}
	cmd.Flags().IntVarP(&c, "concurrency", "c", 1, "concurrent connections")
	cmd.Flags().DurationVarP(&d, "duration", "d", 2*time.Second, "how long")
	return cmd
}

// benchGRPCCmd is the gRPC echo server of kouple bench's call comparison.
func benchGRPCCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "bench-grpc ADDR",
		Short:  "gRPC echo server of kouple bench",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return bench.ServeGRPC(cmd.Context(), args[0])
		},
	}
}
