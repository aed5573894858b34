package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFetch(t *testing.T) {
	content := []byte("module bytes")
	sum := sha256.Sum256(content)
	digest := hex.EncodeToString(sum[:])
	path := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(path, content, 0o644)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/m.wasm" {
			http.NotFound(w, r)
			return
		}
		w.Write(content)
	}))
	defer srv.Close()

	for _, raw := range []string{"file://" + path, path, srv.URL + "/m.wasm", "file://" + path + "#sha256=" + digest} {
		ref, err := ParseRef(raw, "")
		if err != nil {
			t.Fatal(err)
		}
		data, err := Fetch(context.Background(), ref)
		if err != nil || string(data) != string(content) {
			t.Errorf("%s: %q %v", raw, data, err)
		}
	}
	for _, tc := range []struct{ raw, digest, want string }{
		{"", "", "the artifact URL is empty"},
		{"ftp://x/y", "", `scheme "ftp" is not supported`},
		{path + "#md5=abc", "", "is not #sha256=HEX"},
		{path, "xyz", "is not a sha256 digest"},
		{path + "#sha256=" + digest, strings.Repeat("0", 64), "but the request says"},
	} {
		if _, err := ParseRef(tc.raw, tc.digest); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRef(%q, %q) = %v, want %q", tc.raw, tc.digest, err, tc.want)
		}
	}
	for _, tc := range []struct{ raw, digest, want string }{
		{path, strings.Repeat("0", 64), "digest mismatch"},
		{"file:///does/not/exist.wasm", "", "no such file"},
		{srv.URL + "/missing.wasm", "", "404 Not Found"},
		{"file://" + t.TempDir(), "", "is a directory"},
	} {
		ref, err := ParseRef(tc.raw, tc.digest)
		if err == nil {
			_, err = Fetch(context.Background(), ref)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Fetch(%q) = %v, want %q", tc.raw, err, tc.want)
		}
	}
}
