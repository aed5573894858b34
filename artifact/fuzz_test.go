package artifact

import (
	"crypto/ed25519"
	"testing"
)

// FuzzReadWasm: no input makes the artifact decoder, the signature reader or the manifest embedder panic.
func FuzzReadWasm(f *testing.F) {
	f.Add(module(goodManifest, "kouple_v1.abi_version"))
	f.Add(module(`{"abi":1,"name":"a","version":"1","contextPath":"/a"}`, "wasi_snapshot_preview1.fd_write", "kouple_v1.call"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\x05\x04abcd"))
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		Detect(data)
		if info, err := ReadWasm(data); err == nil {
			if _, err := EmbedManifest(data, info.Manifest); err != nil {
				t.Fatalf("a readable module could not take its own manifest back: %v", err)
			}
		}
		Verify(data, []ed25519.PublicKey{pub})
	})
}
