package services

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgres keeps each module's database, and each shared one, as a PostgreSQL database of its own, owned by a
// role of its own that the base logs in as for that database only: <prefix>_m_<module> and <prefix>_s_<name>,
// where prefix is the database the DSN names. A module's SQL then runs with no privilege on any other
// module's database (it cannot read, drop or connect to it), whatever statements it sends — unlike schemas
// with a search_path, which a module could change. The DSN's role needs CREATEDB and CREATEROLE (no superuser).
type postgres struct {
	admin  *sql.DB // the DSN's own database, where databases and roles are created
	cfg    *pgx.ConnConfig
	prefix string
}

// Per-database pool bounds: a module cannot take more than MaxConnsPerDatabase of the server's connections
// through one base. The role itself has no connection limit: replicas of a base share it.
const (
	MaxConnsPerDatabase = 16
	maxIdlePerDatabase  = 4
)

// OpenPostgres runs modules' SQL on the PostgreSQL server dsn names (postgres://USER:PASSWORD@HOST/DATABASE),
// creating a database and a role per module and per shared database on first use.
func OpenPostgres(ctx context.Context, dsn string, policy *Policy) (*SQL, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sql dsn: %w", err) // pgx's error does not repeat the password
	}
	if cfg.Database == "" {
		return nil, fmt.Errorf("sql dsn names no database: add one (postgres://USER@HOST/kouple); it prefixes the databases the base creates")
	}
	admin := stdlib.OpenDB(*cfg)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("postgres %s@%s:%d/%s: %w", cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
	}
	return newSQL(&postgres{admin: admin, cfg: cfg, prefix: cfg.Database}, policy), nil
}

func (p *postgres) Close() error { return p.admin.Close() }

func (p *postgres) open(ctx context.Context, kind, name string) (*sql.DB, error) {
	db := p.prefix + "_" + kind[:1] + "_" + name
	if len(db) > 63 {
		return nil, fmt.Errorf("postgres database name %q is longer than PostgreSQL's 63 bytes: use a shorter name or a shorter database in the base's DSN", db)
	}
	password := p.password(db)
	if err := p.ensure(ctx, db, password); err != nil {
		return nil, fmt.Errorf("postgres database %s: %w", db, err)
	}
	cfg := p.cfg.Copy()
	cfg.Database, cfg.User, cfg.Password = db, db, password
	pool := stdlib.OpenDB(*cfg)
	pool.SetMaxOpenConns(MaxConnsPerDatabase)
	pool.SetMaxIdleConns(maxIdlePerDatabase)
	pool.SetConnMaxIdleTime(time.Minute)
	return pool, nil
}

// password is the role's: derived from the base's own password, so every base given the same DSN (replicas
// of one base sharing the data) logs in with the same one, and none is stored. Without a password in the DSN
// (trust, peer or certificate authentication) the roles have none either.
func (p *postgres) password(role string) string {
	if p.cfg.Password == "" {
		return ""
	}
	mac := hmac.New(sha256.New, []byte(p.cfg.Password))
	mac.Write([]byte(role))
	return hex.EncodeToString(mac.Sum(nil))
}

// ensure creates the role and its database unless they exist; another base creating them at the same time
// is not an error.
func (p *postgres) ensure(ctx context.Context, name, password string) error {
	id := pgx.Identifier{name}.Sanitize()
	var exists bool
	if err := p.admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := p.admin.ExecContext(ctx, `CREATE ROLE `+id+` LOGIN NOCREATEDB NOCREATEROLE`); err != nil && !raced(err) {
			return fmt.Errorf("create role: %w", err)
		}
		// Creating a database owned by another role needs membership in it (PostgreSQL 15 and earlier).
		if _, err := p.admin.ExecContext(ctx, `GRANT `+id+` TO CURRENT_USER`); err != nil && !raced(err) {
			return fmt.Errorf("grant role to the base: %w", err)
		}
	}
	// The password is set at every open, so a changed DSN password reaches the roles. PASSWORD takes no
	// parameter: the value is a quoted literal of hex digits.
	lit := "NULL"
	if password != "" {
		lit = "'" + password + "'"
	}
	if _, err := p.admin.ExecContext(ctx, `ALTER ROLE `+id+` PASSWORD `+lit); err != nil {
		return fmt.Errorf("set role password: %w", err)
	}
	if err := p.admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := p.admin.ExecContext(ctx, `CREATE DATABASE `+id+` OWNER `+id); err != nil && !raced(err) {
		return fmt.Errorf("create database: %w", err)
	}
	if _, err := p.admin.ExecContext(ctx, `REVOKE ALL ON DATABASE `+id+` FROM PUBLIC`); err != nil {
		return fmt.Errorf("revoke public access: %w", err)
	}
	return nil
}

// raced reports an error of creating what another base has just created.
func raced(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "42710", "42P04", "23505": // duplicate_object, duplicate_database, unique_violation (concurrent catalog insert)
		return true
	}
	return false
}
