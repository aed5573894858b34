package base

import (
	"net/http"
	"strings"
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
	v.ServeHTTP(w, r2)
}
