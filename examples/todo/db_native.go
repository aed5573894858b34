//go:build !wasip1

package main

import (
	"cmp"
	"database/sql"
	"os"

	_ "modernc.org/sqlite" // an embedded SQLite of its own
)

func openDB() (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+cmp.Or(os.Getenv("TODO_DB"), "todo.db")+"?_pragma=busy_timeout(5000)")
}
