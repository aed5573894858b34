package wasm_test

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
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/runtime"
)

// TestNotesNativeAndModule: the notes example answers the same requests the same way as its own process and
// as a module in the sandbox.
func TestNotesNativeAndModule(t *testing.T) {
	_, srv := start(t, "examples/notes", runtime.Spec{})
	native, _ := startNative(t, "examples/notes")

	script := []struct{ method, path, body string }{
		{"GET", "/items", ""},
		{"POST", "/items", `{"text":"buy milk"}`},
		{"POST", "/items", `{"text":"write the ABI doc"}`},
		{"POST", "/items", `{"text":""}`},
		{"POST", "/items", `not json`},
		{"GET", "/items", ""},
		{"GET", "/items?q=milk", ""},
		{"GET", "/items/2", ""},
		{"DELETE", "/items/1", ""},
		{"DELETE", "/items/1", ""},
		{"GET", "/items/1", ""},
		{"GET", "/items", ""},
		{"PUT", "/items", ""},
	}
	for _, step := range script {
		a := do(t, srv.URL, step.method, step.path, step.body)
		b := do(t, native, step.method, step.path, step.body)
		if a != b {
			t.Errorf("%s %s differs:\nmodule: %s\nnative: %s", step.method, step.path, a, b)
		}
	}
}

// do makes one request and describes the answer without what legitimately differs (times).
func do(t *testing.T, base, method, path, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, bytes.NewBufferString(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v any
	if json.Unmarshal(b, &v) == nil {
		dropCreated(v)
		b, _ = json.Marshal(v)
	}
	return fmt.Sprintf("%d %s %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Location"), bytes.TrimSpace(b))
}

func dropCreated(v any) {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "created")
	case []any:
		for _, e := range v {
			dropCreated(e)
		}
	}
}

// startNative builds the module in dir as an ordinary program, runs it on a free port and returns its URL and
// process id.
func startNative(t testing.TB, dir string) (string, int) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(moduletest.Root(), dir)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "KOUPLE_ADDR="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			return url, cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer on %s", bin, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
