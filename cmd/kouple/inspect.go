package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
)

func inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print the manifest embedded in an artifact",
		Long:  "Print the manifest embedded in a module artifact; fails on a file that is not a Kouple module.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			kind, err := artifact.Detect(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if kind == artifact.KindPlugin {
				info, err := artifact.ReadPlugin(data)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				if err := printManifest(cmd.OutOrStdout(), info.Manifest, kind, len(data)); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "# built by %s as Go module %s (%s)\n", info.Build.GoVersion, info.Build.Path, buildFlags(info.Build))
				return nil
			}
			info, err := artifact.ReadWasm(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return printManifest(cmd.OutOrStdout(), info.Manifest, kind, len(data))
		},
	}
}

func printManifest(w io.Writer, m *manifest.Manifest, kind artifact.Kind, size int) error {
	b, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "# %s artifact, %d bytes\n", kind, size)
	_, err = io.WriteString(w, strings.TrimRight(string(b), "\n")+"\n")
	return err
}

// buildFlags summarises the settings a base must share with a plugin.
func buildFlags(bi *artifact.BuildInfo) string {
	var out []string
	for _, k := range []string{"-trimpath", "-race", "-tags", "CGO_ENABLED", "GOARCH", "GOAMD64"} {
		if v := bi.Settings[k]; v != "" {
			out = append(out, k+"="+v)
		}
	}
	return strings.Join(out, " ")
}
