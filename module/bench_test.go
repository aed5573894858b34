package module_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/module"
)

// BenchmarkCall: a module-to-module round trip in one base (ping calls pong's echo), small and 4 KB payloads,
// against a loopback HTTP keep-alive call to the same method of the same module run as its own process.
//
//	go test ./module -run '^$' -bench Call -benchtime 2s
func BenchmarkCall(b *testing.B) {
	reg := newRegistry(b)
	if _, err := reg.Install(context.Background(), module.InstallRequest{Artifact: moduletest.Build(b, "module/testdata/bounce", "")}); err != nil {
		b.Fatal(err)
	}
	pong := moduletest.Variant(b, "module/testdata/bounce", "name: pong\nversion: 1.0.0\ncontextPath: /pong\nconfig: {PEER: ping}\n")
	if _, err := reg.Install(context.Background(), module.InstallRequest{Artifact: moduletest.Build(b, pong, "")}); err != nil {
		b.Fatal(err)
	}
	native := startNativeB(b, "module/testdata/bounce")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for _, size := range []int{8, 4096} {
		b.Run(fmt.Sprintf("wasm-module-to-module/%dB", size), func(b *testing.B) {
			in, _ := json.Marshal(map[string]int{"N": b.N, "Size": size})
			out, err := reg.Call(context.Background(), "bench", "ping", "calls", in)
			if err != nil {
				b.Fatal(err)
			}
			var ns int64
			json.Unmarshal(out, &ns)
			b.ReportMetric(float64(ns)/float64(b.N), "ns/call")
		})
		b.Run(fmt.Sprintf("loopback-http/%dB", size), func(b *testing.B) {
			payload, _ := json.Marshal(strings.Repeat("x", size))
			began := time.Now()
			for range b.N {
				resp, err := client.Post(native+"/.kouple/call/echo", "application/json", bytes.NewReader(payload))
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || len(body) < size {
					b.Fatalf("%d %d bytes", resp.StatusCode, len(body))
				}
			}
			b.ReportMetric(float64(time.Since(began).Nanoseconds())/float64(b.N), "ns/call")
		})
	}
}

// startNativeB builds the module in dir as an ordinary program and runs it on a free loopback port.
func startNativeB(b *testing.B, dir string) string {
	bin := filepath.Join(b.TempDir(), "bin")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(moduletest.Root(), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	run := exec.Command(bin)
	run.Env = append(os.Environ(), "KOUPLE_ADDR="+addr)
	if err := run.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { run.Process.Kill(); run.Wait() })
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
	}
	b.Fatalf("%s did not listen on %s", bin, addr)
	return ""
}
