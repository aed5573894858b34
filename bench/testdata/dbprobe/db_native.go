//go:build !wasip1

package main

import (
	"cmp"
	"context"
	"database/sql"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL, when DBPROBE_DSN is set
	_ "modernc.org/sqlite"             // an embedded SQLite of its own

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/kv"
	_ "github.com/kouple/kouple/sdk/sqldriver" // database/sql on the base's pool, in a base
)

var local *sql.DB // standalone: the SQLite file that also holds the keys

// inBase: loaded into a base as a native module, the probe uses the base's pool and kv store, as its wasm build
// does; standalone, files of its own.
var inBase = sdk.Name() != "standalone"

func openDB() (*sql.DB, error) {
	if inBase {
		return sql.Open("kouple", "")
	}
	var err error
	local, err = sql.Open("sqlite", "file:"+cmp.Or(os.Getenv("DBPROBE_DB"), "dbprobe.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, err
	}
	if _, err := local.Exec(`CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
		return nil, err
	}
	if dsn := os.Getenv("DBPROBE_DSN"); dsn != "" {
		return sql.Open("pgx", dsn)
	}
	return local, nil
}

// Standalone there is no base kv: the key is a row of the local SQLite file, what a service would use alone.
func kvGet(ctx context.Context, key string) ([]byte, error) {
	if inBase {
		v, _, err := kv.Get(ctx, key)
		return v, err
	}
	var v []byte
	err := local.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, key).Scan(&v)
	return v, err
}

func kvPut(ctx context.Context, key string, value []byte) error {
	if inBase {
		return kv.Put(ctx, key, value)
	}
	_, err := local.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, key, value)
	return err
}
