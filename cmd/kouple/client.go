package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/base"
)

// client talks to a base's agent.
type client struct {
	base  string
	token string
	http  *http.Client
}

// target is where a command sends its requests, and with which credential.
type target struct{ addr, token string }

func addBaseFlag(cmd *cobra.Command, t *target) {
	cmd.Flags().StringVar(&t.addr, "base", "", "the base's agent URL (default $KOUPLE_BASE, else http://127.0.0.1:1238)")
	cmd.Flags().StringVar(&t.token, "token", "", "bearer token for the agent (default $KOUPLE_TOKEN, else the default data dir's token file)")
}

func newClient(t target) *client {
	addr := cmp.Or(t.addr, os.Getenv("KOUPLE_BASE"), "http://127.0.0.1:1238")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	token := cmp.Or(t.token, os.Getenv("KOUPLE_TOKEN"))
	if token == "" {
		if data, err := os.ReadFile(filepath.Join(base.DefaultDataDir(), "token")); err == nil {
			token = strings.TrimSpace(string(data))
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if tc, err := clientTLS(); err != nil {
		fmt.Fprintln(os.Stderr, "kouple:", err)
	} else {
		transport.TLSClientConfig = tc
	}
	return &client{base: strings.TrimRight(addr, "/"), token: token, http: &http.Client{Timeout: 10 * time.Minute, Transport: transport}}
}

// clientTLS trusts $KOUPLE_CA and presents $KOUPLE_CLIENT_CERT / $KOUPLE_CLIENT_KEY, when set.
func clientTLS() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := os.Getenv("KOUPLE_CA"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("KOUPLE_CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KOUPLE_CA %s holds no PEM certificate", ca)
		}
	}
	if cert := os.Getenv("KOUPLE_CLIENT_CERT"); cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, os.Getenv("KOUPLE_CLIENT_KEY"))
		if err != nil {
			return nil, fmt.Errorf("KOUPLE_CLIENT_CERT/KOUPLE_CLIENT_KEY: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
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
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
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
