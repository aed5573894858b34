// Command dbprobe is the bench's data-service probe: GET /sql?n=N runs N times one primary-key query and
// GET /kv?n=N reads one key N times, each answering how many nanoseconds the N took, timed inside the program
// so the request that starts them is not counted (n defaults to 1, for load through the gateway). As a module
// the query runs on the base's pool and the key in the base's kv; standalone (db_native.go) both are in a
// SQLite file of its own, or the query on PostgreSQL when DBPROBE_DSN is set.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/kouple/kouple/sdk"
)

func init() {
	db, err := openDB()
	if err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS items (id BIGINT PRIMARY KEY, title TEXT NOT NULL)`,
		`INSERT INTO items (id, title) VALUES (1, 'one') ON CONFLICT (id) DO NOTHING`,
	} {
		if _, err := db.Exec(q); err != nil {
			log.Fatalf("%s: %v", q, err)
		}
	}
	if err := kvPut(context.Background(), "greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sql", timed(func(ctx context.Context) error {
		var title string
		if err := db.QueryRowContext(ctx, `SELECT title FROM items WHERE id = $1`, 1).Scan(&title); err != nil {
			return err
		}
		if title != "one" {
			return fmt.Errorf("title %q", title)
		}
		return nil
	}))
	mux.HandleFunc("GET /kv", timed(func(ctx context.Context) error {
		v, err := kvGet(ctx, "greeting")
		if err == nil && string(v) != "hello" {
			err = fmt.Errorf("value %q", v)
		}
		return err
	}))
	sdk.Handle(mux)
}

// timed serves op run n times, answering the nanoseconds they took.
func timed(op func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			n = 1
		}
		began := time.Now()
		for range n {
			if err := op(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprint(w, time.Since(began).Nanoseconds())
	}
}

func main() { sdk.Serve() }
