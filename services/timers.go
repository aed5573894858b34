package services

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	bolt "go.etcd.io/bbolt"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// Clock is the time the timers run on: the real one in a base, a ManualClock in tests.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has passed (at once if d <= 0).
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TimerMethodPrefix is what the base calls on a module when its timer NAME is due: "kouple.timer.NAME"
// (exported by sdk/timers.Handle).
const TimerMethodPrefix = "kouple.timer."

// Tick is the argument of a timer call.
type Tick struct {
	Name      string    `json:"name"`
	Scheduled time.Time `json:"scheduled"`
	CatchUp   bool      `json:"catchUp,omitempty"` // a run missed while the base was down
}

// Timers calls modules on the schedules of their active versions' manifests (`timers:`) and those they
// scheduled through the SDK (the timers service, capability "timers"). A run is called
// once, at its scheduled time; a run that is still going when the next is due makes that next one skipped.
// The time of each timer's last run is kept (bbolt) so that a timer with catchUp that missed runs while the
// base was down runs once when its module is back.
type Timers struct {
	db     *bolt.DB
	policy *Policy
	target runtime.Host
	clock  Clock
	logger *slog.Logger

	mu      sync.Mutex
	active  map[string]*manifest.Manifest // the active versions, by module name
	entries map[string]*timerEntry        // by module/name
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type timerEntry struct {
	module   string
	timer    manifest.Timer
	schedule cron.Schedule
	next     time.Time
	running  bool
}

var (
	lastRunBucket   = []byte("last-run")  // module/name -> RFC 3339 time
	scheduledBucket = []byte("scheduled") // module/name -> JSON manifest.Timer, scheduled through the SDK
)

// OpenTimers opens (creating) the timer store at path and starts the scheduler; clock nil is the real clock.
func OpenTimers(path string, policy *Policy, target runtime.Host, clock Clock, logger *slog.Logger) (*Timers, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 0})
	if err != nil {
		return nil, fmt.Errorf("timer store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(lastRunBucket)
		if err == nil {
			_, err = tx.CreateBucketIfNotExists(scheduledBucket)
		}
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("timer store %s: %w", path, err)
	}
	if clock == nil {
		clock = realClock{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Timers{db: db, policy: policy, target: target, clock: clock, logger: logger,
		entries: map[string]*timerEntry{}, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	t.wg.Go(t.loop)
	return t, nil
}

// Close stops the scheduler, waits for the runs in flight (their calls are cancelled), and closes the store.
func (t *Timers) Close() error {
	t.mu.Lock()
	t.cancel()
	t.mu.Unlock()
	t.wg.Wait()
	return t.db.Close()
}

// Sync makes the timers those of the active versions (module name -> manifest) plus those the modules
// scheduled through the SDK. A timer new to this base process with catchUp runs once now if a run was due
// since its last one; the last runs and SDK timers of modules no longer installed are forgotten (installed
// lists every installed module name).
func (t *Timers) Sync(active map[string]*manifest.Manifest, installed map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return // closed: the base is stopping
	}
	t.active = active
	t.db.Update(func(tx *bolt.Tx) error {
		for _, b := range []*bolt.Bucket{tx.Bucket(lastRunBucket), tx.Bucket(scheduledBucket)} {
			var gone [][]byte
			b.ForEach(func(k, _ []byte) error {
				if mod, _, _ := cutLast(string(k)); !installed[mod] {
					gone = append(gone, k)
				}
				return nil
			})
			for _, k := range gone {
				b.Delete(k)
			}
		}
		return nil
	})
	t.rebuild()
}

// timersOf lists the timers of module m: its manifest's, then those it scheduled through the SDK under
// other names.
func (t *Timers) timersOf(m *manifest.Manifest) []manifest.Timer {
	list := slices.Clone(m.Timers)
	t.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(scheduledBucket).Cursor()
		prefix := []byte(m.Name + "/")
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var tm manifest.Timer
			if json.Unmarshal(v, &tm) == nil && !slices.ContainsFunc(list, func(o manifest.Timer) bool { return o.Name == tm.Name }) {
				list = append(list, tm)
			}
		}
		return nil
	})
	return list
}

// rebuild recomputes the entries from the active versions and the scheduled timers; t.mu is held.
func (t *Timers) rebuild() {
	now := t.clock.Now()
	want := map[string]*timerEntry{}
	for name, m := range t.active {
		list := t.timersOf(m)
		if len(list) == 0 {
			continue
		}
		if err := t.policy.operatorAllows(m, "timers"); err != nil {
			t.logger.Warn("timers refused", "module", name, "err", err)
			continue
		}
		for _, tm := range list {
			sched, err := manifest.ParseSchedule(tm.Schedule)
			if err != nil {
				continue // validated at install or when scheduled
			}
			key := name + "/" + tm.Name
			if old := t.entries[key]; old != nil && old.timer == tm {
				want[key] = old
				continue
			}
			e := &timerEntry{module: name, timer: tm, schedule: sched, next: sched.Next(now)}
			want[key] = e
			last, known := t.lastRun(key)
			if !known {
				t.setLastRun(key, now) // missed runs are counted from here
			} else if tm.CatchUp && t.entries[key] == nil && !sched.Next(last).After(now) {
				t.logger.Info("timer missed a run while the base was down: running it now", "module", name, "timer", tm.Name, "lastRun", last)
				t.fire(e, now, true)
			}
		}
	}
	t.entries = want
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Schedule adds or changes a timer of module caller at run time (sdk/timers.Schedule): kept across upgrades
// and restarts until cancelled or the module is uninstalled. A timer of the manifest cannot be changed so.
func (t *Timers) Schedule(caller *manifest.Manifest, tm manifest.Timer) error {
	if caller == nil {
		return errors.New("the base has no timers of its own: schedule them for a module")
	}
	if err := t.policy.granted(caller, "timers"); err != nil {
		return err
	}
	if err := tm.Validate(); err != nil {
		return err
	}
	if slices.ContainsFunc(caller.Timers, func(o manifest.Timer) bool { return o.Name == tm.Name }) {
		return fmt.Errorf("timer %q is declared in the manifest of %s: change it there", tm.Name, caller.ID())
	}
	rec, _ := json.Marshal(tm)
	return t.changeScheduled(caller.Name+"/"+tm.Name, rec)
}

// Cancel removes a timer scheduled through the SDK.
func (t *Timers) Cancel(caller *manifest.Manifest, name string) error {
	if caller == nil {
		return errors.New("the base has no timers of its own")
	}
	if err := t.policy.granted(caller, "timers"); err != nil {
		return err
	}
	return t.changeScheduled(caller.Name+"/"+name, nil)
}

func (t *Timers) changeScheduled(key string, rec []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return errors.New("the base is stopping")
	}
	err := t.db.Update(func(tx *bolt.Tx) error {
		if rec == nil {
			return tx.Bucket(scheduledBucket).Delete([]byte(key))
		}
		return tx.Bucket(scheduledBucket).Put([]byte(key), rec)
	})
	if err != nil {
		return fmt.Errorf("timer %s: %w", key, err)
	}
	t.rebuild()
	return nil
}

// Host is the timers service: schedule {name, schedule, catchUp}; cancel {name}.
func (t *Timers) Host() host {
	return host{
		"schedule": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			var tm manifest.Timer
			if err := decode(p, &tm); err != nil {
				return nil, err
			}
			return nil, t.Schedule(caller, tm)
		},
		"cancel": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			var in struct {
				Name string `json:"name"`
			}
			if err := decode(p, &in); err != nil {
				return nil, err
			}
			return nil, t.Cancel(caller, in.Name)
		},
	}
}

func cutLast(key string) (string, string, bool) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

// loop waits for the earliest due timer, fires every due one, and waits again.
func (t *Timers) loop() {
	for {
		t.mu.Lock()
		var next time.Time
		for _, e := range t.entries {
			if next.IsZero() || e.next.Before(next) {
				next = e.next
			}
		}
		t.mu.Unlock()
		var due <-chan time.Time
		if !next.IsZero() {
			due = t.clock.After(next.Sub(t.clock.Now()))
		}
		select {
		case <-t.ctx.Done():
			return
		case <-t.wake:
			continue
		case <-due:
		}
		now := t.clock.Now()
		t.mu.Lock()
		for _, e := range t.entries {
			if e.next.After(now) {
				continue
			}
			t.fire(e, e.next, false)
			e.next = e.schedule.Next(now)
		}
		t.mu.Unlock()
	}
}

// fire calls the module's timer handler in its own goroutine; t.mu is held.
func (t *Timers) fire(e *timerEntry, scheduled time.Time, catchUp bool) {
	if t.ctx.Err() != nil {
		return // closed
	}
	if e.running {
		t.logger.Warn("timer still running at its next run: skipped", "module", e.module, "timer", e.timer.Name, "scheduled", scheduled)
		return
	}
	e.running = true
	t.setLastRun(e.module+"/"+e.timer.Name, scheduled)
	t.wg.Go(func() {
		defer func() {
			t.mu.Lock()
			e.running = false
			t.mu.Unlock()
		}()
		payload, _ := json.Marshal(Tick{Name: e.timer.Name, Scheduled: scheduled, CatchUp: catchUp})
		ctx, cancel := context.WithTimeout(t.ctx, 5*time.Minute)
		defer cancel()
		if _, err := t.target.Call(ctx, "base", e.module, TimerMethodPrefix+e.timer.Name, payload); err != nil {
			t.logger.Warn("timer run failed", "module", e.module, "timer", e.timer.Name, "scheduled", scheduled, "err", err)
		}
	})
}

func (t *Timers) lastRun(key string) (time.Time, bool) {
	var last time.Time
	var known bool
	t.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(lastRunBucket).Get([]byte(key)); v != nil {
			known = last.UnmarshalText(v) == nil
		}
		return nil
	})
	return last, known
}

func (t *Timers) setLastRun(key string, at time.Time) {
	v, _ := at.UTC().MarshalText()
	if err := t.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(lastRunBucket).Put([]byte(key), v) }); err != nil {
		t.logger.Warn("timer's last run not recorded", "timer", key, "err", err)
	}
}

// ManualClock is a Clock that moves only when told (Advance): for tests of schedules.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []manualWaiter
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

// NewManualClock starts a manual clock at now.
func NewManualClock(now time.Time) *ManualClock { return &ManualClock{now: now} }

// Now is the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After delivers the clock's time once it has been advanced by d.
func (c *ManualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, manualWaiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock by d, waking the waiters now due.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}
