package base

import (
	"fmt"
	"path/filepath"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/services"
)

// openSharing opens the services through which modules reach the world and each other: outbound HTTP,
// events and timers.
func (b *Base) openSharing() error {
	var err error
	b.outbound = services.NewOutbound(b.policy, b.cfg.OutboundTimeout)
	if b.events, err = services.OpenEvents(filepath.Join(b.cfg.DataDir, "events.db"), b.policy, b.registry, b.logger); err != nil {
		return err
	}
	if b.timers, err = services.OpenTimers(filepath.Join(b.cfg.DataDir, "timers.db"), b.policy, b.registry, b.cfg.Clock, b.logger); err != nil {
		b.events.Close()
		return fmt.Errorf("timers: %w", err)
	}
	b.registry.RegisterService("http", b.outbound.Host())
	b.registry.RegisterService("events", b.events.Host())
	b.registry.RegisterService("timers", b.timers.Host())
	return nil
}

// syncServices tells events and timers which modules are installed and active, after every operation
// and once the modules are back at start: subscriptions follow every installed version, timers the active one.
func (b *Base) syncServices() {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	installed := map[string][]*manifest.Manifest{}
	names := map[string]bool{}
	active := map[string]*manifest.Manifest{}
	for _, mod := range b.registry.Modules() {
		names[mod.Name] = true
		for _, v := range mod.Versions() {
			installed[mod.Name] = append(installed[mod.Name], v.Manifest)
		}
		if v := mod.Active(); v != nil {
			active[mod.Name] = v.Manifest
		}
	}
	b.events.Sync(installed)
	b.timers.Sync(active, names)
}

// Events is the base's event bus (publish from the embedding program with caller nil).
func (b *Base) Events() *services.Events { return b.events }
