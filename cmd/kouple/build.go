package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/builder"
)

func buildCmd() *cobra.Command {
	var opts builder.Options
	cmd := &cobra.Command{
		Use:   "build DIR",
		Short: "Build the module in DIR into an artifact with its manifest embedded",
		Long: `Build the module in DIR (a Go main package with a kouple.yaml beside it) for its runtime and embed
the manifest, so the artifact describes itself. A wasm artifact is a plain .wasm file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
	cmd.Flags().StringVar(&opts.Runtime, "runtime", "", "runtime to build for (wasm), replacing the manifest's")
	return cmd
}
