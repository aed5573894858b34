// Package sqldriver is a database/sql driver, "kouple", whose statements run on the base's connection pool
// (the base's sql service): import it for its side effect and open a database with
//
//	db, err := sql.Open("kouple", "")       // the module's own database (capability "sql")
//	db, err := sql.Open("kouple", "orders") // a shared database (capability "sql:orders")
//
// Each driver connection is a connection of the base's pool; transactions stay on it.
package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"io"

	"github.com/kouple/kouple/sdk"
	"github.com/kouple/kouple/sdk/sqlwire"
)

func init() { sql.Register("kouple", drv{}) }

type drv struct{}

func call(ctx context.Context, method string, req sqlwire.Request, out any) error {
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	res, err := sdk.CallRaw(ctx, "sql", method, payload)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res, out)
}

func (drv) Open(name string) (driver.Conn, error) {
	var h sqlwire.Handle
	if err := call(context.Background(), "open", sqlwire.Request{Database: name}, &h); err != nil {
		return nil, err
	}
	return &conn{id: h.ID}, nil
}

type conn struct {
	id int64
	tx int64 // the transaction in progress, or 0
}

var (
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) { return &stmt{c, query}, nil }
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return &stmt{c, query}, nil
}

func (c *conn) Close() error {
	return call(context.Background(), "close", sqlwire.Request{Conn: c.id}, nil)
}

func (c *conn) Begin() (driver.Tx, error) { return c.BeginTx(context.Background(), driver.TxOptions{}) }

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var h sqlwire.Handle
	if err := call(ctx, "begin", sqlwire.Request{Conn: c.id, ReadOnly: opts.ReadOnly}, &h); err != nil {
		return nil, err
	}
	c.tx = h.ID
	return &tx{c}, nil
}

// CheckNamedValue accepts every type sqlwire carries, after database/sql's default conversions.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	v, err := driver.DefaultParameterConverter.ConvertValue(nv.Value)
	if err != nil {
		return err
	}
	nv.Value = v
	return nil
}

func encodeArgs(args []driver.NamedValue) ([]sqlwire.Value, error) {
	out := make([]sqlwire.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("kouple sql: named parameters are not supported; use positional ones ($1, or ? on SQLite)")
		}
		v, err := sqlwire.From(a.Value)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	vals, err := encodeArgs(args)
	if err != nil {
		return nil, err
	}
	var r sqlwire.Result
	if err := call(ctx, "exec", sqlwire.Request{Conn: c.id, Tx: c.tx, Query: query, Args: vals}, &r); err != nil {
		return nil, err
	}
	return result{r}, nil
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	vals, err := encodeArgs(args)
	if err != nil {
		return nil, err
	}
	var r sqlwire.Rows
	if err := call(ctx, "query", sqlwire.Request{Conn: c.id, Tx: c.tx, Query: query, Args: vals}, &r); err != nil {
		return nil, err
	}
	return &rows{r: r}, nil
}

type result struct{ r sqlwire.Result }

func (r result) LastInsertId() (int64, error) { return r.r.LastInsertID, nil }
func (r result) RowsAffected() (int64, error) { return r.r.RowsAffected, nil }

type stmt struct {
	c     *conn
	query string
}

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.query, named(args))
}
func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.query, named(args))
}

func named(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return out
}

type tx struct{ c *conn }

func (t *tx) Commit() error   { return t.end("commit") }
func (t *tx) Rollback() error { return t.end("rollback") }
func (t *tx) end(method string) error {
	id := t.c.tx
	t.c.tx = 0
	return call(context.Background(), method, sqlwire.Request{Conn: t.c.id, Tx: id}, nil)
}

type rows struct {
	r sqlwire.Rows
	i int
}

func (r *rows) Columns() []string { return r.r.Columns }
func (r *rows) Close() error      { return nil }
func (r *rows) Next(dest []driver.Value) error {
	if r.i >= len(r.r.Rows) {
		return io.EOF
	}
	for i, v := range r.r.Rows[r.i] {
		dest[i] = v.Go()
	}
	r.i++
	return nil
}
