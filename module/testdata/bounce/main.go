// Command bounce is a test module whose method calls the same method of its peer (config PEER), which calls
// back: a cycle of in-process calls.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kouple/kouple/sdk"
)

func init() {
	sdk.Handle(http.NotFoundHandler())
	sdk.Export("bounce", func(ctx context.Context, n int) (string, error) {
		if n <= 0 {
			return sdk.Name(), nil
		}
		var last string
		if err := sdk.Call(ctx, os.Getenv("PEER"), "bounce", n-1, &last); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s>%s", sdk.Name(), last), nil
	})
	sdk.Export("echo", func(ctx context.Context, s string) (string, error) { return s, nil })
	// calls makes n calls to the peer's echo with a payload of size bytes and answers how long they took.
	sdk.Export("calls", func(ctx context.Context, in struct{ N, Size int }) (int64, error) {
		payload := strings.Repeat("x", in.Size)
		began := time.Now()
		for range in.N {
			var out string
			if err := sdk.Call(ctx, os.Getenv("PEER"), "echo", payload, &out); err != nil {
				return 0, err
			}
			if len(out) != in.Size {
				return 0, fmt.Errorf("echo answered %d bytes, want %d", len(out), in.Size)
			}
		}
		return int64(time.Since(began)), nil
	})
}

func main() { sdk.Serve() }
