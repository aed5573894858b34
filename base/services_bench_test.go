package base_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/kouple/kouple/base"
	"github.com/kouple/kouple/internal/pgtest"
)

// BenchmarkModuleSQL: one primary-key query from a wasm module (bench/testdata/dbprobe) on the base's pool,
// timed inside the module, against the same query from native Go on the same kind of database.
func BenchmarkModuleSQL(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			cfg := base.Config{}
			if backend == "postgres" {
				cfg.SQLDSN = pgtest.DSN(b)
			}
			bs := embedded(b, b.TempDir(), cfg)
			install(b, bs, "bench/testdata/dbprobe", "")
			b.Run("module", func(b *testing.B) { moduleOps(b, bs.GatewayURL()+"/dbprobe/sql") })
			b.Run("native", func(b *testing.B) {
				var db *sql.DB
				var err error
				if backend == "postgres" {
					db, err = sql.Open("pgx", pgtest.DSN(b))
				} else {
					db, err = sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "n.db")+"?_pragma=journal_mode(WAL)")
				}
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				for _, q := range []string{`CREATE TABLE items (id BIGINT PRIMARY KEY, title TEXT NOT NULL)`, `INSERT INTO items (id, title) VALUES (1, 'one')`} {
					if _, err := db.Exec(q); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for b.Loop() {
					var title string
					if err := db.QueryRowContext(context.Background(), `SELECT title FROM items WHERE id = $1`, 1).Scan(&title); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkModuleKV: one kv get from a wasm module, timed inside the module.
func BenchmarkModuleKV(b *testing.B) {
	bs := embedded(b, b.TempDir(), base.Config{})
	install(b, bs, "bench/testdata/dbprobe", "")
	moduleOps(b, bs.GatewayURL()+"/dbprobe/kv")
}

// moduleOps has the module run b.N operations and reports the time per operation it measured.
func moduleOps(b *testing.B, url string) {
	get(b, url+"?n=100") // warm up
	_, body := get(b, fmt.Sprintf("%s?n=%d", url, b.N))
	ns, err := strconv.ParseInt(body, 10, 64)
	if err != nil {
		b.Fatalf("%s answered %q", url, body)
	}
	b.ReportMetric(float64(time.Duration(ns))/float64(b.N), "module-ns/op")
}
