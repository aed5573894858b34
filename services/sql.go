package services

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the embedded SQLite, pure Go

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/sdk/sqlwire"
)

// SQL runs modules' SQL on connection pools the base owns: one database per module (capability "sql") and
// shared databases by name (capability "sql:NAME"), embedded SQLite files (OpenSQL) or PostgreSQL databases
// (OpenPostgres). A module reaches it with database/sql through the SDK's driver; each driver connection is a
// connection of the base's pool, held until the module closes it or leaves it idle for IdleTimeout.
type SQL struct {
	backend backend
	policy  *Policy

	openMu sync.Mutex // held while a database is opened (on PostgreSQL: created), not while statements run
	mu     sync.Mutex
	dbs    map[string]*sql.DB
	conns  map[int64]*sqlConn
	txs    map[int64]*sqlTx
	nextID int64
	stop   chan struct{}
	wg     sync.WaitGroup
}

// IdleTimeout closes connections a module forgot (an instance that died holds its connections).
const IdleTimeout = 2 * time.Minute

// MaxRows bounds one query's answer.
const MaxRows = 100_000

type sqlConn struct {
	owner string // module name
	conn  *sql.Conn
	used  time.Time
}

type sqlTx struct {
	conn int64
	tx   *sql.Tx
}

var dbNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// backend opens the databases: kind is "module" (the module's own, name its module name) or "shared".
type backend interface {
	open(ctx context.Context, kind, name string) (*sql.DB, error)
	Close() error
}

// sqliteFiles keeps each database in a SQLite file of its own: dir/KIND-NAME.db.
type sqliteFiles struct{ dir string }

func (f sqliteFiles) open(_ context.Context, kind, name string) (*sql.DB, error) {
	dsn := "file:" + filepath.Join(f.dir, kind+"-"+name+".db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"
	return sql.Open("sqlite", dsn)
}

func (sqliteFiles) Close() error { return nil }

// OpenSQL keeps its databases in dir, as embedded SQLite files.
func OpenSQL(dir string, policy *Policy) (*SQL, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sql dir %s: %w", dir, err)
	}
	return newSQL(sqliteFiles{dir}, policy), nil
}

func newSQL(b backend, policy *Policy) *SQL {
	s := &SQL{backend: b, policy: policy, dbs: map[string]*sql.DB{}, conns: map[int64]*sqlConn{}, txs: map[int64]*sqlTx{}, stop: make(chan struct{})}
	s.wg.Go(s.reap)
	return s
}

// Close closes every connection and database.
func (s *SQL) Close() error {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, t := range s.txs {
		t.tx.Rollback()
	}
	for _, c := range s.conns {
		c.conn.Close()
	}
	for _, db := range s.dbs {
		errs = append(errs, db.Close())
	}
	errs = append(errs, s.backend.Close())
	return errors.Join(errs...)
}

func (s *SQL) reap() {
	t := time.NewTicker(IdleTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for id, c := range s.conns {
			if time.Since(c.used) > IdleTimeout {
				s.dropLocked(id)
			}
		}
		s.mu.Unlock()
	}
}

func (s *SQL) dropLocked(id int64) {
	for tid, t := range s.txs {
		if t.conn == id {
			t.tx.Rollback()
			delete(s.txs, tid)
		}
	}
	if c := s.conns[id]; c != nil {
		c.conn.Close()
		delete(s.conns, id)
	}
}

// database opens (once) the database a caller may use.
func (s *SQL) database(ctx context.Context, caller *manifest.Manifest, name string) (*sql.DB, error) {
	kind := "shared"
	switch {
	case name == "" && caller == nil:
		return nil, errors.New("the base has no database of its own: name one")
	case name == "":
		if err := s.policy.granted(caller, "sql"); err != nil {
			return nil, err
		}
		kind, name = "module", caller.Name
	default:
		if !dbNameRE.MatchString(name) {
			return nil, fmt.Errorf("database name %q is not valid", name)
		}
		if err := s.policy.granted(caller, "sql:"+name); err != nil {
			return nil, err
		}
	}
	key := kind + "-" + name
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.mu.Lock()
	db := s.dbs[key]
	s.mu.Unlock()
	if db != nil {
		return db, nil
	}
	db, err := s.backend.open(ctx, kind, name)
	if err != nil {
		return nil, fmt.Errorf("%s database %s: %w", kind, name, err)
	}
	s.mu.Lock()
	s.dbs[key] = db
	s.mu.Unlock()
	return db, nil
}

// conn finds a connection of the caller's.
func (s *SQL) conn(caller *manifest.Manifest, id int64) (*sqlConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[id]
	if c == nil || caller != nil && c.owner != caller.Name {
		return nil, fmt.Errorf("no connection %d: it was closed, or left idle longer than %s", id, IdleTimeout)
	}
	c.used = time.Now()
	return c, nil
}

// execer is what exec and query run on: a connection or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *SQL) target(caller *manifest.Manifest, r sqlwire.Request) (execer, error) {
	c, err := s.conn(caller, r.Conn)
	if err != nil {
		return nil, err
	}
	if r.Tx == 0 {
		return c.conn, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txs[r.Tx]
	if t == nil || t.conn != r.Conn {
		return nil, fmt.Errorf("no transaction %d on connection %d", r.Tx, r.Conn)
	}
	return t.tx, nil
}

// statement decodes an exec or query and finds the connection or transaction it runs on.
func (s *SQL) statement(caller *manifest.Manifest, p []byte) (sqlwire.Request, execer, error) {
	var r sqlwire.Request
	if err := decode(p, &r); err != nil {
		return r, nil, err
	}
	ex, err := s.target(caller, r)
	return r, ex, err
}

func args(vals []sqlwire.Value) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = v.Go()
	}
	return out
}

// Host is the sql service: open, close, exec, query, begin, commit, rollback.
func (s *SQL) Host() host {
	req := func(p []byte) (sqlwire.Request, error) {
		var r sqlwire.Request
		return r, decode(p, &r)
	}
	return host{
		"open": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			r, err := req(p)
			if err != nil {
				return nil, err
			}
			db, err := s.database(ctx, caller, r.Database)
			if err != nil {
				return nil, err
			}
			conn, err := db.Conn(ctx)
			if err != nil {
				return nil, err
			}
			owner := ""
			if caller != nil {
				owner = caller.Name
			}
			s.mu.Lock()
			s.nextID++
			id := s.nextID
			s.conns[id] = &sqlConn{owner: owner, conn: conn, used: time.Now()}
			s.mu.Unlock()
			return sqlwire.Handle{ID: id}, nil
		},
		"close": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			r, err := req(p)
			if err != nil {
				return nil, err
			}
			if _, err := s.conn(caller, r.Conn); err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.dropLocked(r.Conn)
			s.mu.Unlock()
			return nil, nil
		},
		"exec": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			r, ex, err := s.statement(caller, p)
			if err != nil {
				return nil, err
			}
			res, err := ex.ExecContext(ctx, r.Query, args(r.Args)...)
			if err != nil {
				return nil, err
			}
			var out sqlwire.Result
			out.LastInsertID, _ = res.LastInsertId()
			out.RowsAffected, _ = res.RowsAffected()
			return out, nil
		},
		"query": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			r, ex, err := s.statement(caller, p)
			if err != nil {
				return nil, err
			}
			rows, err := ex.QueryContext(ctx, r.Query, args(r.Args)...)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			out := sqlwire.Rows{Rows: [][]sqlwire.Value{}}
			if out.Columns, err = rows.Columns(); err != nil {
				return nil, err
			}
			for rows.Next() {
				if len(out.Rows) == MaxRows {
					return nil, fmt.Errorf("the query answers more than %d rows: add a LIMIT", MaxRows)
				}
				vals := make([]any, len(out.Columns))
				ptrs := make([]any, len(vals))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					return nil, err
				}
				row := make([]sqlwire.Value, len(vals))
				for i, v := range vals {
					if row[i], err = sqlwire.From(v); err != nil {
						return nil, err
					}
				}
				out.Rows = append(out.Rows, row)
			}
			return out, rows.Err()
		},
		"begin": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			r, err := req(p)
			if err != nil {
				return nil, err
			}
			c, err := s.conn(caller, r.Conn)
			if err != nil {
				return nil, err
			}
			// The transaction lives past this call: it must not end with the call's context.
			tx, err := c.conn.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{ReadOnly: r.ReadOnly})
			if err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.nextID++
			id := s.nextID
			s.txs[id] = &sqlTx{conn: r.Conn, tx: tx}
			s.mu.Unlock()
			return sqlwire.Handle{ID: id}, nil
		},
		"commit":   s.finish(true),
		"rollback": s.finish(false),
	}
}

func (s *SQL) finish(commit bool) handler {
	return func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
		var r sqlwire.Request
		if err := decode(p, &r); err != nil {
			return nil, err
		}
		if _, err := s.conn(caller, r.Conn); err != nil {
			return nil, err
		}
		s.mu.Lock()
		t := s.txs[r.Tx]
		delete(s.txs, r.Tx)
		s.mu.Unlock()
		if t == nil || t.conn != r.Conn {
			return nil, fmt.Errorf("no transaction %d on connection %d", r.Tx, r.Conn)
		}
		if commit {
			return nil, t.tx.Commit()
		}
		return nil, t.tx.Rollback()
	}
}
