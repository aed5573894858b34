package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/builder"
)

func deployCmd() *cobra.Command {
	var addr target
	var version string
	var noSwitch bool
	cmd := &cobra.Command{
		Use:   "deploy DIR|FILE|URL",
		Short: "Build (for a directory), install and switch to a module version",
		Long: `Deploy a module: build DIR first (or take an artifact FILE or URL), install it in the base, and make it
the active version unless --no-switch. The version that was active stays installed for a rollback
(kouple switch NAME:OLDVERSION); older ones are uninstalled.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			c := newClient(addr)
			url, cleanup, err := artifactURL(ctx, args[0], version, out, func(ctx context.Context) (*artifact.BuildInfo, error) {
				return c.baseInfo(ctx)
			})
			if err != nil {
				return err
			}
			defer cleanup()
			fmt.Fprintf(out, "installing %s\n", url)
			var res agent.ClientResponse
			if err := c.do(ctx, "installBiz", agent.InstallRequest{BizURL: url, Replace: true}, &res); err != nil {
				return err
			}
			if len(res.BizInfos) == 0 {
				return fmt.Errorf("the base answered no module: %s", res.Message)
			}
			info := res.BizInfos[0]
			fmt.Fprintf(out, "installed %s:%s (%s) in %d ms\n", info.BizName, info.BizVersion, info.BizState, res.ElapsedSpace)
			if !noSwitch && info.BizState != "ACTIVATED" {
				if err := c.do(ctx, "switchBiz", agent.BizRequest{BizName: info.BizName, BizVersion: info.BizVersion}, nil); err != nil {
					return err
				}
				fmt.Fprintf(out, "switched %s to %s\n", info.BizName, info.BizVersion)
			}
			if !noSwitch {
				pruneOld(ctx, c, info.BizName, info.BizVersion, out)
			}
			if gw := c.gatewayURL(ctx); gw != "" {
				fmt.Fprintf(out, "%s %s%s/\n", info.BizName, gw, info.WebContextPath)
			}
			return nil
		},
	}
	addBaseFlag(cmd, &addr)
	cmd.Flags().StringVar(&version, "version", "", "version to build DIR as, replacing its manifest's")
	cmd.Flags().BoolVar(&noSwitch, "no-switch", false, "install without making the new version active")
	return cmd
}

// artifactURL turns a deploy argument into an artifact URL, building a directory first.
func artifactURL(ctx context.Context, arg, version string, out interface{ Write([]byte) (int, error) }, baseInfo func(context.Context) (*artifact.BuildInfo, error)) (string, func(), error) {
	none := func() {}
	if strings.Contains(arg, "://") {
		return arg, none, nil
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return "", none, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", none, err
	}
	if !fi.IsDir() {
		return "file://" + abs, none, nil
	}
	tmp, err := os.MkdirTemp("", "kouple-deploy-")
	if err != nil {
		return "", none, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	fmt.Fprintf(out, "building %s\n", arg)
	res, err := builder.Build(ctx, abs, builder.Options{Version: version, Out: filepath.Join(tmp, "module"), BaseFrom: baseInfo})
	if err != nil {
		cleanup()
		return "", none, err
	}
	fmt.Fprintf(out, "built %s\n", res.Manifest.ID())
	return "file://" + res.Path, cleanup, nil
}

// pruneOld uninstalls the versions of name other than the new one and the one it replaced.
func pruneOld(ctx context.Context, c *client, name, current string, out interface{ Write([]byte) (int, error) }) {
	infos, err := c.modules(ctx)
	if err != nil {
		return
	}
	var others []agent.BizInfo
	for _, in := range infos {
		if in.BizName == name && in.BizVersion != current {
			others = append(others, in)
		}
	}
	// Keep the most recently deactivated version for rollback.
	keep := ""
	var latest int64
	for _, in := range others {
		if n := len(in.BizStateRecords); n > 0 && in.BizState == "DEACTIVATED" && in.BizStateRecords[n-1].ChangeTime >= latest {
			keep, latest = in.BizVersion, in.BizStateRecords[n-1].ChangeTime
		}
	}
	for _, in := range others {
		if in.BizVersion == keep {
			continue
		}
		if err := c.do(ctx, "uninstallBiz", agent.BizRequest{BizName: name, BizVersion: in.BizVersion}, nil); err == nil {
			fmt.Fprintf(out, "uninstalled %s:%s\n", name, in.BizVersion)
		}
	}
	if keep != "" {
		fmt.Fprintf(out, "kept %s:%s for rollback (kouple switch %s:%s)\n", name, keep, name, keep)
	}
}

func undeployCmd() *cobra.Command {
	var addr target
	cmd := &cobra.Command{
		Use:   "undeploy NAME[:VERSION]",
		Short: "Uninstall a module version, or every version of a module",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, _ := strings.Cut(args[0], ":")
			if err := newClient(addr).do(cmd.Context(), "uninstallBiz", agent.BizRequest{BizName: name, BizVersion: version}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "uninstalled %s\n", args[0])
			return nil
		},
	}
	addBaseFlag(cmd, &addr)
	return cmd
}

func switchCmd() *cobra.Command {
	var addr target
	cmd := &cobra.Command{
		Use:   "switch NAME:VERSION",
		Short: "Make an installed version the active one (roll forward or back)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, ok := strings.Cut(args[0], ":")
			if !ok || name == "" || version == "" {
				return fmt.Errorf("give NAME:VERSION, such as hello:1.0.0")
			}
			if err := newClient(addr).do(cmd.Context(), "switchBiz", agent.BizRequest{BizName: name, BizVersion: version}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is active\n", args[0])
			return nil
		},
	}
	addBaseFlag(cmd, &addr)
	return cmd
}

func statusCmd() *cobra.Command {
	var addr target
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the base's modules: version, state, active, instances, memory, requests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			infos, err := newClient(addr).modules(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(infos)
			case "", "table":
			default:
				return fmt.Errorf("-o %q: use table or json", output)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tSTATE\tACTIVE\tINSTANCES\tMEMORY\tREQUESTS\tERRORS\tIN-FLIGHT\tRESTARTS\tPATH")
			for _, in := range infos {
				active := ""
				if in.Active {
					active = "*"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%.1f MiB\t%d\t%d\t%d\t%d\t%s\n", in.BizName, in.BizVersion, in.BizState, active,
					in.Stats.Instances, float64(in.Stats.MemoryBytes)/(1<<20), in.Stats.Requests, in.Stats.Errors, in.Stats.InFlight,
					in.Stats.Restarts, in.WebContextPath)
			}
			if len(infos) == 0 {
				fmt.Fprintln(w, "(no modules)")
			}
			return w.Flush()
		},
	}
	addBaseFlag(cmd, &addr)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func gcCmd() *cobra.Command {
	var addr target
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove stored artifacts that no installed module version uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res struct {
				Removed []string `json:"removed"`
			}
			if err := newClient(addr).do(cmd.Context(), "gc", struct{}{}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d artifacts\n", len(res.Removed))
			return nil
		},
	}
	addBaseFlag(cmd, &addr)
	return cmd
}
