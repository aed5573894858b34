package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/sdk/httpwire"
)

// MaxHTTPBody bounds the body of an outbound request and of its response, each way: both travel whole in one
// call (no streaming), so a module cannot make the base buffer more.
const MaxHTTPBody = 8 << 20

// Outbound sends modules' HTTP requests on the base's client — its connection pool, timeouts and TLS roots —
// to the hosts each module was granted: the capability http:HOST (any port), http:HOST:PORT or
// http:*.DOMAIN, which needs the operator's grant (--grant MODULE=http:HOST). Redirects are not followed
// here: the module's own http.Client follows them, and each hop is checked again.
type Outbound struct {
	client *http.Client
	policy *Policy
}

// NewOutbound makes the http service with the base's client settings: timeout bounds a whole exchange (a
// call's own deadline can only shorten it).
func NewOutbound(policy *Policy, timeout time.Duration) *Outbound {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return &Outbound{policy: policy, client: &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Close closes the idle pooled connections.
func (o *Outbound) Close() { o.client.CloseIdleConnections() }

// allowed reports whether caller may reach host (host or host:port of u), naming the grant it needs if not.
func (o *Outbound) allowed(caller *manifest.Manifest, u *url.URL) error {
	if caller == nil {
		return nil
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	var refused error
	for _, c := range caller.Capabilities {
		pattern, ok := strings.CutPrefix(c, "http:")
		if !ok || !hostMatches(pattern, host, port) {
			continue
		}
		if refused = o.policy.operatorAllows(caller, c); refused == nil {
			return nil
		}
	}
	if refused != nil {
		return refused
	}
	return fmt.Errorf("permission denied: module %s may not reach %s: add \"http:%s\" to capabilities in its kouple.yaml, and the operator must grant it (--grant %s=http:%s)", caller.ID(), host, host, caller.Name, host)
}

// hostMatches matches a granted pattern — HOST, HOST:PORT or *.DOMAIN — against a request's host and port.
func hostMatches(pattern, host, port string) bool {
	if h, p, err := net.SplitHostPort(pattern); err == nil {
		if p != port {
			return false
		}
		pattern = h
	}
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	if domain, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+domain)
	}
	return pattern == host
}

// Do sends one request for caller.
func (o *Outbound) Do(ctx context.Context, caller *manifest.Manifest, in httpwire.Request) (*httpwire.Response, error) {
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("outbound URL %q is not an absolute http or https URL", in.URL)
	}
	if err := o.allowed(caller, u); err != nil {
		return nil, err
	}
	if len(in.Body) > MaxHTTPBody {
		return nil, fmt.Errorf("request body to %s is %d bytes, more than the %d MiB an outbound request may carry", u.Host, len(in.Body), MaxHTTPBody>>20)
	}
	req, err := http.NewRequestWithContext(ctx, in.Method, u.String(), bytes.NewReader(in.Body))
	if err != nil {
		return nil, fmt.Errorf("outbound request to %s: %w", u.Host, err)
	}
	req.Header = in.Header
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Host = in.Host
	resp, err := o.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("outbound %s %s: %w", in.Method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPBody+1))
	if err != nil {
		return nil, fmt.Errorf("outbound %s %s: reading the response: %w", in.Method, u.Redacted(), err)
	}
	if len(body) > MaxHTTPBody {
		return nil, fmt.Errorf("outbound %s %s: the response body is larger than %d MiB, the most an outbound response may carry", in.Method, u.Redacted(), MaxHTTPBody>>20)
	}
	return &httpwire.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Host is the http service: do {method, url, header, body} -> {status, header, body} (the sdk/httpwire types,
// passed as they are from a native module).
func (o *Outbound) Host() valueHost {
	h := newValueHost()
	h.add("do", typed(func(ctx context.Context, caller *manifest.Manifest, in httpwire.Request) (any, error) {
		return o.Do(ctx, caller, in)
	}))
	return h
}
