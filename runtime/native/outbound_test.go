package native_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/services"
)

// TestOutboundNative: a native module's client on sdk.Transport goes through the base, to the granted host
// only, as a wasm module's http.Get does.
func TestOutboundNative(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi") }))
	defer srv.Close()
	probe := mustBuild(t, "services/testdata/shareprobe", "1.0.0")
	b, err := base.New(base.Config{HTTPAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Services: services.Policy{Allow: []string{"http:127.0.0.1"}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	if err := install(t, b, probe, true); err != nil {
		t.Fatal(err)
	}
	fetch := func(u string) (int, string) {
		return get(t, b.GatewayURL()+"/sharea/fetch?client=sdk&url="+url.QueryEscape(u))
	}
	if code, body := fetch(srv.URL); code != 200 || body != "200 hi" {
		t.Errorf("the granted host: %d %q", code, body)
	}
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	if code, body := fetch("http://localhost:" + port); code != 502 || !strings.Contains(body, "module sharea:1.0.0 may not reach localhost") {
		t.Errorf("a host the module did not ask for: %d %q", code, body)
	}
}
