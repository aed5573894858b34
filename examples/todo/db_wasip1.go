//go:build wasip1

package main

import (
	"database/sql"

	_ "github.com/kouple/kouple/sdk/sqldriver" // database/sql on the base's pool
)

func openDB() (*sql.DB, error) { return sql.Open("kouple", "") }
