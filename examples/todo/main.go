// Command todo is an ordinary net/http + database/sql service. Standalone it keeps its items in a SQLite file
// (db_native.go); as a module it uses the base's pool through the SDK's "kouple" driver (db_wasip1.go). Only
// how it starts differs.
package main

import (
	"log"

	"github.com/kouple/kouple/sdk"
)

func init() {
	db, err := openDB()
	if err != nil {
		log.Fatal(err)
	}
	s, err := newServer(db)
	if err != nil {
		log.Fatal(err)
	}
	sdk.Handle(s)
}

func main() { sdk.Serve() }
