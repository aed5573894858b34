// Command oldyaml needs another version of a package the base has (go.yaml.in/yaml/v3 v3.0.4, the base has
// v3.0.6): a native build must refuse it, naming both versions.
package main

import (
	"net/http"

	"github.com/kouple/kouple/sdk"
	"go.yaml.in/yaml/v3"
)

func init() {
	sdk.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := yaml.Marshal(map[string]string{"a": "b"})
		w.Write(b)
	}))
}

func main() { sdk.Serve() }
