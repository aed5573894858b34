package main

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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/internal/pgtest"
)

func TestMain(m *testing.M) { moduletest.Main(m, pgtest.Stop) }

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// kouple builds this command once per test process, as `make build` does (-trimpath, which native modules made
// by `kouple new` need), and returns the binary's path.
func kouple(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kouple-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "kouple")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// baseProc is a `kouple base` process.
type baseProc struct {
	t        testing.TB
	cmd      *exec.Cmd
	dataDir  string
	gateway  string // http://addr
	agent    string
	output   *syncBuffer
	exited   chan struct{}
	exitErr  error
	httpAddr string
	agtAddr  string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBase starts a base on free ports with dataDir, sharing the tests' compile cache, and waits until its
// agent answers.
func startBase(t testing.TB, dataDir string, env ...string) *baseProc {
	t.Helper()
	return startBaseWith(t, dataDir, nil, env)
}

// startBaseWith is startBase with extra flags.
func startBaseWith(t testing.TB, dataDir string, flags, env []string) *baseProc {
	t.Helper()
	p := &baseProc{t: t, dataDir: dataDir, httpAddr: freeAddr(t), agtAddr: freeAddr(t), output: &syncBuffer{}, exited: make(chan struct{})}
	p.gateway, p.agent = "http://"+p.httpAddr, "http://"+p.agtAddr
	args := append([]string{"base", "--http", p.httpAddr, "--agent", p.agtAddr, "--data-dir", dataDir, "--cache-dir", cacheDir()}, flags...)
	p.cmd = exec.Command(kouple(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.exited:
			t.Fatalf("base exited at start: %v\n%s", p.exitErr, p.output)
		default:
		}
		if resp, err := http.Post(p.agent+"/help", "application/json", nil); err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("base did not answer within 60 s\n%s", p.output)
		}
	}
}

func (p *baseProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// waitExit waits for the process to end by itself (after a signal or a crash point).
func (p *baseProc) waitExit(d time.Duration) error {
	select {
	case <-p.exited:
		return p.exitErr
	case <-time.After(d):
		p.t.Fatalf("base still running after %v\n%s", d, p.output)
		return nil
	}
}

// cli runs the kouple CLI against the base and returns its combined output.
func (p *baseProc) cli(args ...string) (string, error) {
	cmd := exec.Command(kouple(p.t), args...)
	cmd.Env = append(os.Environ(), "KOUPLE_BASE="+p.agent)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *baseProc) mustCLI(args ...string) string {
	p.t.Helper()
	out, err := p.cli(args...)
	if err != nil {
		p.t.Fatalf("kouple %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// command posts an agent command with a raw JSON body and decodes the envelope.
func (p *baseProc) command(name, body string) envelope {
	p.t.Helper()
	resp, err := http.Post(p.agent+"/"+name, "application/json", strings.NewReader(body))
	if err != nil {
		p.t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		p.t.Fatalf("%s answered %s: %s", name, resp.Status, raw)
	}
	env.status = resp.StatusCode
	env.raw = string(raw)
	return env
}

type envelope struct {
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	Data         json.RawMessage `json:"data"`
	BaseIdentity string          `json:"baseIdentity"`
	status       int
	raw          string
}

func (p *baseProc) get(path string) (int, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.gateway+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// artifact writes a built module to a file and returns its path.
func artifactFile(t testing.TB, dir, version string) string {
	t.Helper()
	data := moduletest.Build(t, dir, version)
	path := filepath.Join(t.TempDir(), filepath.Base(dir)+"-"+version+".wasm")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func execKouple(t testing.TB, args ...string) *exec.Cmd {
	cmd := exec.Command(kouple(t), args...)
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

func cacheDir() string { return moduletest.CacheDir() }
