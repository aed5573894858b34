package main

import (
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
)

// Item is one thing to do.
type Item struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

// server is an ordinary net/http + database/sql service.
type server struct {
	db  *sql.DB
	mux *http.ServeMux
}

func newServer(db *sql.DB) (*server, error) {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0)`); err != nil {
		return nil, err
	}
	s := &server{db: db, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /items", s.list)
	s.mux.HandleFunc("POST /items", s.create)
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	rows, err := s.db.QueryContext(r.Context(), `SELECT id, title, done FROM items ORDER BY id`)
	if err != nil {
		fail(w, err)
		return
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.ID, &it.Title, &it.Done); err != nil {
			fail(w, err)
			return
		}
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, items)
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title string `json:"title"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || strings.TrimSpace(in.Title) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be JSON {"title": "..."} with a title`})
		return
	}
	res, err := s.db.ExecContext(r.Context(), `INSERT INTO items (title) VALUES (?)`, in.Title)
	if err != nil {
		fail(w, err)
		return
	}
	id, _ := res.LastInsertId()
	slog.Info("item created", "id", id)
	writeJSON(w, http.StatusCreated, Item{ID: id, Title: in.Title})
}

func fail(w http.ResponseWriter, err error) {
	slog.Error("database", "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
