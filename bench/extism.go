package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	extism "github.com/extism/go-sdk"
)

// The Extism baseline: the Extism Go SDK (a host on wazero, like Kouple) calling the noop plugin its module
// ships (wasm/noop.wasm, function run_test), in the bench process. The input of size bytes is copied into the
// plugin; the noop plugin answers nothing back, so this is the cheaper half of a round trip.

func (r *runner) startExtism(ctx context.Context) (func(size int) error, func(), error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/extism/go-sdk")
	cmd.Dir = r.cfg.Repo
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("locate the Extism Go SDK module (go list -m): %v", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "wasm", "noop.wasm")
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("the Extism Go SDK module ships no wasm/noop.wasm: %v", err)
	}
	plugin, err := extism.NewPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmFile{Path: path}}}, extism.PluginConfig{EnableWasi: true}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("extism: %v", err)
	}
	payloads := map[int][]byte{}
	call := func(size int) error {
		in, ok := payloads[size]
		if !ok {
			in = make([]byte, size)
			payloads[size] = in
		}
		rc, _, err := plugin.Call("run_test", in)
		if err != nil {
			return err
		}
		if rc != 0 {
			return fmt.Errorf("extism run_test returned %d", rc)
		}
		return nil
	}
	return call, func() { plugin.Close(ctx) }, nil
}
