// Command fib is a compute-bound guest: naive recursive Fibonacci (calls,
// recursion) and a sieve (tight loops). Usage: fib [n] [sieve-limit].
package main

import (
	"fmt"
	"os"
	"strconv"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func primes(limit int) int {
	composite := make([]bool, limit+1)
	count := 0
	for i := 2; i <= limit; i++ {
		if composite[i] {
			continue
		}
		count++
		for j := i * i; j <= limit; j += i {
			composite[j] = true
		}
	}
	return count
}

func arg(i, def int) int {
	if len(os.Args) > i {
		if v, err := strconv.Atoi(os.Args[i]); err == nil {
			return v
		}
	}
	return def
}

func main() {
	n, limit := arg(1, 27), arg(2, 1_000_000)
	fmt.Printf("fib(%d) = %d\n", n, fib(n))
	fmt.Printf("primes up to %d: %d\n", limit, primes(limit))
}
