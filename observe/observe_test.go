package observe

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTraceparent(t *testing.T) {
	tr := NewTrace()
	p, ok := ParseTraceparent(tr.Traceparent())
	if !ok || p.TraceID != tr.TraceID || p.SpanID != tr.SpanID {
		t.Fatalf("round trip of %q: %+v %v", tr.Traceparent(), p, ok)
	}
	for _, bad := range []string{"", "00-abc-def-01", "00-" + strings.Repeat("0", 32) + "-" + tr.SpanID + "-01", "ff-" + tr.TraceID + "-" + tr.SpanID + "-01"} {
		if _, ok := ParseTraceparent(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	tr.RequestID = "req-1"
	d := Decode(tr.Encode())
	if d != tr {
		t.Errorf("Decode(Encode()) = %+v, want %+v", d, tr)
	}
	if c := tr.Child(); c.TraceID != tr.TraceID || c.SpanID == tr.SpanID {
		t.Errorf("child %+v of %+v", c, tr)
	}
}

// TestHubBounds: a ring keeps its count and byte bounds however much is logged.
func TestHubBounds(t *testing.T) {
	h, _ := NewHub(HubConfig{PerVersion: 100, PerVersionBytes: 64 << 10})
	long := strings.Repeat("x", 4<<10)
	for i := range 10000 {
		msg := "short"
		if i%2 == 0 {
			msg = long
		}
		h.Add(Record{Module: "m", Version: "1", Message: msg, Time: time.Now()})
	}
	recs := h.Query(Filter{Module: "m"})
	total := 0
	for i := range recs {
		total += cost(&recs[i])
	}
	if len(recs) > 100 || total > 64<<10 || len(recs) < 10 {
		t.Errorf("kept %d records, %d bytes", len(recs), total)
	}
	if recs[len(recs)-1].Seq != 10000 {
		t.Errorf("the latest record is not kept: %d", recs[len(recs)-1].Seq)
	}
}

func TestHubSeparatesModules(t *testing.T) {
	dir := t.TempDir()
	h, err := NewHub(HubConfig{PerVersion: 3, Dir: dir, MaxFileBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	base := slog.New(h.Handler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	a := base.With("module", "a", "version", "1")
	b := base.With("module", "b", "version", "1")
	sub := h.Follow(Filter{Module: "a"})
	defer sub.Stop()
	ctx := WithTrace(context.Background(), Trace{TraceID: strings.Repeat("1", 32), SpanID: strings.Repeat("2", 16), RequestID: "r1"})
	for i := range 5 {
		a.InfoContext(ctx, "from a", "i", i)
		b.Info("from b", "stream", "stdout", "request_id", "rb")
	}
	base.Info("base's own")
	recs := h.Query(Filter{Module: "a"})
	if len(recs) != 3 {
		t.Fatalf("kept %d records of a, want the last 3", len(recs))
	}
	for _, r := range recs {
		if r.Module != "a" || r.Message != "from a" || r.RequestID != "r1" || r.TraceID != strings.Repeat("1", 32) {
			t.Errorf("a's record %+v", r)
		}
	}
	if recs[2].Attrs["i"] != int64(4) {
		t.Errorf("last record's attrs %v", recs[2].Attrs)
	}
	if rb := h.Query(Filter{Module: "b"}); len(rb) != 3 || rb[0].Stream != "stdout" || rb[0].RequestID != "rb" {
		t.Errorf("b's records %+v", rb)
	}
	if own := h.Query(Filter{Base: true}); len(own) != 1 || own[0].Message != "base's own" {
		t.Errorf("base records %+v", own)
	}
	if late := h.Query(Filter{Base: true, Since: time.Now().Add(time.Hour)}); len(late) != 0 {
		t.Errorf("base records from the future: %+v", late)
	}
	for range 5 {
		r := <-sub.C()
		if r.Module != "a" {
			t.Errorf("follower of a got %+v", r)
		}
	}
	select {
	case r := <-sub.C():
		t.Errorf("follower of a got more: %+v", r)
	default:
	}
	if _, err := os.Stat(filepath.Join(dir, "a.log.1")); err != nil {
		t.Errorf("a.log was not rotated: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "_base.log")); err != nil {
		t.Errorf("no _base.log: %v", err)
	}
}
