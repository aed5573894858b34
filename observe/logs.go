package observe

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Record is one structured log line of a module version (or of the base itself: Module "").
type Record struct {
	Seq       uint64         `json:"seq"` // order of arrival in the hub
	Time      time.Time      `json:"time"`
	Level     string         `json:"level"`
	Module    string         `json:"module,omitempty"`
	Version   string         `json:"version,omitempty"`
	Stream    string         `json:"stream,omitempty"` // stdout or stderr for the module's own output
	RequestID string         `json:"requestId,omitempty"`
	TraceID   string         `json:"traceId,omitempty"`
	Message   string         `json:"msg"`
	Attrs     map[string]any `json:"attrs,omitempty"`
}

// Filter selects records: of one module (Base: the base's own), optionally one version, from a time on.
type Filter struct {
	Module  string
	Version string
	Base    bool
	Since   time.Time
}

func (f Filter) match(r *Record) bool {
	if r.Time.Before(f.Since) {
		return false
	}
	if f.Base {
		return r.Module == ""
	}
	return r.Module == f.Module && (f.Version == "" || r.Version == f.Version)
}

// Hub keeps the last records of each module version in a ring of its own, so that one chatty module cannot
// push another's lines out, and hands new records to followers.
type Hub struct {
	size     int
	maxBytes int
	maxRings int
	mu       sync.Mutex
	seq      uint64
	rings    map[ringKey]*ring
	subs     map[*Subscription]struct{}
	files    *fileSink
}

type ringKey struct{ module, version string }

type ring struct {
	recs  []Record // oldest first: at most size records and maxBytes (estimated)
	bytes int
	last  uint64 // seq of the latest record, to evict the quietest ring
}

// cost estimates the memory a record holds.
func cost(r *Record) int {
	n := 160 + len(r.Message) + len(r.RequestID) + len(r.TraceID)
	for k, v := range r.Attrs {
		n += 32 + len(k)
		if s, ok := v.(string); ok {
			n += len(s)
		}
	}
	return n
}

// HubConfig configures a hub; zero values take the defaults.
type HubConfig struct {
	PerVersion      int // records kept per module version; default 2000
	PerVersionBytes int // and at most about this much memory per module version; default 1 MiB
	MaxRings        int // module versions kept; the least recently written is forgotten first; default 64
	// Dir, if set, receives every record as a JSON line in <Dir>/<module>.log (the base's own in
	// <Dir>/_base.log), rotated to .1, .2, .3 past MaxFileBytes.
	Dir          string
	MaxFileBytes int64 // default 10 MiB
}

// NewHub makes a hub.
func NewHub(cfg HubConfig) (*Hub, error) {
	h := &Hub{
		size:     cmp.Or(cfg.PerVersion, 2000),
		maxBytes: cmp.Or(cfg.PerVersionBytes, 1<<20),
		maxRings: cmp.Or(cfg.MaxRings, 64),
		rings:    map[ringKey]*ring{},
		subs:     map[*Subscription]struct{}{},
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("log dir: %w", err)
		}
		h.files = &fileSink{dir: cfg.Dir, max: cmp.Or(cfg.MaxFileBytes, 10<<20), open: map[string]*logFile{}}
	}
	return h, nil
}

// Add stores a record and hands it to the followers that want it. A follower that does not keep up loses
// records (counted in its Dropped) rather than slowing the module that logs.
func (h *Hub) Add(r Record) {
	h.mu.Lock()
	h.seq++
	r.Seq = h.seq
	k := ringKey{r.Module, r.Version}
	rg := h.rings[k]
	if rg == nil {
		if len(h.rings) >= h.maxRings {
			h.evict()
		}
		rg = &ring{}
		h.rings[k] = rg
	}
	rg.recs = append(rg.recs, r)
	rg.bytes += cost(&r)
	drop := 0
	for len(rg.recs)-drop > 1 && (len(rg.recs)-drop > h.size || rg.bytes > h.maxBytes) {
		rg.bytes -= cost(&rg.recs[drop])
		drop++
	}
	if drop > 0 {
		// Reslicing from the front is amortized O(1): append moves the live records to a new array when
		// the old one's end is reached, and the dropped ones go with the old array.
		clear(rg.recs[:drop])
		rg.recs = rg.recs[drop:]
	}
	rg.last = r.Seq
	for s := range h.subs {
		if s.filter.match(&r) {
			select {
			case s.ch <- r:
			default:
				s.dropped++
			}
		}
	}
	h.mu.Unlock()
	if h.files != nil {
		h.files.write(&r)
	}
}

func (h *Hub) evict() {
	var oldest ringKey
	var min uint64 = ^uint64(0)
	for k, rg := range h.rings {
		if rg.last < min {
			oldest, min = k, rg.last
		}
	}
	delete(h.rings, oldest)
}

// Query returns the kept records that match f, oldest first.
func (h *Hub) Query(f Filter) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Record
	for k, rg := range h.rings {
		if f.Base && k.module != "" || !f.Base && (k.module != f.Module || f.Version != "" && k.version != f.Version) {
			continue
		}
		for i := range rg.recs {
			r := &rg.recs[i]
			if f.match(r) {
				out = append(out, *r)
			}
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// Subscription receives new records matching its filter until Stop.
type Subscription struct {
	h       *Hub
	filter  Filter
	ch      chan Record
	dropped int
	once    sync.Once
}

// Follow subscribes to new records matching f. The caller owns the subscription and must Stop it.
func (h *Hub) Follow(f Filter) *Subscription {
	s := &Subscription{h: h, filter: f, ch: make(chan Record, 1024)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// C delivers the records; it is closed by Stop.
func (s *Subscription) C() <-chan Record { return s.ch }

// Dropped is how many records this follower lost because it did not keep up.
func (s *Subscription) Dropped() int {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.dropped
}

// Stop ends the subscription and closes C.
func (s *Subscription) Stop() {
	s.once.Do(func() {
		s.h.mu.Lock()
		delete(s.h.subs, s)
		close(s.ch)
		s.h.mu.Unlock()
	})
}

// Followers is how many subscriptions are open (for tests and metrics).
func (h *Hub) Followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Handler returns a slog.Handler that stores every record in the hub and passes it on to next. A record's
// module and version are its "module" and "version" attributes (the registry gives each module such a
// logger); "stream", "request_id" and "trace_id" attributes fill the fields of the same names. A record
// without a module is the base's own. The trace context in the record's context.Context, if any, fills the
// request and trace ids too.
func (h *Hub) Handler(next slog.Handler) slog.Handler { return &hubHandler{hub: h, next: next} }

type hubHandler struct {
	hub    *Hub
	next   slog.Handler
	attrs  []slog.Attr // with group prefixes applied
	prefix string
}

func (h *hubHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *hubHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = slices.Clip(h.attrs)
	for _, a := range as {
		h2.attrs = append(h2.attrs, prefixed(h.prefix, a))
	}
	h2.next = h.next.WithAttrs(as)
	return &h2
}

func (h *hubHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.prefix = h.prefix + name + "."
	h2.next = h.next.WithGroup(name)
	return &h2
}

func prefixed(prefix string, a slog.Attr) slog.Attr {
	if prefix != "" {
		a.Key = prefix + a.Key
	}
	return a
}

func (h *hubHandler) Handle(ctx context.Context, r slog.Record) error {
	rec := Record{Time: r.Time, Level: r.Level.String(), Message: r.Message}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	if t, ok := TraceFrom(ctx); ok {
		rec.TraceID, rec.RequestID = t.TraceID, t.RequestID
	}
	take := func(a slog.Attr) {
		a.Value = a.Value.Resolve()
		switch a.Key {
		case "module":
			rec.Module = a.Value.String()
		case "version":
			rec.Version = a.Value.String()
		case "stream":
			rec.Stream = a.Value.String()
		case "request_id":
			rec.RequestID = a.Value.String()
		case "trace_id":
			rec.TraceID = a.Value.String()
		default:
			if a.Key == "" {
				return
			}
			if rec.Attrs == nil {
				rec.Attrs = map[string]any{}
			}
			switch v := a.Value.Any().(type) {
			case error:
				rec.Attrs[a.Key] = v.Error()
			case time.Duration:
				rec.Attrs[a.Key] = v.String()
			case fmt.Stringer:
				rec.Attrs[a.Key] = v.String()
			default:
				rec.Attrs[a.Key] = v
			}
		}
	}
	for _, a := range h.attrs {
		take(a)
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				take(prefixed(h.prefix+a.Key+".", g))
			}
			return true
		}
		take(prefixed(h.prefix, a))
		return true
	})
	if r.Level >= slog.LevelInfo {
		h.hub.Add(rec)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// fileSink writes records as JSON lines, a file per module, rotated by size.
type fileSink struct {
	dir  string
	max  int64
	mu   sync.Mutex
	open map[string]*logFile
}

type logFile struct {
	f    *os.File
	size int64
}

const keepRotated = 3

func (s *fileSink) write(r *Record) {
	name := "_base"
	if r.Module != "" {
		name = r.Module
	}
	line, err := json.Marshal(r)
	if err != nil {
		return
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	lf := s.open[name]
	path := filepath.Join(s.dir, name+".log")
	if lf != nil && lf.size+int64(len(line)) > s.max {
		lf.f.Close()
		delete(s.open, name)
		lf = nil
		for i := keepRotated - 1; i >= 1; i-- {
			os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1))
		}
		os.Rename(path, path+".1")
	}
	if lf == nil {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return
		}
		st, _ := f.Stat()
		lf = &logFile{f: f}
		if st != nil {
			lf.size = st.Size()
		}
		s.open[name] = lf
	}
	n, _ := lf.f.Write(line)
	lf.size += int64(n)
}

// Close closes the log files.
func (h *Hub) Close() {
	if h.files == nil {
		return
	}
	h.files.mu.Lock()
	defer h.files.mu.Unlock()
	for k, lf := range h.files.open {
		lf.f.Close()
		delete(h.files.open, k)
	}
}
