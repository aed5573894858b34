// Command shaper answers calls whose argument types are its own, for the native runtime's tests: a caller's
// value of another type reaches it through JSON.
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/kouple/kouple/sdk"
)

type point struct{ X, Y int }

type sum struct{ Sum int }

func init() {
	sdk.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "shaper") }))
	sdk.Export("shape", func(ctx context.Context, p point) (sum, error) { return sum{p.X + p.Y}, nil })
	sdk.Export("same", func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
}

func main() { sdk.Serve() }
