package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Note is one stored note.
type Note struct {
	ID      int       `json:"id"`
	Text    string    `json:"text"`
	Created time.Time `json:"created"`
}

// server is an ordinary net/http JSON service with its own mux and an in-memory store.
type server struct {
	mux   *http.ServeMux
	mu    sync.Mutex
	next  int
	notes map[int]Note
}

func newServer() *server {
	s := &server{mux: http.NewServeMux(), next: 1, notes: map[int]Note{}}
	s.mux.HandleFunc("GET /items", s.list)
	s.mux.HandleFunc("POST /items", s.create)
	s.mux.HandleFunc("GET /items/{id}", s.get)
	s.mux.HandleFunc("DELETE /items/{id}", s.delete)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := make([]Note, 0, len(s.notes))
	for _, n := range s.notes {
		out = append(out, n)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Note) int { return a.ID - b.ID })
	if q := r.URL.Query().Get("q"); q != "" {
		out = slices.DeleteFunc(out, func(n Note) bool { return !strings.Contains(n.Text, q) })
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON {\"text\": ...}: " + err.Error()})
		return
	}
	if strings.TrimSpace(in.Text) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "text is empty"})
		return
	}
	s.mu.Lock()
	n := Note{ID: s.next, Text: in.Text, Created: time.Now().UTC()}
	s.notes[n.ID] = n
	s.next++
	s.mu.Unlock()
	w.Header().Set("Location", "items/"+strconv.Itoa(n.ID))
	writeJSON(w, http.StatusCreated, n)
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	n, ok := s.notes[id]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no note " + r.PathValue("id")})
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	_, ok := s.notes[id]
	delete(s.notes, id)
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no note " + r.PathValue("id")})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
