package artifact

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	pub, err := GenerateKey(filepath.Join(dir, "team"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := LoadPrivateKey(filepath.Join(dir, "team.key"))
	if err != nil {
		t.Fatal(err)
	}
	if loaded, err := LoadPublicKey(filepath.Join(dir, "team.pub")); err != nil || !loaded.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	art := module(goodManifest, "kouple_v1.abi_version")

	signed, err := Sign(art, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWasm(signed); err != nil {
		t.Fatalf("a signed artifact is still a module: %v", err)
	}
	if id, err := Verify(signed, []ed25519.PublicKey{other, pub}); err != nil || id != KeyID(pub) {
		t.Fatalf("verify: %s %v", id, err)
	}
	resigned, _ := Sign(signed, priv)
	if len(resigned) != len(signed) {
		t.Errorf("signing again added a second signature")
	}
	if _, err := Verify(art, []ed25519.PublicKey{pub}); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: %v", err)
	}
	if _, err := Verify(signed, []ed25519.PublicKey{other}); err == nil || !strings.Contains(err.Error(), "which this base does not trust") {
		t.Errorf("untrusted key: %v", err)
	}
	// Change the manifest after signing: the signature no longer matches.
	tampered := append([]byte(nil), signed...)
	i := strings.Index(string(tampered), `"version":"1.0.0"`)
	copy(tampered[i:], `"version":"6.6.6"`)
	if _, err := Verify(tampered, []ed25519.PublicKey{pub}); err == nil || !strings.Contains(err.Error(), "does not match the artifact") {
		t.Errorf("tampered: %v", err)
	}
}
