package artifact

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

func TestOCIPushFetch(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	art := module(goodManifest, "kouple_v1.abi_version")

	digest, err := Push(context.Background(), art, host+"/team/hello:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"oci://" + host + "/team/hello:1.0.0", "oci://" + host + "/team/hello@" + digest} {
		ref, err := ParseRef(raw, "")
		if err != nil {
			t.Fatal(err)
		}
		data, err := Fetch(context.Background(), ref)
		if err != nil || string(data) != string(art) {
			t.Errorf("%s: %d bytes, %v", raw, len(data), err)
		}
	}
	// The artifact's own digest can be pinned too, beside the reference.
	ref, _ := ParseRef("oci://"+host+"/team/hello:1.0.0", strings.Repeat("0", 64))
	if _, err := Fetch(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("pinned wrong artifact digest: %v", err)
	}
	ref, _ = ParseRef("oci://"+host+"/team/hello@sha256:"+strings.Repeat("1", 64), "")
	if _, err := Fetch(context.Background(), ref); err == nil {
		t.Error("a manifest digest that is not in the registry was fetched")
	}
	ref, _ = ParseRef("oci://"+host+"/team/nothing:1", "")
	if _, err := Fetch(context.Background(), ref); err == nil {
		t.Error("a missing repository was fetched")
	}
}
