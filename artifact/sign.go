package artifact

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// SignatureSection is the wasm custom section that carries an artifact's signature.
//
// What is signed: the artifact with every kouple.signature section removed (so the manifest, and all code, are
// covered), hashed with sha256; the ed25519 signature is over the bytes "kouple-artifact-v1\n" followed by that
// digest in hex. The section holds JSON {"alg":"ed25519","keyId":...,"sig":base64}. keyId is the first 16 hex
// digits of the sha256 of the public key, to name the key in messages.
const SignatureSection = "kouple.signature"

const signingContext = "kouple-artifact-v1\n"

type signature struct {
	Alg   string `json:"alg"`
	KeyID string `json:"keyId"`
	Sig   string `json:"sig"`
}

// KeyID names a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// unsigned returns the artifact without signature sections, and the signatures it carried.
func unsigned(wasm []byte) ([]byte, []signature, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, nil, errors.New("only WebAssembly artifacts can be signed and verified here")
	}
	out := append([]byte(nil), wasmMagic...)
	var sigs []signature
	err := walkSections(wasm, func(id byte, body []byte, off int) error {
		if id == 0 {
			if name, rest, err := readName(body); err == nil && name == SignatureSection {
				var s signature
				if err := json.Unmarshal(rest, &s); err != nil {
					return fmt.Errorf("signature section at offset %d: %w", off, err)
				}
				sigs = append(sigs, s)
				return nil
			}
		}
		out = appendSection(out, id, body)
		return nil
	})
	return out, sigs, err
}

func signedMessage(content []byte) []byte {
	sum := sha256.Sum256(content)
	return []byte(signingContext + hex.EncodeToString(sum[:]))
}

// Sign returns the artifact with a signature by key, replacing any earlier signature.
func Sign(wasm []byte, key ed25519.PrivateKey) ([]byte, error) {
	content, _, err := unsigned(wasm)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	s := signature{Alg: "ed25519", KeyID: KeyID(pub), Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, signedMessage(content)))}
	js, _ := json.Marshal(s)
	payload := appendName(nil, SignatureSection)
	return appendSection(content, 0, append(payload, js...)), nil
}

// ErrUnsigned means the artifact carries no signature.
var ErrUnsigned = errors.New("the artifact is not signed: sign it with `kouple sign --key KEY FILE`")

// Verify checks the artifact's signature against the trusted keys and returns the key that signed it.
func Verify(wasm []byte, trusted []ed25519.PublicKey) (string, error) {
	content, sigs, err := unsigned(wasm)
	if err != nil {
		return "", err
	}
	if len(sigs) == 0 {
		return "", ErrUnsigned
	}
	msg := signedMessage(content)
	for _, s := range sigs {
		if s.Alg != "ed25519" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			continue
		}
		for _, pub := range trusted {
			if KeyID(pub) == s.KeyID {
				if ed25519.Verify(pub, msg, raw) {
					return s.KeyID, nil
				}
				return "", fmt.Errorf("the signature by key %s does not match the artifact: it was changed after signing, or the signature is forged", s.KeyID)
			}
		}
	}
	return "", fmt.Errorf("the artifact is signed by key %s, which this base does not trust (trusted: %v)", sigs[0].KeyID, keyIDs(trusted))
}

func keyIDs(keys []ed25519.PublicKey) []string {
	ids := []string{}
	for _, k := range keys {
		ids = append(ids, KeyID(k))
	}
	return ids
}

// GenerateKey makes a signing key pair and writes it as PEM: the private key (PKCS #8, mode 0600) to
// NAME.key and the public key (PKIX) to NAME.pub.
func GenerateKey(name string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	if err := os.WriteFile(name+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(name+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

// LoadPrivateKey reads an ed25519 private key (PEM, PKCS #8).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key", path)
	}
	return priv, nil
}

// LoadPublicKey reads an ed25519 public key (PEM, PKIX).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 public key", path)
	}
	return pub, nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("%s: not a PEM %q block", path, typ)
	}
	return block.Bytes, nil
}
