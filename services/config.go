package services

import (
	"context"
	"maps"

	"github.com/kouple/kouple/manifest"
)

// Config answers a module's configuration from the base: what the operator set for that module, and the keys
// the base chooses to share with every module granted "config" (Koupleless's share keys). Never the base's
// own environment.
type Config struct {
	PerModule map[string]map[string]string // module name -> key -> value
	Shared    map[string]string
	Policy    *Policy
}

// Host is the config service: get {key} -> {value, found}; all -> {key: value}.
func (c *Config) Host() host {
	view := func(caller *manifest.Manifest) (map[string]string, error) {
		if err := c.Policy.granted(caller, "config"); err != nil {
			return nil, err
		}
		out := maps.Clone(c.Shared)
		if out == nil {
			out = map[string]string{}
		}
		if caller != nil {
			maps.Copy(out, c.PerModule[caller.Name])
		}
		return out, nil
	}
	return host{
		"get": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			var a struct {
				Key string `json:"key"`
			}
			if err := decode(p, &a); err != nil {
				return nil, err
			}
			all, err := view(caller)
			if err != nil {
				return nil, err
			}
			v, ok := all[a.Key]
			return map[string]any{"value": v, "found": ok}, nil
		},
		"all": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			return view(caller)
		},
	}
}
