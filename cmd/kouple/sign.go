package main

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/artifact"
)

func keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen NAME",
		Short: "Make an ed25519 signing key pair: NAME.key (private, keep it secret) and NAME.pub",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := artifact.GenerateKey(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key and %s.pub (key id %s)\n", args[0], args[0], artifact.KeyID(pub))
			return nil
		},
	}
}

func signCmd() *cobra.Command {
	var keyFile, out string
	cmd := &cobra.Command{
		Use:   "sign --key NAME.key FILE",
		Short: "Sign an artifact: the signature travels in the artifact (a wasm custom section)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := artifact.LoadPrivateKey(keyFile)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			signed, err := artifact.Sign(data, key)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if out == "" {
				out = args[0]
			}
			if err := os.WriteFile(out, signed, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s with key %s\n", out, artifact.KeyID(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "private key (PEM, from kouple keygen)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write the signed artifact (default: in place)")
	cmd.MarkFlagRequired("key")
	return cmd
}

func verifyCmd() *cobra.Command {
	var keyFiles []string
	cmd := &cobra.Command{
		Use:   "verify --key NAME.pub FILE",
		Short: "Check an artifact's signature against trusted public keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var keys []ed25519.PublicKey
			for _, f := range keyFiles {
				k, err := artifact.LoadPublicKey(f)
				if err != nil {
					return err
				}
				keys = append(keys, k)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			id, err := artifact.Verify(data, keys)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: good signature by key %s\n", args[0], id)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keyFiles, "key", nil, "trusted public key (PEM); repeatable")
	cmd.MarkFlagRequired("key")
	return cmd
}

func pushCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "push FILE REGISTRY/REPO:TAG",
		Short: "Push an artifact to an OCI registry; install it from oci://REGISTRY/REPO@DIGEST",
		Long: `Push an artifact to an OCI registry, as an OCI image manifest whose single layer is the artifact
(media type application/vnd.kouple.module.wasm.v1). Credentials come from the Docker config, as for docker push.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			digest, err := artifact.Push(cmd.Context(), data, args[1])
			if err != nil {
				return err
			}
			repo := args[1]
			if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
				repo = repo[:i]
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s\ninstall it pinned: oci://%s@%s\n", args[1], strings.TrimPrefix(repo, "oci://"), digest)
			return nil
		},
	}
}
