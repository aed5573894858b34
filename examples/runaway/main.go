// Command runaway misbehaves on request, to show that a module cannot stall its base or its neighbours: the
// base stops an instance that computes past its CPU budget, recurses without end or allocates past its memory
// limit, answers those requests with a 5xx, and replaces the instance.
package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kouple/kouple/sdk"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /spin", func(w http.ResponseWriter, r *http.Request) {
		n := 0
		for { // forever, never waiting
			n++
		}
	})
	mux.HandleFunc("GET /recurse", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, recurse(1))
	})
	mux.HandleFunc("GET /alloc", func(w http.ResponseWriter, r *http.Request) {
		var keep [][]byte
		for {
			b := make([]byte, 1<<20)
			b[0] = 1
			keep = append(keep, b)
		}
	})
	// compute runs n rounds of arithmetic without waiting and answers the result: bounded work, for measuring
	// how computing in one module affects its neighbours.
	mux.HandleFunc("GET /compute", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		x := uint64(88172645463325252)
		for range n {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		fmt.Fprintf(w, "%d\n", x)
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond) // waiting, not computing: within the budget
		fmt.Fprintf(w, "slept %d ms\n", ms)
	})
	sdk.Handle(mux)
}

//go:noinline
func recurse(n int) int { return recurse(n+1) + 1 }

func main() { sdk.Serve() }
