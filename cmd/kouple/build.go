package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/builder"
)

func buildCmd() *cobra.Command {
	var opts builder.Options
	var baseInfo string
	var t target
	cmd := &cobra.Command{
		Use:   "build DIR",
		Short: "Build the module in DIR into an artifact with its manifest embedded",
		Long: `Build the module in DIR (a Go main package with a kouple.yaml beside it) for its runtime and embed
the manifest, so the artifact describes itself. A wasm artifact is a plain .wasm file. A native artifact
(--runtime native, or runtime: native in kouple.yaml) is a Go plugin with the manifest appended; it is built
against a base's exact toolchain, flags and dependency versions: those of the running base at --base, or
those in --base-info FILE (the JSON of the base's health "native.buildInfo"), else this kouple's own.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("base") || baseInfo != "" {
				bi, err := loadBaseInfo(cmd, t, baseInfo)
				if err != nil {
					return err
				}
				opts.Base = bi
			}
			res, err := builder.Build(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s (%s runtime) -> %s\n", res.Manifest.ID(), res.Manifest.Runtime, res.Path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&opts.Out, "output", "o", "", "artifact path (default <name>-<version>.wasm)")
	cmd.Flags().StringVar(&opts.Version, "version", "", "version to build, replacing the manifest's")
	cmd.Flags().StringVar(&opts.Runtime, "runtime", "", "runtime to build for (wasm or native), replacing the manifest's")
	cmd.Flags().StringVar(&baseInfo, "base-info", "", "native: build against the base build information in this JSON file")
	addBaseFlag(cmd, &t)
	cmd.Flags().Lookup("base").Usage = "native: build against the base whose agent is at this URL"
	return cmd
}

// loadBaseInfo reads how a base was built, from a file or from the base's health.
func loadBaseInfo(cmd *cobra.Command, t target, file string) (*artifact.BuildInfo, error) {
	var bi artifact.BuildInfo
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &bi); err != nil {
			return nil, fmt.Errorf("%s: not base build information: %w", file, err)
		}
	} else {
		b, err := newClient(t).baseInfo(cmd.Context())
		if err != nil {
			return nil, err
		}
		bi = *b
	}
	if bi.GoVersion == "" || bi.Settings == nil {
		return nil, fmt.Errorf("base build information without a Go version or settings")
	}
	return &bi, nil
}

// baseInfo asks the base how it was built, for a native build.
func (c *client) baseInfo(ctx context.Context) (*artifact.BuildInfo, error) {
	var h struct {
		HealthData struct {
			Native struct {
				Available bool                `json:"available"`
				BuildInfo *artifact.BuildInfo `json:"buildInfo"`
			} `json:"native"`
		} `json:"healthData"`
	}
	if err := c.do(ctx, "health", struct{}{}, &h); err != nil {
		return nil, fmt.Errorf("ask the base how it was built: %w", err)
	}
	if !h.HealthData.Native.Available || h.HealthData.Native.BuildInfo == nil {
		return nil, fmt.Errorf("the base at %s cannot load native modules", c.base)
	}
	return h.HealthData.Native.BuildInfo, nil
}
