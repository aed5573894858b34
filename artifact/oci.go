package artifact

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of a module pushed to an OCI registry: an OCI image manifest whose single layer is the artifact,
// unchanged (so its sha256 is the artifact's digest), with this media type.
const (
	MediaTypeWasm   types.MediaType = "application/vnd.kouple.module.wasm.v1"
	MediaTypePlugin types.MediaType = "application/vnd.kouple.module.plugin.v1"
)

// Push uploads an artifact to an OCI registry as ref (registry/repo:tag) and returns the manifest's digest,
// by which it can be installed: oci://registry/repo@sha256:....
func Push(ctx context.Context, data []byte, ref string) (string, error) {
	kind, err := Detect(data)
	if err != nil {
		return "", err
	}
	mt := MediaTypeWasm
	if kind == KindPlugin {
		mt = MediaTypePlugin
	}
	r, err := name.ParseReference(strings.TrimPrefix(ref, "oci://"))
	if err != nil {
		return "", fmt.Errorf("registry reference %s: %w", ref, err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), static.NewLayer(data, mt))
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("push %s: %w", r, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return digest.String(), nil
}

// fetchOCI reads a module from an OCI registry: oci://registry/repo:tag or oci://registry/repo@sha256:....
func fetchOCI(ctx context.Context, ref string) ([]byte, error) {
	r, err := name.ParseReference(strings.TrimPrefix(ref, "oci://"))
	if err != nil {
		return nil, fmt.Errorf("registry reference %s: %w", ref, err)
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil || (mt != MediaTypeWasm && mt != MediaTypePlugin) {
			continue
		}
		return readLayer(l)
	}
	return nil, fmt.Errorf("%s holds no Kouple module: no layer of media type %s or %s (push one with `kouple push`)", ref, MediaTypeWasm, MediaTypePlugin)
}

func readLayer(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed() // stored as is: "compressed" is the artifact itself, checked against its digest
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := readLimited(rc)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, rc) // reach the end, where the digest is verified
	return data, err
}
