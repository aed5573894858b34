package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// BaseClient sends Arklet commands to one base's agent. It speaks the wire format only, so the controller
// does not depend on the base's packages.
type BaseClient struct {
	URL   string // the agent's base URL
	Token string // bearer token; none sent when empty
	HTTP  *http.Client
}

// envelope is Arklet's answer.
type envelope struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// BizInfo is one module version on a base (queryAllBiz).
type BizInfo struct {
	BizName         string        `json:"bizName"`
	BizVersion      string        `json:"bizVersion"`
	BizState        string        `json:"bizState"`
	Active          bool          `json:"active"`
	BizStateRecords []StateRecord `json:"bizStateRecords"`
}

// StateRecord is one state transition of a module version.
type StateRecord struct {
	ChangeTime int64  `json:"changeTime"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	Message    string `json:"message"`
}

// clientResponse is the data of install and uninstall answers.
type clientResponse struct {
	Code     string    `json:"code"`
	Message  string    `json:"message"`
	BizInfos []BizInfo `json:"bizInfos"`
}

// CommandError is a command the base refused or failed: Code is Arklet's (FAILED, REPEAT_BIZ, ...).
type CommandError struct {
	Command, Code, Message string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Command, e.Code, e.Message)
}

// post sends command with req as its JSON body; the caller closes the answer's body.
func (c *BaseClient) post(ctx context.Context, command string, req any) (*http.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/"+command, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(hr)
}

func (c *BaseClient) call(ctx context.Context, command string, req, out any) error {
	resp, err := c.post(ctx, command, req)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", command, c.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s on %s: %w", command, c.URL, err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s on %s answered %s: %.200s", command, c.URL, resp.Status, raw)
	}
	if env.Code != "SUCCESS" {
		var cr clientResponse
		if json.Unmarshal(env.Data, &cr) == nil && cr.Code != "" {
			msg := cmpOr(cr.Message, env.Message)
			return &CommandError{Command: command, Code: cr.Code, Message: msg}
		}
		return &CommandError{Command: command, Code: env.Code, Message: env.Message}
	}
	if out != nil && len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("%s on %s: decode answer: %w", command, c.URL, err)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// InstallRequest is installBiz's body (the fields the controller uses).
type InstallRequest struct {
	BizURL     string            `json:"bizUrl"`
	BizName    string            `json:"bizName"`
	BizVersion string            `json:"bizVersion"`
	Envs       map[string]string `json:"envs,omitempty"`
	Limits     *InstallLimits    `json:"limits,omitempty"` // over the manifest's (Kouple's extra)
	Activate   bool              `json:"activate,omitempty"`
	Replace    bool              `json:"replace,omitempty"` // reinstall a version already installed (new artifact)
}

// Install installs (and, with Activate, activates) a module version.
func (c *BaseClient) Install(ctx context.Context, req InstallRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return c.call(ctx, "installBiz", req, nil)
}

// Uninstall removes a module version; a version that is not installed is not an error.
func (c *BaseClient) Uninstall(ctx context.Context, name, version string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := c.call(ctx, "uninstallBiz", map[string]string{"bizName": name, "bizVersion": version}, nil)
	if ce, ok := err.(*CommandError); ok && ce.Code == "NOT_FOUND_BIZ" {
		return nil
	}
	return err
}

// QueryAll lists every module version on the base.
func (c *BaseClient) QueryAll(ctx context.Context) ([]BizInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []BizInfo
	err := c.call(ctx, "queryAllBiz", struct{}{}, &out)
	return out, err
}

// Health is the base's health data; only the memory figures are read.
type Health struct {
	HealthData struct {
		JVM map[string]any `json:"jvm"`
		CPU map[string]any `json:"cpu"`
	} `json:"healthData"`
}

// Health asks the base for its health data.
func (c *BaseClient) Health(ctx context.Context) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var h Health
	err := c.call(ctx, "health", struct{}{}, &h)
	return h, err
}
