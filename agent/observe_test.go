package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/module"
	"github.com/kouple/kouple/observe"
)

// fakeBase is a Backend with logs and metrics and no modules.
type fakeBase struct{ hub *observe.Hub }

func (fakeBase) Granted(*manifest.Manifest) []string { return nil }
func (fakeBase) Identity() string                    { return "fake" }
func (fakeBase) Install(context.Context, InstallRequest) (*module.Version, error) {
	return nil, nil
}
func (fakeBase) Uninstall(context.Context, string, string) error                 { return nil }
func (fakeBase) Switch(context.Context, string, string) (*module.Version, error) { return nil, nil }
func (fakeBase) Modules() []*module.Module                                       { return nil }
func (fakeBase) Health(context.Context) any                                      { return nil }
func (fakeBase) GC(context.Context) ([]string, error)                            { return nil, nil }
func (f fakeBase) Logs() *observe.Hub                                            { return f.hub }
func (fakeBase) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up 1\n") })
}

// TestLogsFollow: the logs command returns a module's records, streams new ones as NDJSON, and ends the
// stream at StopStreams.
func TestLogsFollow(t *testing.T) {
	hub, _ := observe.NewHub(observe.HubConfig{})
	a := New(fakeBase{hub}, nil, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(a)
	defer srv.Close()
	hub.Add(observe.Record{Time: time.Now(), Level: "INFO", Module: "a", Version: "1", Message: "old a"})
	hub.Add(observe.Record{Time: time.Now(), Level: "INFO", Module: "b", Version: "1", Message: "old b"})

	resp, err := http.Post(srv.URL+"/logs", "application/json", strings.NewReader(`{"bizName":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Code string
		Data []observe.Record
	}
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if env.Code != CodeSuccess || len(env.Data) != 1 || env.Data[0].Message != "old a" {
		t.Fatalf("logs a: %+v", env)
	}

	resp, err = http.Post(srv.URL+"/logs", "application/json", strings.NewReader(`{"bizName":"a","follow":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != LogsContentType {
		t.Fatalf("follow answered %s", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() string {
		if !lines.Scan() {
			return ""
		}
		var r observe.Record
		json.Unmarshal(lines.Bytes(), &r)
		return r.Module + ":" + r.Message
	}
	if got := next(); got != "a:old a" {
		t.Errorf("first streamed record %q", got)
	}
	for hub.Followers() == 0 {
		time.Sleep(time.Millisecond)
	}
	hub.Add(observe.Record{Time: time.Now(), Level: "INFO", Module: "b", Version: "1", Message: "new b"})
	hub.Add(observe.Record{Time: time.Now(), Level: "INFO", Module: "a", Version: "1", Message: "new a"})
	if got := next(); got != "a:new a" {
		t.Errorf("streamed record %q, want a's new one only", got)
	}
	a.StopStreams()
	if got := next(); got != "" {
		t.Errorf("after StopStreams: %q", got)
	}
	for hub.Followers() != 0 {
		time.Sleep(time.Millisecond)
	}

	resp2, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if string(body) != "up 1\n" {
		t.Errorf("GET /metrics: %q", body)
	}
	resp3, _ := http.Post(srv.URL+"/logs", "application/json", strings.NewReader(`{"bizName":"nosuch"}`))
	json.NewDecoder(resp3.Body).Decode(&env)
	resp3.Body.Close()
	if env.Code != CodeNotFoundBiz {
		t.Errorf("logs of a module that is not installed: %+v", env)
	}
}
