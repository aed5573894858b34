package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/observe"
)

// follower is a running `kouple logs NAME -f`, its output collected line by line.
type follower struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func (b *baseProc) follow(t *testing.T, args ...string) *follower {
	cmd := execKouple(t, append([]string{"logs", "-f"}, args...)...)
	cmd.Env = append(os.Environ(), "KOUPLE_BASE="+b.agent)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &follower{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.mu.Lock()
			f.lines = append(f.lines, sc.Text())
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return f
}

func (f *follower) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.lines, "\n")
}

// waitFor waits (generously) until every want is in the follower's output.
func (f *follower) waitFor(t *testing.T, what string, want []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		text := f.text()
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q never came; got:\n%s", what, missing, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *baseProc) getWith(path string, header http.Header) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.gateway+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestLogsPerModule: two modules serving (and logging) at once; `kouple logs` shows each only its own lines,
// with their request ids, both after the fact and followed with -f.
func TestLogsPerModule(t *testing.T) {
	b := startBase(t, t.TempDir())
	b.mustCLI("deploy", filepath.Join(moduletest.Root(), "examples/hello"))
	b.mustCLI("deploy", filepath.Join(moduletest.Root(), "examples/notes"))
	fh := b.follow(t, "hello")
	fn := b.follow(t, "notes")
	// The followers are connected once they print the install record the base kept.
	fh.waitFor(t, "hello follower", []string{"hello@1.0.0 installed"})
	fn.waitFor(t, "notes follower", []string{"notes@1.0.0 installed"})

	const n = 20
	var wg sync.WaitGroup
	var helloIDs, notesIDs []string
	for i := range n {
		h, nt := fmt.Sprintf("hello-req-%d", i), fmt.Sprintf("notes-req-%d", i)
		helloIDs, notesIDs = append(helloIDs, "["+h+"] request"), append(notesIDs, "["+nt+"] request")
		wg.Go(func() {
			if resp, _ := b.getWith("/hello/", http.Header{"X-Request-Id": {h}}); resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != h {
				t.Errorf("GET /hello/: %s, X-Request-Id %q", resp.Status, resp.Header.Get("X-Request-Id"))
			}
		})
		wg.Go(func() {
			if resp, _ := b.getWith("/notes/items", http.Header{"X-Request-Id": {nt}}); resp.StatusCode != 200 {
				t.Errorf("GET /notes/items: %s", resp.Status)
			}
		})
	}
	wg.Wait()

	onlyOwn := func(what, text, own string, want []string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, text)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			if !strings.Contains(line, " "+own+"@1.0.0 ") {
				t.Errorf("%s shows a line that is not %s's: %q", what, own, line)
			}
		}
	}
	onlyOwn("kouple logs hello", b.mustCLI("logs", "hello"), "hello", helloIDs)
	onlyOwn("kouple logs notes", b.mustCLI("logs", "notes"), "notes", notesIDs)
	fh.waitFor(t, "kouple logs -f hello", helloIDs)
	fn.waitFor(t, "kouple logs -f notes", notesIDs)
	onlyOwn("kouple logs -f hello", fh.text(), "hello", helloIDs)
	onlyOwn("kouple logs -f notes", fn.text(), "notes", notesIDs)

	if out, err := b.cli("logs", "hello", "--version", "9.9.9"); err == nil || !strings.Contains(out, "hello:9.9.9 is not installed") {
		t.Errorf("logs of a version that does not exist: %v %s", err, out)
	}
	if out, err := b.cli("logs", "nosuch"); err == nil || !strings.Contains(out, "not installed") {
		t.Errorf("logs of a module that is not installed: %v %s", err, out)
	}
	if out := b.mustCLI("logs", "--base-logs"); !strings.Contains(out, "base started") || strings.Contains(out, "hello@") {
		t.Errorf("the base's own logs:\n%s", out)
	}

	// Followers do not hold the base's shutdown (which would wait up to its 30 s drain), and end with it.
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.waitExit(25 * time.Second)
	for _, f := range []*follower{fh, fn} {
		select {
		case <-f.done:
		case <-time.After(25 * time.Second):
			t.Error("a follower did not end when the base stopped")
		}
	}
}

// TestTraceAcrossModules: a request through greeter → hello carries one trace id (the client's, from its
// traceparent) and one request id into both modules' log lines.
func TestTraceAcrossModules(t *testing.T) {
	b := startBase(t, t.TempDir())
	b.mustCLI("deploy", filepath.Join(moduletest.Root(), "examples/hello"))
	b.mustCLI("deploy", filepath.Join(moduletest.Root(), "examples/greeter"))
	client := observe.NewTrace()
	resp, body := b.getWith("/greeter/", http.Header{"Traceparent": {client.Traceparent()}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Hello from hello") {
		t.Fatalf("GET /greeter/ = %s %q", resp.Status, body)
	}
	reqID := resp.Header.Get("X-Request-Id")
	if reqID == "" {
		t.Fatal("the gateway gave the request no X-Request-Id")
	}
	records := func(name string) []observe.Record {
		var recs []observe.Record
		for _, line := range strings.Split(strings.TrimSpace(b.mustCLI("logs", name, "-o", "json")), "\n") {
			var r observe.Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("kouple logs %s -o json: %q: %v", name, line, err)
			}
			if r.RequestID == reqID {
				recs = append(recs, r)
			}
		}
		return recs
	}
	g, h := records("greeter"), records("hello")
	if len(g) == 0 || len(h) == 0 {
		t.Fatalf("request %s: greeter's records %+v, hello's %+v", reqID, g, h)
	}
	for _, r := range append(g, h...) {
		if r.TraceID != client.TraceID {
			t.Errorf("%s@%s %q has trace id %q, want the client's %s", r.Module, r.Version, r.Message, r.TraceID, client.TraceID)
		}
	}
	if h[0].Message != "greeting asked" {
		t.Errorf("hello's record of the call: %+v", h[0])
	}
}

// TestMetrics: /metrics on the agent answers only with a credential (when the agent requires one), parses with
// the Prometheus text parser, carries module and version labels, and moves as requests are made.
func TestMetrics(t *testing.T) {
	home := t.TempDir()
	b := authBase(t, home, freeAddr(t), "--auth", "always")
	admin, err := os.ReadFile(filepath.Join(home, ".kouple", "base", "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(admin))
	scrape := func(token string) (int, map[string]float64) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, b.agent+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return resp.StatusCode, nil
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		out := map[string]float64{}
		for name, fam := range fams {
			for _, m := range fam.GetMetric() {
				key := name
				for _, l := range m.GetLabel() {
					key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
				}
				switch {
				case m.Counter != nil:
					out[key] = m.GetCounter().GetValue()
				case m.Gauge != nil:
					out[key] = m.GetGauge().GetValue()
				case m.Histogram != nil:
					out[key+",count"] = float64(m.GetHistogram().GetSampleCount())
				case m.Untyped != nil:
					out[key] = m.GetUntyped().GetValue()
				}
			}
		}
		return 200, out
	}
	if status, _ := scrape(""); status != http.StatusUnauthorized {
		t.Errorf("/metrics without a credential: %d, want 401", status)
	}
	cli := execKouple(t, "deploy", filepath.Join(moduletest.Root(), "examples/hello"))
	cli.Env = append(os.Environ(), "KOUPLE_BASE="+b.agent, "KOUPLE_TOKEN="+token)
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	_, before := scrape(token)
	const lbl = ",module=hello,version=1.0.0"
	const activated = "kouple_module_state,module=hello,state=ACTIVATED,version=1.0.0" // labels sorted by name
	for _, k := range []string{"kouple_module_requests_total" + lbl, "kouple_module_instances" + lbl, "kouple_module_memory_bytes" + lbl,
		activated, "kouple_module_restarts_total" + lbl, "kouple_module_cpu_seconds_total" + lbl,
		"kouple_module_in_flight" + lbl, "go_goroutines", "kouple_base_module_versions"} {
		if _, ok := before[k]; !ok {
			t.Errorf("/metrics lacks %s", k)
		}
	}
	if before["kouple_module_instances"+lbl] != 1 || before[activated] != 1 {
		t.Errorf("instances %v, ACTIVATED %v", before["kouple_module_instances"+lbl], before[activated])
	}
	for range 5 {
		b.get("/hello/")
	}
	_, after := scrape(token)
	if d := after["kouple_module_requests_total"+lbl] - before["kouple_module_requests_total"+lbl]; d != 5 {
		t.Errorf("requests moved by %v after 5 requests", d)
	}
	if d := after["kouple_module_request_duration_seconds"+lbl+",count"] - before["kouple_module_request_duration_seconds"+lbl+",count"]; d != 5 {
		t.Errorf("the latency histogram counted %v of 5 requests", d)
	}
	// kouple status shows the same request count.
	cli = execKouple(t, "status", "-o", "json")
	cli.Env = append(os.Environ(), "KOUPLE_BASE="+b.agent, "KOUPLE_TOKEN="+token)
	out, err := cli.Output()
	if err != nil {
		t.Fatal(err)
	}
	var infos []struct {
		BizName string
		Stats   struct{ Requests float64 } `json:"stats"`
	}
	json.Unmarshal(out, &infos)
	if len(infos) != 1 || infos[0].Stats.Requests != after["kouple_module_requests_total"+lbl] {
		t.Errorf("status %s vs metrics %v", out, after["kouple_module_requests_total"+lbl])
	}
}
