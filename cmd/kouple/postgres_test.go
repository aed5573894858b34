package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kouple/kouple/internal/moduletest"
	"github.com/kouple/kouple/internal/pgtest"
)

// TestTodoOnPostgres: `kouple base --sql-dsn` runs todo's database/sql on PostgreSQL: the data survives a
// kill -9 and a restart (the DSN then from $KOUPLE_SQL_DSN), a second base given the same DSN (a replica, with
// a data dir of its own) serves the same items, and nothing is kept in SQLite files.
func TestTodoOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	dataDir := t.TempDir()
	todo := filepath.Join(moduletest.Root(), "examples/todo")
	b := startBaseWith(t, dataDir, []string{"--sql-dsn", dsn}, nil)
	b.mustCLI("deploy", todo)
	resp, err := http.Post(b.gateway+"/todo/items", "application/json", strings.NewReader(`{"title":"on postgres"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("POST /todo/items = %d", resp.StatusCode)
	}
	b.kill()

	b = startBase(t, dataDir, "KOUPLE_SQL_DSN="+dsn)
	want := `[{"id":1,"title":"on postgres","done":false}]`
	if _, body := b.get("/todo/items"); strings.TrimSpace(body) != want {
		t.Errorf("after kill -9 and a restart: %q", body)
	}
	replica := startBase(t, t.TempDir(), "KOUPLE_SQL_DSN="+dsn)
	replica.mustCLI("deploy", todo)
	if _, body := replica.get("/todo/items"); strings.TrimSpace(body) != want {
		t.Errorf("a second base on the same DSN: %q", body)
	}
	if files, _ := os.ReadDir(filepath.Join(dataDir, "sql")); len(files) > 0 {
		t.Errorf("SQLite files in the data dir of a base on PostgreSQL: %v", files)
	}
}
