// Command spin announces itself and then computes forever without calling
// the host: the guest a CPU guard must be able to stop.
package main

import (
	"fmt"
	"os"
)

var sink uint64

func main() {
	fmt.Println("spinning")
	x := uint64(len(os.Args))
	for {
		x = x*6364136223846793005 + 1442695040888963407
		sink = x
	}
}
