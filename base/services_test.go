package base_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/internal/pgtest"
	"github.com/kouple/kouple/services"
)

func TestMain(m *testing.M) { moduletest.Main(m, pgtest.Stop) }

func free(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// embedded starts a base in this process, as a Go program embedding one would.
func embedded(t testing.TB, dataDir string, cfg base.Config) *base.Base {
	t.Helper()
	cfg.HTTPAddr, cfg.AgentAddr, cfg.DataDir, cfg.CacheDir = free(t), free(t), dataDir, moduletest.CacheDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := base.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown(context.Background()) })
	return b
}

func install(t testing.TB, b *base.Base, dir, version string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(path, moduletest.Build(t, dir, version), 0o644)
	if _, err := b.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path, Activate: true}); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTodoSQL: todo's data on the base's pool, SQLite or PostgreSQL, survives a module upgrade and a base
// restart; a module that did not ask for sql is refused.
func TestTodoSQL(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testTodoSQL(t, base.Config{}) })
	t.Run("postgres", func(t *testing.T) { testTodoSQL(t, base.Config{SQLDSN: pgtest.DSN(t)}) })
}

func testTodoSQL(t *testing.T, cfg base.Config) {
	dataDir := t.TempDir()
	b := embedded(t, dataDir, cfg)
	install(t, b, "examples/todo", "1.0.0")
	if code, body := post(t, b.GatewayURL()+"/todo/items", `{"title":"write the sharing docs"}`); code != 201 || !strings.Contains(body, `"id":1`) {
		t.Fatalf("POST /todo/items = %d %s", code, body)
	}
	install(t, b, "examples/todo", "2.0.0") // upgrade
	if _, body := get(t, b.GatewayURL()+"/todo/items"); !strings.Contains(body, "write the sharing docs") {
		t.Errorf("after the upgrade: %s", body)
	}
	b.Shutdown(context.Background())
	b = embedded(t, dataDir, cfg)
	post(t, b.GatewayURL()+"/todo/items", `{"title":"second"}`)
	if _, body := get(t, b.GatewayURL()+"/todo/items"); !strings.Contains(body, `{"id":1,"title":"write the sharing docs","done":false},{"id":2,"title":"second","done":false}`) {
		t.Errorf("after a base restart: %s", body)
	}

	// The same module without the capability: its first statement is refused.
	b2 := embedded(t, t.TempDir(), cfg)
	dir := moduletest.Variant(t, "examples/todo", "name: todo\nversion: 1.0.0\ncontextPath: /todo\n")
	path := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(path, moduletest.Build(t, dir, ""), 0o644)
	_, err := b2.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path})
	if err == nil || !strings.Contains(err.Error(), `permission denied: module todo:1.0.0 did not ask for "sql"`) {
		t.Errorf("todo without sql: %v", err)
	}
}

// TestKVAndConfig: namespaces isolate, shared ones reach only modules granted them, config shares only the
// base's chosen keys, and the operator can deny what a manifest asks for.
func TestKVAndConfig(t *testing.T) {
	b := embedded(t, t.TempDir(), base.Config{SharedConfig: map[string]string{"REGION": "eu-1"}, Services: services.Policy{Deny: []string{"kv:secret"}}})
	install(t, b, "services/testdata/svcprobe", "")
	svcb := moduletest.Variant(t, "services/testdata/svcprobe", "name: svcb\nversion: 1.0.0\ncontextPath: /svcb\ncapabilities: [kv, \"kv:secret\"]\n")
	install(t, b, svcb, "")
	gw := b.GatewayURL()
	for _, step := range []struct{ path, want string }{
		{"/svca/kv/put?k=color&v=blue", "ok\n"},
		{"/svca/kv/get?k=color", "blue true\n"},
		{"/svcb/kv/get?k=color", " false\n"}, // svcb's own namespace: not svca's key
		{"/svcb/kv/put?k=color&v=red", "ok\n"},
		{"/svca/kv/get?k=color", "blue true\n"},
		{"/svca/kv/put?ns=shared&k=greeting&v=hi", "ok\n"},
		{"/svca/kv/get?ns=shared&k=greeting", "hi true\n"},
		{"/svcb/kv/get?ns=shared&k=greeting", `permission denied: module svcb:1.0.0 did not ask for "kv:shared"`},
		{"/svcb/kv/get?ns=secret&k=x", `permission denied: this base's operator denies "kv:secret" to modules`},
		{"/svca/config?k=REGION", "eu-1 true\n"},
		{"/svca/config?k=HOME", " false\n"},
		{"/svcb/config?k=REGION", `did not ask for "config"`},
	} {
		if _, body := get(t, gw+step.path); !strings.Contains(body, step.want) {
			t.Errorf("GET %s = %q, want %q", step.path, body, step.want)
		}
	}
	var infos []agent.BizInfo
	for _, mod := range b.Modules() {
		for _, v := range mod.Versions() {
			infos = append(infos, agent.NewBizInfo(v, true, b.Granted(v.Manifest)))
		}
	}
	if got := fmt.Sprint(infos[0].Granted, infos[1].Granted); got != "[kv kv:shared config] [kv]" {
		t.Errorf("granted = %s", got)
	}
}

// TestCustomService: a service of the embedding program, called by a module with typed values, and a module's
// method called by the base.
func TestCustomService(t *testing.T) {
	b := embedded(t, t.TempDir(), base.Config{Services: services.Policy{Allow: []string{"svca=service:greeter"}}})
	type greeting struct {
		Name string `json:"name"`
	}
	services.Method(b.Service("greeter"), "greet", func(ctx context.Context, caller string, in greeting) (string, error) {
		return "hello " + in.Name + ", from the base to " + caller, nil
	})
	install(t, b, "services/testdata/svcprobe", "")
	if _, body := get(t, b.GatewayURL()+`/svca/call?target=greeter&method=greet&arg={"name":"ana"}`); body != "\"hello ana, from the base to svca\"\n" {
		t.Errorf("module -> base service: %q", body)
	}
	sum, err := services.CallModule[int](context.Background(), b.Registry(), "svca", "add", map[string]int{"A": 40, "B": 2})
	if err != nil || sum != 42 {
		t.Errorf("base -> module: %d %v", sum, err)
	}
	// Ungranted: another module asking for the same service without the operator's grant.
	svcb := moduletest.Variant(t, "services/testdata/svcprobe", "name: svcb\nversion: 1.0.0\ncontextPath: /svcb\ncapabilities: [\"service:greeter\"]\n")
	install(t, b, svcb, "")
	if _, body := get(t, b.GatewayURL()+`/svcb/call?target=greeter&method=greet&arg={}`); !strings.Contains(body, "needs the operator's grant (--grant svcb=service:greeter)") {
		t.Errorf("ungranted custom service: %q", body)
	}
}
