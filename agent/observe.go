package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kouple/kouple/observe"
)

// Observer is what a backend offers beyond Backend for logs and metrics; a backend without it answers that
// it has none.
type Observer interface {
	Logs() *observe.Hub
	MetricsHandler() http.Handler
}

// LogsRequest is the body of the logs command.
type LogsRequest struct {
	BizName    string `json:"bizName"`
	BizVersion string `json:"bizVersion,omitempty"`
	Base       bool   `json:"base,omitempty"`   // the base's own records instead of a module's
	Since      string `json:"since,omitempty"`  // a duration back from now (5m) or an RFC 3339 time
	Follow     bool   `json:"follow,omitempty"` // stream new records as newline-delimited JSON
}

// LogsContentType is the type of a followed log stream: one observe.Record as JSON per line.
const LogsContentType = "application/x-ndjson"

// StopStreams ends every log stream (followers), so that the agent's server can shut down without waiting
// for clients that never hang up.
func (a *Agent) StopStreams() { a.streamsOnce.Do(func() { close(a.streams) }) }

func (a *Agent) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if status, why := a.auth.authorize(r, "metrics"); status != 0 {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kouple"`)
		}
		http.Error(w, why, status)
		return
	}
	o, ok := a.backend.(Observer)
	if !ok {
		http.Error(w, "this base keeps no metrics", http.StatusNotFound)
		return
	}
	o.MetricsHandler().ServeHTTP(w, r)
}

func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request, body []byte) {
	fail := func(code string, err error) {
		a.reply(w, http.StatusOK, Envelope{Code: code, Message: err.Error()})
	}
	var req LogsRequest
	if err := decode(body, &req); err != nil {
		fail(CodeFailed, err)
		return
	}
	o, ok := a.backend.(Observer)
	if !ok {
		fail(CodeFailed, fmt.Errorf("this base keeps no logs"))
		return
	}
	if req.BizName == "" && !req.Base {
		fail(CodeFailed, fmt.Errorf("name a module (bizName), or ask for the base's own logs (base: true)"))
		return
	}
	f := observe.Filter{Module: req.BizName, Version: req.BizVersion, Base: req.Base}
	if req.Since != "" {
		if d, err := time.ParseDuration(req.Since); err == nil {
			f.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, req.Since); err == nil {
			f.Since = t
		} else {
			fail(CodeFailed, fmt.Errorf("since %q is neither a duration (5m) nor an RFC 3339 time", req.Since))
			return
		}
	}
	hub := o.Logs()
	var sub *observe.Subscription
	if req.Follow {
		sub = hub.Follow(f) // before the backlog is read, so that no record falls between the two
		defer sub.Stop()
	}
	recs := hub.Query(f)
	if len(recs) == 0 && !req.Base && !a.installed(req.BizName, req.BizVersion) {
		fail(CodeNotFoundBiz, fmt.Errorf("module %s is not installed and has no log records in this base", strings.TrimSuffix(req.BizName+":"+req.BizVersion, ":")))
		return
	}
	if !req.Follow {
		if recs == nil {
			recs = []observe.Record{}
		}
		a.reply(w, http.StatusOK, Envelope{Code: CodeSuccess, Data: recs})
		return
	}
	w.Header().Set("Content-Type", LogsContentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var last uint64
	for _, rec := range recs {
		enc.Encode(rec)
		last = rec.Seq
	}
	if rc.Flush() != nil {
		return
	}
	for {
		select {
		case rec, ok := <-sub.C():
			if !ok {
				return
			}
			if rec.Seq <= last {
				continue // already sent with the backlog
			}
			if enc.Encode(rec) != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-a.streams:
			return
		case <-a.ctx.Done():
			return
		}
	}
}

func (a *Agent) installed(name, version string) bool {
	for _, mod := range a.backend.Modules() {
		if mod.Name != name {
			continue
		}
		for _, v := range mod.Versions() {
			if version == "" || v.Manifest.Version == version {
				return true
			}
		}
	}
	return false
}
