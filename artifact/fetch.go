package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// MaxSize bounds an artifact's size.
const MaxSize = 512 << 20

var hexDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Ref is where an artifact comes from and, optionally, the sha256 it must have.
type Ref struct {
	URL    string // file://, http://, https:// or oci://registry/repo:tag|@sha256:..., or an absolute path
	Digest string // hex sha256, or empty
}

// ParseRef reads an artifact URL, taking a pinned digest from a `#sha256=HEX` fragment. digest, if not
// empty, is a digest given beside the URL; both must agree.
func ParseRef(raw, digest string) (Ref, error) {
	digest = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(digest)), "sha256:")
	u, frag, _ := strings.Cut(strings.TrimSpace(raw), "#")
	if u == "" {
		return Ref{}, errors.New("the artifact URL is empty: give file:///path/to/module.wasm or an http(s) URL")
	}
	if frag != "" {
		d, ok := strings.CutPrefix(frag, "sha256=")
		if !ok {
			return Ref{}, fmt.Errorf("artifact URL %s: the fragment #%s is not #sha256=HEX", raw, frag)
		}
		d = strings.ToLower(d)
		if digest != "" && digest != d {
			return Ref{}, fmt.Errorf("artifact URL %s pins sha256 %s, but the request says %s", raw, d, digest)
		}
		digest = d
	}
	if digest != "" && !hexDigestRE.MatchString(digest) {
		return Ref{}, fmt.Errorf("%q is not a sha256 digest: give 64 hex digits", digest)
	}
	if strings.HasPrefix(u, "/") {
		u = "file://" + u
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return Ref{}, fmt.Errorf("artifact URL %s: %w", raw, err)
	}
	switch parsed.Scheme {
	case "file", "http", "https", "oci": // oci://registry/repo@sha256:... pins the manifest; the registry client checks it
	default:
		return Ref{}, fmt.Errorf("artifact URL %s: scheme %q is not supported: use file://, http(s):// or oci://", raw, parsed.Scheme)
	}
	return Ref{URL: u, Digest: digest}, nil
}

// Fetch reads the artifact and checks its digest if one is pinned.
func Fetch(ctx context.Context, ref Ref) ([]byte, error) {
	u, err := url.Parse(ref.URL)
	if err != nil {
		return nil, err
	}
	var data []byte
	switch u.Scheme {
	case "file":
		data, err = readFile(u.Path)
	case "http", "https":
		data, err = get(ctx, ref.URL)
	case "oci":
		data, err = fetchOCI(ctx, ref.URL)
	default:
		err = fmt.Errorf("scheme %q is not supported", u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", ref.URL, err)
	}
	if ref.Digest != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != ref.Digest {
			return nil, fmt.Errorf("fetch %s: digest mismatch: the content's sha256 is %s, but %s was pinned: the artifact changed or the digest is wrong", ref.URL, got, ref.Digest)
		}
	}
	return data, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory: build it first with `kouple build`, or point at the artifact", path)
	}
	return readLimited(f)
}

var httpClient = &http.Client{Timeout: 5 * time.Minute}

func get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	return readLimited(resp.Body)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("the artifact is larger than %d MiB", MaxSize>>20)
	}
	return data, nil
}
