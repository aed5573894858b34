package base

import (
	"net/http"
	"strings"
	"time"

	"github.com/kouple/kouple/observe"
)

// ServeHTTP is the gateway: a request goes to the active version of the module whose context path is the
// longest prefix of its path, with the prefix stripped and X-Forwarded-Prefix set, so an unmodified app routes
// as before.
func (b *Base) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mod, prefix, rest := b.registry.Route(r.URL.Path)
	if mod == nil {
		http.Error(w, "no module serves "+r.URL.Path+" in this base", http.StatusNotFound)
		return
	}
	v := mod.Active()
	if v == nil {
		http.Error(w, mod.WhyInactive(), http.StatusServiceUnavailable)
		return
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = "/" + strings.TrimPrefix(rest, "/")
	if u.RawPath != "" {
		u.RawPath = "/" + strings.TrimPrefix(strings.TrimPrefix(u.RawPath, prefix), "/")
	}
	r2.URL = &u
	r2.RequestURI = u.RequestURI()
	r2.Header = r.Header.Clone()
	r2.Header.Set("X-Forwarded-Prefix", prefix)
	tr := traceRequest(r2.Header)
	w.Header().Set(observe.HeaderRequestID, tr.RequestID)
	r2 = r2.WithContext(observe.WithTrace(r.Context(), tr))
	began := time.Now()
	v.ServeHTTP(w, r2)
	b.metrics.observe(v, time.Since(began))
}

// traceRequest gives a request its id and trace context, in its headers for the module: the client's
// X-Request-Id, else a new one; the client's W3C traceparent continued with a new span id for the module, else
// a new trace.
func traceRequest(h http.Header) observe.Trace {
	tr, ok := observe.ParseTraceparent(h.Get(observe.HeaderTraceparent))
	if ok {
		tr = tr.Child()
	} else {
		tr = observe.NewTrace()
		h.Del("Tracestate") // it belonged to a traceparent we could not continue
	}
	tr.RequestID = observe.CleanRequestID(h.Get(observe.HeaderRequestID))
	if tr.RequestID == "" {
		tr.RequestID = observe.NewRequestID()
	}
	h.Set(observe.HeaderTraceparent, tr.Traceparent())
	h.Set(observe.HeaderRequestID, tr.RequestID)
	return tr
}
