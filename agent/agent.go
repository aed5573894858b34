// Package agent serves the base's command API, wire-compatible with Koupleless's Arklet: POST to a path that
// names the command, a JSON body, and always HTTP 200 with an envelope {code, message, data, errorStackTrace,
// baseIdentity}, so tooling that speaks Arklet can drive a Go base.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/module"
)

// MaxBody bounds a request body.
const MaxBody = 1 << 20

// Backend is what the agent drives: the base.
type Backend interface {
	Identity() string
	Install(ctx context.Context, req InstallRequest) (*module.Version, error)
	Uninstall(ctx context.Context, name, version string) error
	Switch(ctx context.Context, name, version string) (*module.Version, error)
	Modules() []*module.Module
	Health(ctx context.Context) any
	GC(ctx context.Context) ([]string, error)
	Granted(m *manifest.Manifest) []string
}

// Agent is the command API's HTTP handler.
type Agent struct {
	backend Backend
	logger  *slog.Logger
	ops     *opLog
	auth    *Auth

	streams     chan struct{} // closed by StopStreams: log followers end
	streamsOnce sync.Once
	ctx         context.Context // ends at Close: asynchronous operations are abandoned
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

type command struct {
	desc string
	run  func(a *Agent, ctx context.Context, body []byte) (data any, err error)
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"help":            {"list the commands", (*Agent).help},
		"installBiz":      {"install a module version: bizUrl (file://, http(s)://), optional bizName, bizVersion, envs, installStrategy installOnly|uninstallThenInstall, async + requestId, sha256, activate, replace", (*Agent).install},
		"batchInstallBiz": {"install several module versions: bizList [installBiz bodies]", (*Agent).batchInstall},
		"uninstallBiz":    {"uninstall a module version: bizName, bizVersion (empty: every version)", (*Agent).uninstall},
		"switchBiz":       {"make a module version the active one: bizName, bizVersion", (*Agent).switchBiz},
		"queryAllBiz":     {"list every installed module version with its state records", (*Agent).queryAll},
		"health":          {"base health: Go runtime, memory, CPU, modules; optional type, bizName, bizVersion", (*Agent).health},
		"queryBizOps":     {"state of an asynchronous operation: requestId", (*Agent).queryOps},
		"gc":              {"remove stored artifacts that no module version uses any more", (*Agent).gc},
		"logs":            {"a module's log records: bizName (or base: true for the base's own), optional bizVersion, since (a duration such as 5m, or an RFC 3339 time), follow (stream newline-delimited JSON records until the client goes away)", nil},
		"metrics":         {"Prometheus metrics (also GET /metrics): modules by module and version, base, Go runtime", nil},
	}
}

// New makes the agent for a backend; auth nil lets every request through.
func New(b Backend, auth *Auth, logger *slog.Logger) *Agent {
	if logger == nil {
		logger = slog.Default()
	}
	if auth == nil {
		auth = NewAuth(false, logger)
	}
	a := &Agent{backend: b, logger: logger, ops: newOpLog(), auth: auth, streams: make(chan struct{})}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// Close abandons asynchronous operations still running and waits for them to end.
func (a *Agent) Close() {
	a.cancel()
	a.wg.Wait()
}

// opError is an operation's failure with the Arklet code to answer it with.
type opError struct {
	code string
	data any
	err  error
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &opError{code: CodeFailed, err: fmt.Errorf(format, args...)}
}

func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	if name == "metrics" && (r.Method == http.MethodGet || r.Method == http.MethodPost) {
		a.serveMetrics(w, r) // Prometheus scrapes with GET (observe.go)
		return
	}
	if r.Method != http.MethodPost {
		a.reply(w, http.StatusMethodNotAllowed, Envelope{Code: CodeFailed, Message: fmt.Sprintf("%s /%s: the agent takes POST with a JSON body", r.Method, name)})
		return
	}
	if status, why := a.auth.authorize(r, name); status != 0 {
		a.logger.Warn("request refused", "command", name, "remote", r.RemoteAddr, "status", status, "reason", why)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kouple"`)
		}
		a.reply(w, status, Envelope{Code: CodeFailed, Message: why})
		return
	}
	cmd, ok := commands[name]
	if !ok {
		a.reply(w, http.StatusOK, Envelope{Code: CodeNotFound, Message: fmt.Sprintf("no command %q: POST /help lists them", name)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
			err = fmt.Errorf("the request body is larger than %d KiB", MaxBody>>10)
		}
		a.reply(w, status, Envelope{Code: CodeFailed, Message: err.Error()})
		return
	}
	if name == "logs" {
		a.serveLogs(w, r, body) // it may stream (observe.go)
		return
	}
	data, err := cmd.run(a, r.Context(), body)
	env := Envelope{Code: CodeSuccess, Data: data}
	if err != nil {
		env.Code, env.Message = CodeFailed, err.Error()
		if oe, ok := errors.AsType[*opError](err); ok && oe.data != nil {
			env.Data = oe.data
		}
		a.logger.Warn("command failed", "command", name, "remote", r.RemoteAddr, "err", err)
	}
	a.reply(w, http.StatusOK, env)
}

func (a *Agent) reply(w http.ResponseWriter, status int, env Envelope) {
	env.BaseIdentity = a.backend.Identity()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(env)
}

// decode reads a JSON body strictly enough to catch typos in field names.
func decode(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("the request body is not valid JSON for this command: %v", err)
	}
	return nil
}

func (a *Agent) help(ctx context.Context, body []byte) (any, error) {
	type entry struct {
		ID   string `json:"id"`
		Desc string `json:"desc"`
	}
	var out []entry
	for name, c := range commands {
		out = append(out, entry{name, c.desc})
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// codeOf maps an operation's error to Arklet's install codes.
func codeOf(err error) string {
	switch {
	case err == nil:
		return CodeSuccess
	case errors.Is(err, module.ErrRepeat):
		return CodeRepeatBiz
	case errors.Is(err, module.ErrNotFound):
		return CodeNotFoundBiz
	case errors.Is(err, module.ErrIllegalState):
		return CodeIllegalState
	}
	return CodeFailed
}

func (a *Agent) info(v *module.Version, active bool) BizInfo {
	return NewBizInfo(v, active, a.backend.Granted(v.Manifest))
}

func (a *Agent) clientResponse(op string, v *module.Version, began time.Time, err error) ClientResponse {
	cr := ClientResponse{Code: codeOf(err), ElapsedSpace: time.Since(began).Milliseconds()}
	if v != nil {
		cr.BizInfos = []BizInfo{a.info(v, v.State() == module.Activated)}
	}
	if err != nil {
		cr.Message = err.Error()
	} else if v != nil {
		cr.Message = fmt.Sprintf("%s %s: success, cost %d ms", op, v.ID(), cr.ElapsedSpace)
	} else {
		cr.Message = op + ": success"
	}
	return cr
}

// result turns a ClientResponse into the command's answer.
func result(cr ClientResponse, err error) (any, error) {
	if err != nil {
		return nil, &opError{code: cr.Code, data: cr, err: err}
	}
	return cr, nil
}

func (a *Agent) install(ctx context.Context, body []byte) (any, error) {
	var req InstallRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkInstall(req); err != nil {
		return nil, err
	}
	run := func(ctx context.Context) (any, error) {
		began := time.Now()
		v, err := a.backend.Install(ctx, req)
		return result(a.clientResponse("install", v, began, err), err)
	}
	if req.Async {
		return a.async(req.RequestID, map[string]any{"bizName": req.BizName, "bizVersion": req.BizVersion, "bizUrl": req.BizURL}, run)
	}
	return run(ctx)
}

func checkInstall(req InstallRequest) error {
	if strings.TrimSpace(req.BizURL) == "" {
		return badRequest("bizUrl is missing: give the artifact's URL, such as file:///path/to/hello.wasm")
	}
	switch req.InstallStrategy {
	case "", StrategyInstallOnly, StrategyUninstallThenInstall:
	default:
		return badRequest("installStrategy %q is not known: use %s or %s", req.InstallStrategy, StrategyInstallOnly, StrategyUninstallThenInstall)
	}
	if req.Async && req.RequestID == "" {
		return badRequest("an async command needs a requestId, to ask queryBizOps about it")
	}
	return nil
}

func (a *Agent) batchInstall(ctx context.Context, body []byte) (any, error) {
	var req struct {
		BizList []InstallRequest `json:"bizList"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.BizList) == 0 {
		return nil, badRequest("bizList is empty")
	}
	for _, r := range req.BizList {
		if err := checkInstall(r); err != nil {
			return nil, err
		}
	}
	began := time.Now()
	responses := make([]ClientResponse, len(req.BizList))
	var wg sync.WaitGroup
	for i, r := range req.BizList {
		r.Async = false
		wg.Go(func() {
			t0 := time.Now()
			v, err := a.backend.Install(ctx, r)
			responses[i] = a.clientResponse("install", v, t0, err)
		})
	}
	wg.Wait()
	out := struct {
		Code             string                    `json:"code"`
		Message          string                    `json:"message"`
		BizURLToResponse map[string]ClientResponse `json:"bizUrlToResponse"`
		ElapsedSpace     int64                     `json:"elapsedSpace"`
	}{Code: CodeSuccess, BizURLToResponse: map[string]ClientResponse{}, ElapsedSpace: time.Since(began).Milliseconds()}
	failed := 0
	for i, r := range req.BizList {
		out.BizURLToResponse[r.BizURL] = responses[i]
		if responses[i].Code != CodeSuccess {
			failed++
		}
	}
	out.Message = fmt.Sprintf("%d of %d installed", len(req.BizList)-failed, len(req.BizList))
	if failed > 0 {
		out.Code = CodeFailed
		return nil, &opError{code: CodeFailed, data: out, err: errors.New(out.Message)}
	}
	return out, nil
}

func (a *Agent) bizRequest(body []byte, needVersion bool) (BizRequest, error) {
	var req BizRequest
	if err := decode(body, &req); err != nil {
		return req, err
	}
	if req.BizName == "" {
		return req, badRequest("bizName is missing")
	}
	if needVersion && req.BizVersion == "" {
		return req, badRequest("bizVersion is missing")
	}
	if req.Async && req.RequestID == "" {
		return req, badRequest("an async command needs a requestId, to ask queryBizOps about it")
	}
	return req, nil
}

func (a *Agent) uninstall(ctx context.Context, body []byte) (any, error) {
	req, err := a.bizRequest(body, false)
	if err != nil {
		return nil, err
	}
	run := func(ctx context.Context) (any, error) {
		began := time.Now()
		err := a.backend.Uninstall(ctx, req.BizName, req.BizVersion)
		op := "uninstall " + req.BizName
		if req.BizVersion != "" {
			op += ":" + req.BizVersion
		}
		return result(a.clientResponse(op, nil, began, err), err)
	}
	if req.Async {
		return a.async(req.RequestID, map[string]any{"bizName": req.BizName, "bizVersion": req.BizVersion}, run)
	}
	return run(ctx)
}

func (a *Agent) switchBiz(ctx context.Context, body []byte) (any, error) {
	req, err := a.bizRequest(body, true)
	if err != nil {
		return nil, err
	}
	run := func(ctx context.Context) (any, error) {
		began := time.Now()
		v, err := a.backend.Switch(ctx, req.BizName, req.BizVersion)
		return result(a.clientResponse("switch to", v, began, err), err)
	}
	if req.Async {
		return a.async(req.RequestID, map[string]any{"bizName": req.BizName, "bizVersion": req.BizVersion}, run)
	}
	return run(ctx)
}

func (a *Agent) queryAll(ctx context.Context, body []byte) (any, error) {
	out := []BizInfo{}
	for _, mod := range a.backend.Modules() {
		active := mod.Active()
		for _, v := range mod.Versions() {
			out = append(out, a.info(v, v == active))
		}
	}
	return out, nil
}

func (a *Agent) health(ctx context.Context, body []byte) (any, error) {
	var req struct {
		Type       string `json:"type"`
		BizName    string `json:"bizName"`
		BizVersion string `json:"bizVersion"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.Type == "biz" || req.BizName != "" {
		var infos []BizInfo
		for _, mod := range a.backend.Modules() {
			if req.BizName != "" && mod.Name != req.BizName {
				continue
			}
			for _, v := range mod.Versions() {
				if req.BizVersion == "" || v.Manifest.Version == req.BizVersion {
					infos = append(infos, a.info(v, v == mod.Active()))
				}
			}
		}
		if req.BizName != "" && len(infos) == 0 {
			return nil, &opError{code: CodeNotFoundBiz, err: fmt.Errorf("module %s %s is not installed", req.BizName, req.BizVersion)}
		}
		return map[string]any{"healthData": map[string]any{"bizListInfo": infos}}, nil
	}
	return map[string]any{"healthData": a.backend.Health(ctx)}, nil
}

func (a *Agent) queryOps(ctx context.Context, body []byte) (any, error) {
	var req struct {
		RequestID string `json:"requestId"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.RequestID == "" {
		return nil, badRequest("requestId is missing")
	}
	rec, ok := a.ops.get(req.RequestID)
	if !ok {
		return nil, badRequest("no operation with requestId %q (records are kept for the last %d operations)", req.RequestID, maxOps)
	}
	return rec, nil
}

func (a *Agent) gc(ctx context.Context, body []byte) (any, error) {
	removed, err := a.backend.GC(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"removed": removed}, nil
}

// async starts run in the background and answers its process record at once.
func (a *Agent) async(id string, meta map[string]any, run func(ctx context.Context) (any, error)) (any, error) {
	rec, err := a.ops.start(id, meta)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	a.wg.Go(func() {
		res, err := run(a.ctx)
		if err != nil {
			if oe, ok := errors.AsType[*opError](err); ok && oe.data != nil {
				res = oe.data
			}
		}
		a.ops.finish(id, res, err)
	})
	return rec, nil
}

// opLog keeps the records of the latest asynchronous operations.
type opLog struct {
	mu    sync.Mutex
	recs  map[string]*ProcessRecord
	order []string
}

const maxOps = 1000

func newOpLog() *opLog { return &opLog{recs: map[string]*ProcessRecord{}} }

func (l *opLog) start(id string, meta map[string]any) (ProcessRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.recs[id]; ok && (r.Status == "EXECUTING" || r.Status == "INITIALIZED") {
		return ProcessRecord{}, fmt.Errorf("requestId %q is already executing", id)
	}
	rec := &ProcessRecord{RequestID: id, ArkBizMeta: meta, Status: "EXECUTING", StartTime: time.Now().UnixMilli()}
	if _, ok := l.recs[id]; !ok {
		l.order = append(l.order, id)
	}
	l.recs[id] = rec
	if len(l.order) > maxOps {
		delete(l.recs, l.order[0])
		l.order = l.order[1:]
	}
	return *rec, nil
}

func (l *opLog) finish(id string, res any, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec, ok := l.recs[id]
	if !ok {
		return
	}
	rec.Status = "SUCCEEDED"
	if err != nil {
		rec.Status = "FAILED"
	}
	rec.EndTime = time.Now().UnixMilli()
	rec.ElapsedTime = rec.EndTime - rec.StartTime
	rec.Result = res
}

func (l *opLog) get(id string) (ProcessRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec, ok := l.recs[id]
	if !ok {
		return ProcessRecord{}, false
	}
	return *rec, true
}
