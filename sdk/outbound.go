package sdk

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/kouple/kouple/sdk/httpwire"
)

// MaxOutboundBody bounds an outbound request's body and its response's body: each travels whole through the
// base (no streaming). The base enforces the same bound.
const MaxOutboundBody = 8 << 20

// Transport is an http.RoundTripper that sends requests through the base's http service, on the base's
// connection pool, timeouts and TLS roots, to the hosts the module was granted (capability http:HOST and
// the operator's --grant MODULE=http:HOST). In wasm it is http.DefaultTransport, so an ordinary http.Client
// works unchanged; a native module uses it explicitly (&http.Client{Transport: sdk.Transport{}}), and
// outside a base it is http.DefaultTransport.
type Transport struct{}

// RoundTrip implements http.RoundTripper.
func (Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !inBase() {
		return http.DefaultTransport.RoundTrip(r)
	}
	in := httpwire.Request{Method: r.Method, URL: r.URL.String(), Header: r.Header}
	if r.Host != "" && r.Host != r.URL.Host {
		in.Host = r.Host
	}
	if r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxOutboundBody+1))
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(body) > MaxOutboundBody {
			return nil, fmt.Errorf("request body is larger than %d MiB, the most an outbound request through the base may carry", MaxOutboundBody>>20)
		}
		in.Body = body
	}
	var out *httpwire.Response // a native module gets the base's answer itself
	if err := Call(r.Context(), "http", "do", in, &out); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("outbound %s %s: the base answered nothing", r.Method, r.URL.Redacted())
	}
	if out.Header == nil {
		out.Header = http.Header{}
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", out.Status, http.StatusText(out.Status)),
		StatusCode:    out.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        out.Header,
		Body:          io.NopCloser(bytes.NewReader(out.Body)),
		ContentLength: int64(len(out.Body)),
		Request:       r,
	}, nil
}
