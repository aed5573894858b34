package services

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kouple/kouple/internal/pgtest"
	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/sdk/sqlwire"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// backends answers a function opening the sql service on each backend, the same data at every call (the
// database directory, or the PostgreSQL database the DSN names).
func backends(t *testing.T) map[string]func(t *testing.T) *SQL {
	dir, dsn := t.TempDir(), ""
	return map[string]func(t *testing.T) *SQL{
		"sqlite": func(t *testing.T) *SQL {
			s, err := OpenSQL(dir, &Policy{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T) *SQL {
			if dsn == "" {
				dsn = pgtest.DSN(t)
			}
			s, err := OpenPostgres(context.Background(), dsn, &Policy{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

// client calls the sql service's methods as one module would through the SDK's driver.
type client struct {
	t      testing.TB
	h      host
	caller *manifest.Manifest
	conn   int64
}

func (c *client) call(method string, r sqlwire.Request, out any) error {
	c.t.Helper()
	if r.Conn == 0 {
		r.Conn = c.conn
	}
	p, _ := json.Marshal(r)
	res, err := c.h[method](context.Background(), c.caller, p)
	if err != nil {
		return err
	}
	if out != nil {
		b, _ := json.Marshal(res)
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *client) open(db string) error {
	var h sqlwire.Handle
	err := c.call("open", sqlwire.Request{Database: db}, &h)
	c.conn = h.ID
	return err
}

func (c *client) must(method string, r sqlwire.Request, out any) {
	c.t.Helper()
	if err := c.call(method, r, out); err != nil {
		c.t.Fatalf("%s %q: %v", method, r.Query, err)
	}
}

func (c *client) titles(tx int64) string {
	c.t.Helper()
	var rows sqlwire.Rows
	c.must("query", sqlwire.Request{Tx: tx, Query: `SELECT title FROM items ORDER BY title`}, &rows)
	var out []string
	for _, r := range rows.Rows {
		out = append(out, r[0].Go().(string))
	}
	return strings.Join(out, ",")
}

func str(s string) sqlwire.Value { return sqlwire.Value{Str: &s} }

// TestSQLBackends: on SQLite and on PostgreSQL, a module's data survives reopening the service (a base
// restart), transactions commit and roll back, another module sees only its own database, and a module that
// did not ask for sql is refused.
func TestSQLBackends(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			a := &manifest.Manifest{Name: "a", Version: "1.0.0", Capabilities: []string{"sql", "sql:orders"}}
			b := &manifest.Manifest{Name: "b", Version: "1.0.0", Capabilities: []string{"sql", "sql:orders"}}
			s := open(t)
			ca := &client{t: t, h: s.Host(), caller: a}
			if err := ca.open(""); err != nil {
				t.Fatal(err)
			}
			ca.must("exec", sqlwire.Request{Query: `CREATE TABLE items (title TEXT NOT NULL)`}, nil)
			ca.must("exec", sqlwire.Request{Query: `INSERT INTO items (title) VALUES ($1)`, Args: []sqlwire.Value{str("kept")}}, nil)

			var tx sqlwire.Handle
			ca.must("begin", sqlwire.Request{}, &tx)
			ca.must("exec", sqlwire.Request{Tx: tx.ID, Query: `INSERT INTO items (title) VALUES ($1)`, Args: []sqlwire.Value{str("rolled back")}}, nil)
			if got := ca.titles(tx.ID); got != "kept,rolled back" {
				t.Errorf("inside the transaction: %q", got)
			}
			ca.must("rollback", sqlwire.Request{Tx: tx.ID}, nil)
			ca.must("begin", sqlwire.Request{}, &tx)
			ca.must("exec", sqlwire.Request{Tx: tx.ID, Query: `INSERT INTO items (title) VALUES ($1)`, Args: []sqlwire.Value{str("committed")}}, nil)
			ca.must("commit", sqlwire.Request{Tx: tx.ID}, nil)
			if got := ca.titles(0); got != "committed,kept" {
				t.Errorf("after rollback and commit: %q", got)
			}

			cb := &client{t: t, h: s.Host(), caller: b}
			if err := cb.open(""); err != nil {
				t.Fatal(err)
			}
			if err := cb.call("query", sqlwire.Request{Query: `SELECT title FROM items`}, nil); err == nil {
				t.Error("module b reads module a's table")
			}
			if name == "postgres" {
				// b's SQL runs as b's role: a's database is out of its reach, whatever it sends.
				adb := s.backend.(*postgres).prefix + "_m_a"
				for _, q := range []string{`DROP DATABASE ` + pgx.Identifier{adb}.Sanitize(), `CREATE DATABASE stolen`, `SET ROLE ` + pgx.Identifier{adb}.Sanitize()} {
					if err := cb.call("exec", sqlwire.Request{Query: q}, nil); err == nil || !strings.Contains(err.Error(), "denied") && !strings.Contains(err.Error(), "must be") {
						t.Errorf("module b: %s: %v", q, err)
					}
				}
			}
			none := &client{t: t, h: s.Host(), caller: &manifest.Manifest{Name: "c", Version: "1.0.0"}}
			if err := none.open(""); err == nil || !strings.Contains(err.Error(), `did not ask for "sql"`) {
				t.Errorf("module without sql: %v", err)
			}
			// A shared database: what a writes, b reads.
			sa, sb := &client{t: t, h: s.Host(), caller: a}, &client{t: t, h: s.Host(), caller: b}
			if err := sa.open("orders"); err != nil {
				t.Fatal(err)
			}
			if err := sb.open("orders"); err != nil {
				t.Fatal(err)
			}
			sa.must("exec", sqlwire.Request{Query: `CREATE TABLE items (title TEXT NOT NULL)`}, nil)
			sa.must("exec", sqlwire.Request{Query: `INSERT INTO items (title) VALUES ($1)`, Args: []sqlwire.Value{str("shared")}}, nil)
			if got := sb.titles(0); got != "shared" {
				t.Errorf("b in the shared database: %q", got)
			}
			if err := none.open("orders"); err == nil || !strings.Contains(err.Error(), `did not ask for "sql:orders"`) {
				t.Errorf("module without sql:orders: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = open(t) // the base restarted
			defer s.Close()
			ca = &client{t: t, h: s.Host(), caller: a}
			if err := ca.open(""); err != nil {
				t.Fatal(err)
			}
			if got := ca.titles(0); got != "committed,kept" {
				t.Errorf("after reopening: %q", got)
			}
		})
	}
}

// BenchmarkSQLService: one primary-key query through the sql service as the base runs it for a module (JSON
// in and out, the module's connection looked up), without the module's side, against the same query on a
// pool of the same backend directly.
func BenchmarkSQLService(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			var s *SQL
			var err error
			if backend == "postgres" {
				s, err = OpenPostgres(context.Background(), pgtest.DSN(b), &Policy{})
			} else {
				s, err = OpenSQL(b.TempDir(), &Policy{})
			}
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c := &client{t: b, h: s.Host(), caller: &manifest.Manifest{Name: "bench", Version: "1.0.0", Capabilities: []string{"sql"}}}
			if err := c.open(""); err != nil {
				b.Fatal(err)
			}
			c.must("exec", sqlwire.Request{Query: `CREATE TABLE items (id BIGINT PRIMARY KEY, title TEXT NOT NULL)`}, nil)
			c.must("exec", sqlwire.Request{Query: `INSERT INTO items (id, title) VALUES (1, 'one')`}, nil)
			one := int64(1)
			q, _ := json.Marshal(sqlwire.Request{Conn: c.conn, Query: `SELECT title FROM items WHERE id = $1`, Args: []sqlwire.Value{{Int: &one}}})
			b.Run("service", func(b *testing.B) {
				for b.Loop() {
					out, err := c.h["query"](context.Background(), c.caller, q)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := json.Marshal(out); err != nil {
						b.Fatal(err)
					}
				}
			})
			db, err := s.database(context.Background(), c.caller, "")
			if err != nil {
				b.Fatal(err)
			}
			b.Run("direct", func(b *testing.B) {
				for b.Loop() {
					var title string
					if err := db.QueryRow(`SELECT title FROM items WHERE id = $1`, 1).Scan(&title); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
