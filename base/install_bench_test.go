package base_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/internal/moduletest"
)

// BenchmarkInstallCached: hello installed into an embedded base from a warm compile cache and answering its
// first request, then uninstalled — the deploy comparison of kouple bench, without the agent's HTTP.
//
//	go test ./base -run '^$' -bench InstallCached -benchtime 10x -cpuprofile /tmp/install.prof
func BenchmarkInstallCached(b *testing.B) {
	bs := embedded(b, b.TempDir(), base.Config{})
	path := filepath.Join(b.TempDir(), "hello.wasm")
	os.WriteFile(path, moduletest.Build(b, "examples/hello", "1.0.0"), 0o644)
	ctx := context.Background()
	req := agent.InstallRequest{BizURL: "file://" + path, Activate: true}
	if _, err := bs.Install(ctx, req); err != nil { // fills the compile cache
		b.Fatal(err)
	}
	bs.Uninstall(ctx, "hello", "1.0.0")
	for b.Loop() {
		if _, err := bs.Install(ctx, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.Get(bs.GatewayURL() + "/hello/")
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(resp, err)
		}
		resp.Body.Close()
		b.StopTimer()
		bs.Uninstall(ctx, "hello", "1.0.0")
		b.StartTimer()
	}
}
