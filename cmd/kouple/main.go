// Command kouple builds, inspects and (with a base) deploys Kouple modules.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "kouple",
		Short:         "Kouple: many Go modules hot-deployed into one long-running base",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(baseCmd(), buildCmd(), inspectCmd(), deployCmd(), undeployCmd(), switchCmd(), statusCmd(), logsCmd(), gcCmd(), newCmd(), keygenCmd(), signCmd(), verifyCmd(), pushCmd(), benchCmd(), benchLoadCmd(), benchGRPCCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kouple:", err)
		os.Exit(1)
	}
}
