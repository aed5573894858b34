package module

import (
	"fmt"
	goruntime "runtime"
	"sync"
	"testing"

	"github.com/kouple/kouple/manifest"
)

// TestRoutesConcurrentRebuilds: modules added side by side (the base's static modules, installed a few at a
// time) each get their route, however their rebuilds of the routing table interleave.
func TestRoutesConcurrentRebuilds(t *testing.T) {
	// More threads than cores: the OS preempts rebuilds anywhere, as a busy base's installs do.
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(32))
	r := NewRegistry(nil, nil)
	const n = 500
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("m%d", i)
			mod := &Module{Name: name, versions: map[string]*Version{
				"1.0.0": {Manifest: &manifest.Manifest{Name: name, Version: "1.0.0", ContextPath: "/" + name}},
			}}
			r.mu.Lock()
			r.modules[name] = mod
			r.mu.Unlock()
			r.rebuildRoutes()
		})
	}
	wg.Wait()
	for i := range n {
		if mod, _, _ := r.Route(fmt.Sprintf("/m%d/", i)); mod == nil || mod.Name != fmt.Sprintf("m%d", i) {
			t.Fatalf("/m%d/ has no route: %v", i, mod)
		}
	}
}
