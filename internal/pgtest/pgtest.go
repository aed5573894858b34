// Package pgtest starts a throwaway PostgreSQL cluster, in a temporary directory on a free loopback port, for
// tests and benchmarks of the base's sql service on PostgreSQL. A test process starts one (DSN) and stops it
// in TestMain (Stop). tools/postgres/ensure.sh installs PostgreSQL where `make test` runs.
//
// KOUPLE_TEST_POSTGRES says what a test does without PostgreSQL's binaries: "required" fails it (CI, through
// the Makefile), "off" skips PostgreSQL tests even when it is installed, anything else skips with a message.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Env is the variable that says whether PostgreSQL tests are required.
const Env = "KOUPLE_TEST_POSTGRES"

// ErrNotInstalled is Start's error when no PostgreSQL binaries are found.
var ErrNotInstalled = errors.New("PostgreSQL is not installed (no initdb and postgres in PATH or /usr/lib/postgresql/*/bin): run tools/postgres/ensure.sh")

// Server is a running throwaway cluster whose superuser is postgres, trusted on loopback.
type Server struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	out    *strings.Builder
	exited chan struct{}
	nextDB atomic.Int64
}

// Bin finds the directory of PostgreSQL's server binaries: PATH first, then the newest Debian install.
func Bin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises a cluster in a new temporary directory and starts it. PostgreSQL refuses to run as root:
// under root it runs as the postgres user (or nobody).
func Start(ctx context.Context) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	parent := ""
	if os.Geteuid() == 0 {
		parent = "/tmp" // the postgres user must reach the directory: $TMPDIR may be under root's home
	}
	dir, err := os.MkdirTemp(parent, "kouple-pg-")
	if err != nil {
		return nil, err
	}
	cred, err := credential(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb %s: %w: %s", data, err, out)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{dir: dir, port: port, out: &strings.Builder{}, exited: make(chan struct{})}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=300",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "shared_buffers=32MB")
	// SIGQUIT (immediate shutdown) if this process dies without stopping it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	s.cmd.Stdout, s.cmd.Stderr = lockedWriter{b: s.out}, lockedWriter{b: s.out}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	if err := s.ready(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

var outMu sync.Mutex

type lockedWriter struct{ b *strings.Builder }

func (w lockedWriter) Write(p []byte) (int, error) {
	outMu.Lock()
	defer outMu.Unlock()
	if w.b.Len() < 64<<10 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (s *Server) log() string {
	outMu.Lock()
	defer outMu.Unlock()
	return s.out.String()
}

// credential is who runs PostgreSQL: nil (this process's user) unless this is root, then the postgres user or
// nobody, given dir.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, fmt.Errorf("running as root and neither a postgres nor a nobody user to run PostgreSQL as: %w", err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) ready(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := pgconn.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			return c.Close(ctx)
		}
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited at start: %s", s.log())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within 60 s: %v: %s", err, s.log())
		}
	}
}

// DSN is the superuser's DSN for database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// NewDatabase creates an empty database with a name not used before in this cluster and answers its DSN.
func (s *Server) NewDatabase(ctx context.Context, prefix string) (string, error) {
	name := fmt.Sprintf("%s%d", prefix, s.nextDB.Add(1))
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// Stop shuts the cluster down (fast shutdown, then kill) and removes its directory.
func (s *Server) Stop() error {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	return os.RemoveAll(s.dir)
}

var (
	mu     sync.Mutex
	shared *Server
	err    error
)

// DSN answers the DSN of a new, empty database on the test process's cluster, starting the cluster on first
// use. Without PostgreSQL it skips the test, or fails it when KOUPLE_TEST_POSTGRES=required.
func DSN(t testing.TB) string {
	t.Helper()
	switch os.Getenv(Env) {
	case "off":
		t.Skip("PostgreSQL tests are off (" + Env + "=off)")
	}
	mu.Lock()
	if shared == nil && err == nil {
		shared, err = Start(context.Background())
	}
	s, startErr := shared, err
	mu.Unlock()
	if startErr != nil {
		if errors.Is(startErr, ErrNotInstalled) && os.Getenv(Env) != "required" {
			t.Skipf("skipping the PostgreSQL variant: %v (set %s=required to fail instead)", startErr, Env)
		}
		t.Fatal(startErr)
	}
	dsn, err := s.NewDatabase(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Stop stops the test process's cluster, if one was started; TestMain calls it after the tests.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		shared.Stop()
		shared = nil
	}
}
