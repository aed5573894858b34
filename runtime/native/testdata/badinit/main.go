// Command badinit panics in init: a native install must fail with the reason and leave the base running.
package main

import (
	"net/http"

	"github.com/kouple/kouple/sdk"
)

func init() {
	sdk.Handle(http.NotFoundHandler())
	panic("badinit refuses to start")
}

func main() { sdk.Serve() }
