package services

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// BenchmarkPublish: one event published to two subscribers and delivered to both (the delivery answers at once):
// what the durable queue costs per event.
func BenchmarkPublish(b *testing.B) {
	delivered := make(chan struct{}, 1024)
	target := runtime.HostFunc(func(context.Context, string, string, string, []byte) ([]byte, error) {
		delivered <- struct{}{}
		return nil, nil
	})
	e, err := OpenEvents(filepath.Join(b.TempDir(), "events.db"), &Policy{}, target, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	sub := &manifest.Manifest{Name: "sub", Subscribe: []string{"t"}}
	pub := &manifest.Manifest{Name: "pub", Capabilities: []string{"events:t"}}
	e.Sync(map[string][]*manifest.Manifest{"sub": {sub}, "sub2": {{Name: "sub2", Subscribe: []string{"t"}}}})
	b.ResetTimer()
	for b.Loop() {
		if _, n, err := e.Publish(pub, "t", []byte(`{"id":"42"}`)); err != nil || n != 2 {
			b.Fatal(n, err)
		}
		<-delivered
		<-delivered
	}
}
