package wasm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// TestBadArtifactsRefused: each bad artifact is refused with a clear error while a running module goes on.
func TestBadArtifactsRefused(t *testing.T) {
	_, srv := start(t, "runtime/wasm/testdata/probe", runtime.Spec{})
	good := moduletest.Build(t, "runtime/wasm/testdata/probe", "")
	info, err := artifact.ReadWasm(good)
	if err != nil {
		t.Fatal(err)
	}
	withManifest := func(edit func(*manifest.Manifest)) []byte {
		m := *info.Manifest
		edit(&m)
		b, err := artifact.EmbedManifest(good, &m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r := newRuntime(t)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"garbage", []byte("this is not a module"), "not a WebAssembly module"},
		{"bad name", withManifest(func(m *manifest.Manifest) { m.Name = "../../etc" }), `module name "../../etc" is not valid`},
		{"other ABI", withManifest(func(m *manifest.Manifest) { m.ABI = 2 }), "built for module ABI v2, but this base speaks v1"},
		{"native runtime", withManifest(func(m *manifest.Manifest) { m.Runtime = "native" }), "asks for the native runtime, but the artifact is a WebAssembly module"},
		{"corrupt code", corrupt(good), "not valid WebAssembly code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := r.Load(context.Background(), runtime.Spec{Artifact: tc.data})
			if err == nil {
				m.Close(context.Background())
				t.Fatalf("loaded; want an error saying %q", tc.want)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to say %q", err, tc.want)
			}
		})
	}
	if code, body := get(t, srv.URL+"/ok"); code != 200 || body != "ok\n" {
		t.Errorf("the running module was disturbed: GET /ok = %d %q", code, body)
	}
}

// corrupt overwrites bytes in the middle of the code section, keeping the module's structure.
func corrupt(wasm []byte) []byte {
	b := append([]byte(nil), wasm...)
	mid := len(b) / 2
	for i := mid; i < mid+64; i++ {
		b[i] = 0xff
	}
	return b
}
