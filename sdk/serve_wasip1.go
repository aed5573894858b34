//go:build wasip1

package sdk

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Descriptors the base provides (docs/abi.md).
const (
	listenerFD = 3 // HTTP listener: accept connections, speak HTTP/1.1 on them
	callsFD    = 4 // call listener: one connection per call to an exported method
)

//go:wasmimport kouple_v1 abi_version
func abiVersion(v uint32) uint32

// accept_call_context: importing it tells the base that this module's call frames may carry a trace context
// (docs/abi.md, "Trace context").
//
//go:wasmimport kouple_v1 accept_call_context
func acceptCallContext(v uint32) uint32

// The listeners' files are kept for the life of the module: their finalizers would close the descriptors.
var listenerFile, callsFile *os.File

// Serve serves the registered handler on the listener the base provides. It returns only when the base
// closes the listener, and then exits the module.
func Serve() {
	h := withTrace(mustHandler())
	if errno := abiVersion(ABIVersion); errno != 0 {
		fmt.Fprintf(os.Stderr, "kouple sdk: the base refused module ABI v%d (errno %d): rebuild the module with the SDK that matches the base\n", ABIVersion, errno)
		os.Exit(3)
	}
	acceptCallContext(1)
	// Inside a base, slog writes JSON lines the base keeps as structured records of this module — unless
	// the module set a default logger of its own.
	if fmt.Sprintf("%T", slog.Default().Handler()) == "*slog.defaultHandler" {
		slog.SetDefault(slog.New(logHandler(os.Stderr)))
	}
	callsFile = os.NewFile(callsFD, "kouple-calls")
	cl, err := net.FileListener(callsFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kouple sdk: descriptor %d is not the base's call listener: %v\n", callsFD, err)
		os.Exit(3)
	}
	go serveCalls(cl)
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

// serveCalls answers calls to exported methods, each on its own connection and goroutine: the deadline
// (8 bytes), the method name's length (2 bytes) and name, the payload until end of stream; the answer is a
// status byte and the result (docs/abi.md).
func serveCalls(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return // the base closed the listener: the module is stopping
		}
		go serveCall(c)
	}
}

func serveCall(c net.Conn) {
	defer c.Close()
	req, err := io.ReadAll(c)
	if err != nil || len(req) < 10 {
		return
	}
	deadline := int64(binary.LittleEndian.Uint64(req))
	n := int(binary.LittleEndian.Uint16(req[8:]))
	if len(req) < 10+n {
		c.Write(append([]byte{callError}, "malformed call"...))
		return
	}
	name, payload := string(req[10:10+n]), req[10+n:]
	ctx := context.Background()
	// The base sends a context (2-byte length, then header lines) because this module imports
	// accept_call_context.
	if len(payload) < 2 || len(payload) < 2+int(binary.LittleEndian.Uint16(payload)) {
		c.Write(append([]byte{callError}, "malformed call"...))
		return
	}
	cl := int(binary.LittleEndian.Uint16(payload))
	ctx = decodeTrace(ctx, string(payload[2:2+cl]))
	payload = payload[2+cl:]
	if deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, deadline))
		defer cancel()
	}
	res, err := Invoke(ctx, name, payload)
	if err != nil {
		c.Write(append([]byte{callError}, err.Error()...))
		return
	}
	c.Write(append([]byte{callOK}, res...))
}
