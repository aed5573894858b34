package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/sdk"
)

// sdkVersion is the version of the SDK this kouple was built with, which a new module requires too: with
// -trimpath the compiler names the SDK's files by module path and version, so a native module loads into a base
// only if both agree (and the copy is the same source).
func sdkVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/kouple/kouple/sdk" {
				return d.Version
			}
		}
	}
	return "v0.0.0-00010101000000-000000000000" // what the repository's go.mod requires
}

// sdkDir is where `kouple new` puts the SDK's source inside a new module.
const sdkDir = "kouple-sdk"

func newCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "new NAME",
		Short: "Create a module that builds and deploys as it is, anywhere",
		Long: `Create directory NAME with a module: main.go (an HTTP handler registered with the SDK), kouple.yaml, and a
go.mod that takes the SDK from a copy in kouple-sdk/, so the module builds outside the Kouple repository.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			name := filepath.Base(dir)
			if err := manifest.ValidName(name); err != nil {
				return err
			}
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("%s already exists: choose another name or remove it", dir)
			}
			files := map[string]string{
				"go.mod":      fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire github.com/kouple/kouple/sdk %s\n\nreplace github.com/kouple/kouple/sdk => ./%s\n", name, sdkVersion(), sdkDir),
				"kouple.yaml": fmt.Sprintf("name: %s\nversion: 0.1.0\ncontextPath: /%s\nruntime: wasm\n", name, name),
				"main.go":     strings.ReplaceAll(mainTemplate, "NAME", name),
			}
			for path, content := range files {
				if err := writeNew(filepath.Join(dir, path), []byte(content)); err != nil {
					return err
				}
			}
			err := fs.WalkDir(sdk.Source, ".", func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := sdk.Source.ReadFile(path)
				if err != nil {
					return err
				}
				return writeNew(filepath.Join(dir, sdkDir, path), data)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created module %s in %s\n  kouple deploy %s    # build, install and switch in a running base\n  (cd %s && go run .)  # run it standalone on :8080\n", name, dir, dir, dir)
			return nil
		},
	}
}

func writeNew(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

const mainTemplate = `// Command NAME is a Kouple module.
package main

import (
	"fmt"
	"net/http"

	"github.com/kouple/kouple/sdk"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from %s %s!\n", sdk.Name(), sdk.Version())
	})
	sdk.Handle(mux) // register in init(): a Go plugin never runs main
}

func main() { sdk.Serve() }
`
