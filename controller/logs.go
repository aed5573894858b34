package controller

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kouple/kouple/observe"
)

// The kubelet API the controller serves for its vnodes: GET /containerLogs/{namespace}/{pod}/{container},
// which `kubectl logs [-f]` reaches through the API server. A container is a module, so its log is that
// module version's own records on its base (the agent's logs command), not the base's whole output.
//
// The API server dials a node's kubelet at its address (node.status.addresses) and daemon endpoint port;
// with Config.KubeletIP and KubeletPort set, every vnode advertises this controller's kubelet endpoint.

// logsRequest is the agent's logs command (agent.LogsRequest on the wire).
type logsRequest struct {
	BizName    string `json:"bizName"`
	BizVersion string `json:"bizVersion,omitempty"`
	Since      string `json:"since,omitempty"`
	Follow     bool   `json:"follow,omitempty"`
}

// logsContentType is the agent's type for a followed stream (agent.LogsContentType).
const logsContentType = "application/x-ndjson"

// Logs calls each for the module's log records on the base, oldest first; with Follow it keeps calling it
// for new records until ctx ends or the base closes the stream.
func (c *BaseClient) Logs(ctx context.Context, req logsRequest, each func(observe.Record) error) error {
	resp, err := c.post(ctx, "logs", req)
	if err != nil {
		return fmt.Errorf("logs of %s:%s on %s: %w", req.BizName, req.BizVersion, c.URL, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), logsContentType) {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var r observe.Record
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			if err := each(r); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("log stream of %s:%s on %s: %w", req.BizName, req.BizVersion, c.URL, err)
		}
		return nil
	}
	var env struct {
		envelope
		Data []observe.Record `json:"data"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("logs of %s:%s on %s answered %s: %.200s", req.BizName, req.BizVersion, c.URL, resp.Status, raw)
	}
	if env.Code != "SUCCESS" {
		return &CommandError{Command: "logs", Code: env.Code, Message: env.Message}
	}
	for _, r := range env.Data {
		if err := each(r); err != nil {
			return err
		}
	}
	return nil
}

// KubeletHandler serves the kubelet API of this controller's vnodes: container logs.
func (c *Controller) KubeletHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", c.serveContainerLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

// logOptions are the kubelet's container log query parameters that a module log can honour.
type logOptions struct {
	follow, timestamps bool
	tail               int // lines from the end; -1 all
	limitBytes         int // 0 no limit
	since              string
}

func parseLogOptions(q map[string][]string) (logOptions, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	o := logOptions{tail: -1}
	var err error
	boolean := func(k string, dst *bool) {
		if s := get(k); s != "" && err == nil {
			if *dst, err = strconv.ParseBool(s); err != nil {
				err = fmt.Errorf("%s=%q: %w", k, s, err)
			}
		}
	}
	number := func(k string, dst *int) {
		if s := get(k); s != "" && err == nil {
			if *dst, err = strconv.Atoi(s); err != nil || *dst < 0 {
				err = fmt.Errorf("%s=%q: want a number ≥ 0", k, s)
			}
		}
	}
	boolean("follow", &o.follow)
	boolean("timestamps", &o.timestamps)
	number("tailLines", &o.tail)
	number("limitBytes", &o.limitBytes)
	var previous bool
	boolean("previous", &previous)
	if err != nil {
		return o, err
	}
	if previous {
		return o, errors.New("previous: a module keeps no logs of an earlier instance apart from its own")
	}
	if s := get("sinceSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return o, fmt.Errorf("sinceSeconds=%q: want a number ≥ 1", s)
		}
		o.since = (time.Duration(n) * time.Second).String()
	}
	if s := get("sinceTime"); s != "" {
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return o, fmt.Errorf("sinceTime=%q: %w", s, err)
		}
		o.since = s
	}
	return o, nil
}

func (c *Controller) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseLogOptions(r.URL.Query())
	if err != nil {
		http.Error(w, "container logs: "+err.Error(), http.StatusBadRequest)
		return
	}
	v, m := c.module(ns, pod, container)
	if v == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s has no module container %s on a vnode this controller drives", ns, pod, container), http.StatusNotFound)
		return
	}
	base := v.client()
	req := logsRequest{BizName: m.name, BizVersion: m.version, Since: opts.since}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	out := &logWriter{w: w, rc: http.NewResponseController(w), left: opts.limitBytes, timestamps: opts.timestamps}
	ctx := r.Context()

	// Without follow, or with tailLines: read what the base has and keep the last lines; a follower then
	// skips the records already read (the agent's stream starts with its backlog).
	var last uint64
	if opts.tail >= 0 || !opts.follow {
		var recs []observe.Record
		err := base.Logs(ctx, req, func(rec observe.Record) error { recs = append(recs, rec); return nil })
		if err != nil {
			http.Error(w, fmt.Sprintf("logs of module %s in pod %s/%s: %v", m.id(), ns, pod, err), http.StatusBadGateway)
			return
		}
		if n := len(recs); n > 0 {
			last = recs[n-1].Seq
		}
		if opts.tail >= 0 && len(recs) > opts.tail {
			recs = recs[len(recs)-opts.tail:]
		}
		for _, rec := range recs {
			if out.write(rec) != nil {
				return
			}
		}
		if !opts.follow {
			return
		}
	}
	out.flush()
	req.Follow = true
	err = base.Logs(ctx, req, func(rec observe.Record) error {
		if rec.Seq <= last {
			return nil
		}
		return out.write(rec)
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, errLimit) {
		v.log.Warn("follow module logs", "module", m.id(), "pod", ns+"/"+pod, "err", err)
	}
}

var errLimit = errors.New("limitBytes reached")

// logWriter writes records as lines, flushing each, up to a byte limit.
type logWriter struct {
	w          io.Writer
	rc         *http.ResponseController
	left       int // bytes that may still be written; 0 means no limit
	limited    bool
	timestamps bool
}

func (l *logWriter) write(rec observe.Record) error {
	line := rec.Line() + "\n"
	if l.timestamps {
		line = rec.Time.UTC().Format(time.RFC3339Nano) + " " + line
	}
	if l.left > 0 || l.limited {
		l.limited = true
		if len(line) > l.left {
			line = line[:l.left]
		}
		l.left -= len(line)
	}
	if _, err := io.WriteString(l.w, line); err != nil {
		return err
	}
	l.flush()
	if l.limited && l.left == 0 {
		return errLimit
	}
	return nil
}

func (l *logWriter) flush() { l.rc.Flush() }

// module finds the vnode of this controller that holds pod namespace/name and its module for container.
func (c *Controller) module(namespace, name, container string) (*vnode, modState) {
	c.mu.Lock()
	nodes := make([]*vnode, 0, len(c.nodes))
	for _, v := range c.nodes {
		nodes = append(nodes, v)
	}
	c.mu.Unlock()
	for _, v := range nodes {
		v.mu.Lock()
		e := v.pods[namespace+"/"+name]
		var m *modState
		if e != nil {
			m = e.mods[container]
		}
		var found modState
		if m != nil {
			found = *m
		}
		v.mu.Unlock()
		if m != nil {
			return v, found
		}
	}
	return nil, modState{}
}

// advertiseKubelet points the API server at this controller's kubelet endpoint for node n: its only
// address is the controller's (a Hostname address would be dialled first, and it names the base's host),
// and its daemon endpoint is the controller's port. The base's IP stays in the pods' status and an
// annotation.
func (c *Controller) advertiseKubelet(n *corev1.Node) {
	if c.cfg.KubeletPort == 0 || c.cfg.KubeletIP == "" {
		return
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			n.Annotations["kouple.io/base-ip"] = a.Address
		}
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: c.cfg.KubeletIP}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(c.cfg.KubeletPort)
}

// SelfSignedCert makes a serving certificate for the kubelet endpoint, valid for hosts (IPs or names) for a
// year. The API server does not verify kubelet certificates unless it is given
// --kubelet-certificate-authority; give it a CA-issued certificate (--kubelet-cert) when it is.
func SelfSignedCert(hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kouple-controller"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
