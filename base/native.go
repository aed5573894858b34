package base

import (
	"log/slog"
	"path/filepath"

	"github.com/kouple/kouple/runtime/native"
)

// newNative prepares the native runtime (Go plugins) with its plugin files under the data dir. A base that
// cannot load plugins (built without cgo, say) still runs wasm modules: native ones are refused at install.
func newNative(dataDir string, logger *slog.Logger) *native.Runtime {
	rt, err := native.New(native.Config{Dir: filepath.Join(dataDir, "cache", "native"), Logger: logger})
	if err != nil {
		logger.Warn("native modules unavailable", "err", err)
		return nil
	}
	return rt
}

// nativeHealth is the native runtime's part of health: how this base was built (what `kouple build --runtime
// native --base URL` builds against) and the code native modules hold, including uninstalled ones, whose code
// Go cannot unload.
func (b *Base) nativeHealth() map[string]any {
	if b.native == nil {
		return map[string]any{"available": false}
	}
	held, heldBytes, loaded, loadedBytes := b.native.Held()
	recycling := false
	select {
	case <-b.recycle:
		recycling = true
	default:
	}
	return map[string]any{
		"recycleAtBytes":       b.cfg.RecycleNativeBytes,
		"recycleRequested":     recycling,
		"available":            true,
		"buildInfo":            b.native.BuildInfo(),
		"loadedPlugins":        loaded,
		"loadedCodeBytes":      loadedBytes,
		"uninstalledPlugins":   held,
		"uninstalledCodeBytes": heldBytes,
	}
}

// checkRecycle asks for the base to be recycled once the code of uninstalled native modules reaches the
// configured threshold.
func (b *Base) checkRecycle() {
	if b.native == nil || b.cfg.RecycleNativeBytes <= 0 {
		return
	}
	held, heldBytes, _, _ := b.native.Held()
	if int64(heldBytes) < b.cfg.RecycleNativeBytes {
		return
	}
	b.recycleOnce.Do(func() {
		b.logger.Warn("recycling the base: uninstalled native modules still hold their code", "plugins", held, "bytes", heldBytes, "threshold", b.cfg.RecycleNativeBytes)
		close(b.recycle)
	})
}
