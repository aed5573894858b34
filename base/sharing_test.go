package base_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/services"
)

const probe = "services/testdata/shareprobe"

// eventually polls url until its body contains want: deliveries and timer runs are asynchronous.
func eventually(t *testing.T, url, want string) string {
	t.Helper()
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, body = get(t, url); strings.Contains(body, want) {
			return body
		}
	}
	t.Fatalf("GET %s: never contained %q; last answer %q", url, want, body)
	return body
}

func installInactive(t *testing.T, b *base.Base, dir, version string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(path, moduletest.Build(t, dir, version), 0o644)
	if _, err := b.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path}); err != nil {
		t.Fatal(err)
	}
}

// TestOutboundHTTP: a module's ordinary http.Client reaches a host the operator granted, through the base, and
// is refused a host it did not ask for or was not granted, with the flag that would grant it.
func TestOutboundHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.Path)
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	b := embedded(t, t.TempDir(), base.Config{Services: services.Policy{Allow: []string{"sharea=http:127.0.0.1:" + port}}})
	install(t, b, moduletest.Variant(t, probe, "name: sharea\nversion: 1.0.0\ncontextPath: /sharea\ncapabilities: [\"http:127.0.0.1:"+port+"\", \"http:localhost\"]\n"), "")
	fetch := func(u string) (int, string) { return get(t, b.GatewayURL()+"/sharea/fetch?url="+url.QueryEscape(u)) }
	if code, body := fetch(srv.URL + "/greeting"); code != 200 || body != "200 hello GET /greeting" {
		t.Errorf("granted host: %d %q", code, body)
	}
	// Asked for, not granted by the operator.
	if code, body := fetch("http://localhost:" + port + "/"); code != 502 || !strings.Contains(body, `"http:localhost" needs the operator's grant (--grant sharea=http:localhost)`) {
		t.Errorf("ungranted host: %d %q", code, body)
	}
	// Not asked for at all (another port of the granted host is another host).
	if code, body := fetch("http://127.0.0.1:1/"); code != 502 || !strings.Contains(body, `module sharea:1.0.0 may not reach 127.0.0.1: add "http:127.0.0.1" to capabilities`) || !strings.Contains(body, "--grant sharea=http:127.0.0.1") {
		t.Errorf("host not asked for: %d %q", code, body)
	}
}

// TestEventsAcrossSwitch: an event reaches every subscriber; one published while a subscriber has no active
// version (mid-upgrade) is queued, survives a base restart, and reaches the new version once it is switched
// in; a failing handler gets the event again.
func TestEventsAcrossSwitch(t *testing.T) {
	dataDir := t.TempDir()
	b := embedded(t, dataDir, base.Config{})
	install(t, b, probe, "")
	shareb := moduletest.Variant(t, probe, "name: shareb\nversion: 1.0.0\ncontextPath: /shareb\ncapabilities: [kv]\nsubscribe: [ping]\n")
	install(t, b, shareb, "1.0.0")
	gw := b.GatewayURL()
	if code, body := get(t, gw+"/sharea/publish?topic=ping&data=one"); code != 200 || len(strings.TrimSpace(body)) != 32 {
		t.Fatalf("publish: %d %q", code, body)
	}
	eventually(t, gw+"/sharea/seen?prefix=event/", "event/one=1.0.0")
	eventually(t, gw+"/shareb/seen?prefix=event/", "event/one=1.0.0")
	if _, body := get(t, gw+"/shareb/publish?topic=ping&data=x"); !strings.Contains(body, `did not ask for "events:ping"`) {
		t.Errorf("publishing without the capability: %q", body)
	}

	// Mid-upgrade: 2.0.0 installed but not active, 1.0.0 gone.
	installInactive(t, b, shareb, "2.0.0")
	if err := b.Uninstall(context.Background(), "shareb", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	get(t, gw+"/sharea/publish?topic=ping&data=two")
	eventually(t, gw+"/sharea/seen?prefix=event/", "event/two=1.0.0")
	if n := b.Events().Pending("shareb"); n != 1 {
		t.Errorf("queued for shareb while it has no active version: %d, want 1", n)
	}
	b.Shutdown(context.Background())

	b = embedded(t, dataDir, base.Config{})
	gw = b.GatewayURL()
	if _, err := b.Switch(context.Background(), "shareb", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, gw+"/shareb/seen?prefix=event/", "event/two=2.0.0")
	get(t, gw+"/sharea/publish?topic=ping&data=fail") // fails twice, then is handled
	eventually(t, gw+"/shareb/seen?prefix=event/", "event/fail=2.0.0")
	eventually(t, gw+"/sharea/seen?prefix=event/", "event/fail=1.0.0")

	// Uninstalled, the module's subscription and queue go.
	if err := b.Uninstall(context.Background(), "shareb", ""); err != nil {
		t.Fatal(err)
	}
	if subs := b.Events().Subscriptions(); fmt.Sprint(subs) != "map[sharea:[ping]]" {
		t.Errorf("subscriptions after uninstalling shareb: %v", subs)
	}
}

// TestTimers: a timer runs on its schedule by the base's (manual) clock, one scheduled through the SDK runs
// until cancelled, and a run missed while the base was down runs once at start.
func TestTimers(t *testing.T) {
	dataDir := t.TempDir()
	clock := services.NewManualClock(time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC))
	b := embedded(t, dataDir, base.Config{Clock: clock})
	dir := moduletest.Variant(t, probe, "name: sharea\nversion: 1.0.0\ncontextPath: /sharea\ncapabilities: [kv]\ntimers:\n  - name: tick\n    schedule: \"*/5 * * * *\"\n    catchUp: true\n")
	install(t, b, dir, "")
	gw := b.GatewayURL()
	if _, body := get(t, gw+"/sharea/seen?prefix=tick"); body != "" {
		t.Fatalf("ran before its time: %q", body)
	}
	clock.Advance(5 * time.Minute)
	eventually(t, gw+"/sharea/seen?prefix=tick", "tick/10:05/false=1")
	clock.Advance(5 * time.Minute)
	eventually(t, gw+"/sharea/seen?prefix=tick", "tick/10:10/false=1")

	// A timer scheduled through the SDK (the handler "tick" of a module whose manifest declares no timers).
	dyn := moduletest.Variant(t, probe, "name: shareb\nversion: 1.0.0\ncontextPath: /shareb\ncapabilities: [kv, timers]\n")
	install(t, b, dyn, "")
	if _, body := get(t, gw+"/shareb/schedule?name=tick&spec="+url.QueryEscape("@every 2m")); body != "ok\n" {
		t.Fatalf("schedule: %q", body)
	}
	if _, body := get(t, gw+"/sharea/schedule?name=tick&spec="+url.QueryEscape("@every 2m")); !strings.Contains(body, `did not ask for "timers"`) {
		t.Errorf("scheduling without the capability: %q", body)
	}
	clock.Advance(2 * time.Minute)
	eventually(t, gw+"/shareb/seen?prefix=tick", "tick/10:12/false=1")
	if _, body := get(t, gw+"/shareb/schedule?name=tick"); body != "ok\n" { // cancelled: no more runs
		t.Fatalf("cancel: %q", body)
	}
	clock.Advance(2 * time.Minute) // to 10:14:30, when shareb's next run would be
	clock.Advance(2 * time.Minute) // to 10:16:30: sharea's 10:15 runs after it
	eventually(t, gw+"/sharea/seen?prefix=tick", "tick/10:15/false=1")
	if _, body := get(t, gw+"/shareb/seen?prefix=tick"); body != "tick/10:12/false=1\nticks=1\n" {
		t.Errorf("shareb after its timer was cancelled: %q", body)
	}
	b.Shutdown(context.Background())

	// Down from 10:10 to 11:00: the missed runs (10:15 ... 10:55) run once.
	clock = services.NewManualClock(time.Date(2026, 1, 1, 11, 0, 30, 0, time.UTC))
	b = embedded(t, dataDir, base.Config{Clock: clock})
	body := eventually(t, b.GatewayURL()+"/sharea/seen?prefix=tick", "tick/11:00/true=1")
	if want := "ticks=4\n"; !strings.Contains(eventually(t, b.GatewayURL()+"/sharea/seen?prefix=ticks", "ticks="), want) {
		t.Errorf("runs after the catch-up: %q, want %q", body, want)
	}
}

// BenchmarkOutbound: a wasm module answering each request with an outbound GET through the base (module
// request + the http service + the base's pooled client), beside a plain GET of the same server: what going
// through the base adds.
func BenchmarkOutbound(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi") }))
	defer srv.Close()
	bs := embedded(b, b.TempDir(), base.Config{Services: services.Policy{Allow: []string{"http:127.0.0.1"}}})
	path := filepath.Join(b.TempDir(), "m.wasm")
	os.WriteFile(path, moduletest.Build(b, probe, ""), 0o644)
	if _, err := bs.Install(context.Background(), agent.InstallRequest{BizURL: "file://" + path, Activate: true}); err != nil {
		b.Fatal(err)
	}
	b.Run("direct", func(b *testing.B) { moduletest.Load(b, srv.URL, 1) })
	b.Run("module-through-base", func(b *testing.B) {
		moduletest.Load(b, bs.GatewayURL()+"/sharea/fetch?url="+url.QueryEscape(srv.URL), 1)
	})
}
