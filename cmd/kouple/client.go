package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/agent"
)

// client talks to a base's agent.
type client struct {
	base string
	http *http.Client
}

func addBaseFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "base", "", "the base's agent URL (default $KOUPLE_BASE, else http://127.0.0.1:1238)")
}

func newClient(addr string) *client {
	addr = cmp.Or(addr, os.Getenv("KOUPLE_BASE"), "http://127.0.0.1:1238")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &client{base: strings.TrimRight(addr, "/"), http: &http.Client{Timeout: 10 * time.Minute}}
}

// do runs an agent command and decodes its data into out. A failed command is an error in the base's words.
func (c *client) do(ctx context.Context, command string, req, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+command, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("cannot reach the base's agent at %s: %w (is `kouple base` running? set --base or KOUPLE_BASE)", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("agent %s: %w", c.base, err)
	}
	var env struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("agent %s answered %s, not a Kouple/Arklet envelope: %.200s", c.base, resp.Status, raw)
	}
	if env.Code != agent.CodeSuccess {
		return fmt.Errorf("%s", cmp.Or(env.Message, env.Code))
	}
	if out != nil && len(env.Data) > 0 {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

func (c *client) modules(ctx context.Context) ([]agent.BizInfo, error) {
	var infos []agent.BizInfo
	err := c.do(ctx, "queryAllBiz", struct{}{}, &infos)
	return infos, err
}

// gatewayURL asks the base where its gateway listens.
func (c *client) gatewayURL(ctx context.Context) string {
	var h struct {
		HealthData struct {
			Base struct {
				Gateway string `json:"gateway"`
			} `json:"base"`
		} `json:"healthData"`
	}
	if c.do(ctx, "health", struct{}{}, &h) != nil {
		return ""
	}
	return h.HealthData.Base.Gateway
}
