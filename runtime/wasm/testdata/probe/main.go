// Command probe is a test module that misbehaves on request.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/kouple/kouple/sdk"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s=%s\n", r.URL.Query().Get("k"), os.Getenv(r.URL.Query().Get("k")))
	})
	// hostwait waits ms milliseconds on the host through a call.
	mux.HandleFunc("GET /hostwait", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		var out string
		if err := sdk.Call(r.Context(), "test", "sleep", ms, &out); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, out)
	})
	mux.HandleFunc("GET /hostbarrier", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		var out string
		if err := sdk.Call(r.Context(), "test", "barrier", n, &out); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, out)
	})
	mux.HandleFunc("GET /callerr", func(w http.ResponseWriter, r *http.Request) {
		err := sdk.Call(r.Context(), "test", "fail", nil, nil)
		fmt.Fprintln(w, err)
	})
	// reach tries what the sandbox must refuse: a file, a socket.
	mux.HandleFunc("GET /reach", func(w http.ResponseWriter, r *http.Request) {
		_, ferr := os.ReadFile(r.URL.Query().Get("file"))
		_, derr := net.Dial("tcp", r.URL.Query().Get("addr"))
		fmt.Fprintf(w, "file: %v\nsocket: %v\n", ferr, derr)
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) { panic("handler panic on purpose") })
	mux.HandleFunc("GET /crash", func(w http.ResponseWriter, r *http.Request) {
		go func() { panic("goroutine panic on purpose: the instance dies") }()
		time.Sleep(time.Second)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := range n {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			w.Write(buf[:n])
			if err != nil {
				return
			}
		}
	})
	// upgrade switches the connection to a line echo protocol, as a WebSocket handshake switches it.
	mux.HandleFunc("GET /upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo: " + line)
			brw.Flush()
		}
	})
	// waitcancel waits until its request is cancelled, then tells the host.
	mux.HandleFunc("GET /waitcancel", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		sdk.Call(context.Background(), "test", "cancelled", r.URL.Query().Get("id"), nil)
	})
	sdk.Handle(mux)
}

func main() { sdk.Serve() }
