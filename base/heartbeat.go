package base

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// BaseStatus is the heartbeat a base POSTs to <controller>/heartbeat: Koupleless ModuleController's HTTP
// tunnel BaseStatus, plus Kouple's fields telling the controller where the agent and gateway are.
type BaseStatus struct {
	BaseMetadata  BaseMetadata `json:"baseMetadata"`
	LocalIP       string       `json:"localIP"`
	LocalHostName string       `json:"localHostName"`
	Port          int          `json:"port"` // the agent's port (Arklet's)
	State         string       `json:"state"`
	// Kouple's extras.
	AgentURL   string `json:"agentURL"`
	GatewayURL string `json:"gatewayURL"`
	Env        string `json:"env"`
	Stack      string `json:"stack"`
}

// BaseMetadata identifies a base (Koupleless's).
type BaseMetadata struct {
	Identity    string `json:"identity"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	ClusterName string `json:"clusterName"`
}

// Status is the heartbeat this base sends.
func (b *Base) Status() BaseStatus {
	host, _ := os.Hostname()
	ip, port := "", 0
	if a, ok := b.agentLn.Addr().(*net.TCPAddr); ok {
		ip, port = a.IP.String(), a.Port
		if a.IP.IsUnspecified() {
			ip = outboundIP()
		}
	}
	agentURL := b.AgentURL()
	if h, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(agentURL, "https://"), "http://")); err == nil && net.ParseIP(h).IsUnspecified() {
		agentURL = strings.Replace(agentURL, net.JoinHostPort(h, p), net.JoinHostPort(ip, p), 1)
	}
	gw := b.GatewayURL()
	if h, p, err := net.SplitHostPort(strings.TrimPrefix(gw, "http://")); err == nil && net.ParseIP(h).IsUnspecified() {
		gw = "http://" + net.JoinHostPort(ip, p)
	}
	return BaseStatus{
		BaseMetadata:  BaseMetadata{Identity: b.id, Name: b.cfg.Name, Version: b.cfg.Version, ClusterName: b.cfg.Cluster},
		LocalIP:       ip,
		LocalHostName: host,
		Port:          port,
		State:         "activated",
		AgentURL:      agentURL,
		GatewayURL:    gw,
		Env:           b.cfg.Env,
		Stack:         "go",
	}
}

// outboundIP is the address other machines reach this one by (the source address of a route to the outside),
// for a base listening on every interface.
func outboundIP() string {
	c, err := net.Dial("udp", "192.0.2.1:9") // no packet is sent: UDP only picks a route
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// heartbeat POSTs the base's status to the controller every interval until the base stops. Failures are
// logged once per change of cause, not every beat.
func (b *Base) heartbeat() {
	url := strings.TrimSuffix(b.cfg.ControllerURL, "/") + "/heartbeat"
	client := &http.Client{Timeout: 10 * time.Second}
	lastErr := ""
	beat := func() {
		err := b.sendHeartbeat(client, url)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != lastErr {
			if err != nil {
				b.logger.Warn("heartbeat to controller failed", "controller", b.cfg.ControllerURL, "err", err)
			} else {
				b.logger.Info("heartbeat to controller accepted", "controller", b.cfg.ControllerURL)
			}
			lastErr = msg
		}
	}
	beat()
	t := time.NewTicker(b.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			beat()
		}
	}
}

func (b *Base) sendHeartbeat(client *http.Client, url string) error {
	body, err := json.Marshal(b.Status())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if b.cfg.ControllerToken != "" {
		req.Header.Set("Authorization", "Bearer "+b.cfg.ControllerToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("controller answered %s: %s", strconv.Quote(resp.Status), strings.TrimSpace(string(msg)))
	}
	return nil
}
