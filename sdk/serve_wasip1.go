//go:build wasip1

package sdk

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

// Descriptors the base provides (docs/abi.md).
const (
	listenerFD = 3 // HTTP listener: accept connections, speak HTTP/1.1 on them
)

//go:wasmimport kouple_v1 abi_version
func abiVersion(v uint32) uint32

// listenerFile is kept for the life of the module: its finalizer would close the listener descriptor.
var listenerFile *os.File

// Serve serves the registered handler on the listener the base provides. It returns only when the base
// closes the listener, and then exits the module.
func Serve() {
	h := mustHandler()
	if errno := abiVersion(ABIVersion); errno != 0 {
		fmt.Fprintf(os.Stderr, "kouple sdk: the base refused module ABI v%d (errno %d): rebuild the module with the SDK that matches the base\n", ABIVersion, errno)
		os.Exit(3)
	}
	listenerFile = os.NewFile(listenerFD, "kouple-listener")
	l, err := net.FileListener(listenerFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kouple sdk: descriptor %d is not the base's listener: %v\n", listenerFD, err)
		os.Exit(3)
	}
	srv := &http.Server{Handler: h}
	err = srv.Serve(l)
	fmt.Fprintf(os.Stderr, "kouple sdk: listener closed: %v\n", err)
}
