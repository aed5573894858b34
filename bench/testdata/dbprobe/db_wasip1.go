//go:build wasip1

package main

import (
	"context"
	"database/sql"

	"github.com/kouple/kouple/sdk/kv"
	_ "github.com/kouple/kouple/sdk/sqldriver" // database/sql on the base's pool
)

func openDB() (*sql.DB, error) { return sql.Open("kouple", "") }

func kvGet(ctx context.Context, key string) ([]byte, error) {
	v, _, err := kv.Get(ctx, key)
	return v, err
}

func kvPut(ctx context.Context, key string, value []byte) error { return kv.Put(ctx, key, value) }
