package services

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// Event is one published event as delivered to a subscriber.
type Event struct {
	ID        string          `json:"id"`
	Topic     string          `json:"topic"`
	Data      json.RawMessage `json:"data,omitempty"`
	Publisher string          `json:"publisher,omitempty"`
	Time      time.Time       `json:"time"`
	Attempt   int             `json:"attempt,omitempty"`
}

// EventMethodPrefix is what the base calls on a subscriber: the method "kouple.event.TOPIC" (exported by
// sdk/events.Handle).
const EventMethodPrefix = "kouple.event."

// MaxEventData bounds an event's data.
const MaxEventData = 1 << 20

// Events is publish/subscribe between modules. A subscription belongs to a module name (declared by
// `subscribe:` in any of its installed versions' manifests) and lasts until its last version is uninstalled,
// so upgrades and switches keep it. Each published event is written, in the publisher's call, to the durable
// queue of every subscriber (bbolt); one delivery loop per subscriber sends its queue in order to the active
// version, removing an event only when the handler succeeded: at-least-once, across switches and base
// restarts. A handler error is retried up to MaxAttempts times with backoff, then the event is dropped and
// logged; a subscriber that is unavailable (switching, broken, not restored yet) is retried without limit.
type Events struct {
	db     *bolt.DB
	policy *Policy
	target runtime.Host // calls modules (the base's registry)
	logger *slog.Logger

	// MinBackoff and MaxBackoff bound the wait before a failed delivery is tried again; MaxAttempts is how
	// often a handler may fail one event. Set them before the first Sync.
	MinBackoff, MaxBackoff time.Duration
	MaxAttempts            int

	mu      sync.Mutex
	workers map[string]*deliverer // by subscriber module
	ctx     context.Context       // ends at Close: stops the delivery loops and their calls
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var subsBucket = []byte("subscriptions") // module -> JSON topics

func queueBucket(module string) []byte { return []byte("queue/" + module) }

// OpenEvents opens (creating) the event store at path; target delivers to modules.
func OpenEvents(path string, policy *Policy, target runtime.Host, logger *slog.Logger) (*Events, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 0})
	if err != nil {
		return nil, fmt.Errorf("event store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(subsBucket); return err }); err != nil {
		db.Close()
		return nil, fmt.Errorf("event store %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Events{db: db, policy: policy, target: target, logger: logger, workers: map[string]*deliverer{},
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxAttempts: 10, ctx: ctx, cancel: cancel}, nil
}

// Close stops delivering and closes the store; queued events stay for the next start.
func (e *Events) Close() error {
	e.mu.Lock()
	e.cancel()
	e.mu.Unlock()
	e.wg.Wait()
	return e.db.Close()
}

// Sync makes the subscriptions those of the installed modules: topics by module name, from every installed
// version's manifest. A module no longer installed loses its subscription and its queue.
func (e *Events) Sync(installed map[string][]*manifest.Manifest) {
	want := map[string][]string{}
	for name, versions := range installed {
		var topics []string
		for _, m := range versions {
			for _, t := range m.Subscribe {
				if err := e.policy.operatorAllows(m, "events:"+t); err != nil {
					e.logger.Warn("subscription refused", "module", name, "topic", t, "err", err)
					continue
				}
				topics = append(topics, t)
			}
		}
		if len(topics) > 0 {
			slices.Sort(topics)
			want[name] = slices.Compact(topics)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		return // closed: the base is stopping
	}
	err := e.db.Update(func(tx *bolt.Tx) error {
		subs := tx.Bucket(subsBucket)
		var gone []string
		subs.ForEach(func(k, _ []byte) error {
			if _, ok := want[string(k)]; !ok {
				gone = append(gone, string(k))
			}
			return nil
		})
		for _, name := range gone {
			if q := tx.Bucket(queueBucket(name)); q != nil {
				if n := q.Stats().KeyN; n > 0 {
					e.logger.Warn("module uninstalled: its undelivered events are dropped", "module", name, "events", n)
				}
				tx.DeleteBucket(queueBucket(name))
			}
			subs.Delete([]byte(name))
		}
		for name, topics := range want {
			b, _ := json.Marshal(topics)
			if err := subs.Put([]byte(name), b); err != nil {
				return err
			}
			if _, err := tx.CreateBucketIfNotExists(queueBucket(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.logger.Error("event subscriptions not recorded", "err", err)
		return
	}
	for name, w := range e.workers {
		if _, ok := want[name]; !ok {
			w.stop()
			delete(e.workers, name)
		}
	}
	for name := range want {
		if e.workers[name] == nil {
			e.workers[name] = e.startDeliverer(name)
		}
	}
}

// Publish queues an event for every subscriber of its topic, durably, and returns its id.
func (e *Events) Publish(caller *manifest.Manifest, topic string, data json.RawMessage) (string, int, error) {
	if caller != nil {
		if err := e.policy.granted(caller, "events:"+topic); err != nil {
			return "", 0, err
		}
	}
	if len(data) > MaxEventData {
		return "", 0, fmt.Errorf("event data is %d bytes, more than %d KiB", len(data), MaxEventData>>10)
	}
	id := make([]byte, 16)
	rand.Read(id)
	ev := Event{ID: hex.EncodeToString(id), Topic: topic, Data: data, Time: time.Now().UTC()}
	if caller != nil {
		ev.Publisher = caller.Name
	}
	rec, err := json.Marshal(ev)
	if err != nil {
		return "", 0, fmt.Errorf("event data is not JSON: %w", err)
	}
	var to []string
	err = e.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(subsBucket).ForEach(func(k, v []byte) error {
			var topics []string
			json.Unmarshal(v, &topics)
			if !slices.Contains(topics, topic) {
				return nil
			}
			q, err := tx.CreateBucketIfNotExists(queueBucket(string(k)))
			if err != nil {
				return err
			}
			seq, _ := q.NextSequence()
			to = append(to, string(k))
			return q.Put(binary.BigEndian.AppendUint64(nil, seq), rec)
		})
	})
	if err != nil {
		return "", 0, fmt.Errorf("publish %s: %w", topic, err)
	}
	e.mu.Lock()
	for _, name := range to {
		if w := e.workers[name]; w != nil {
			w.poke()
		}
	}
	e.mu.Unlock()
	return ev.ID, len(to), nil
}

// Pending counts the events queued for module.
func (e *Events) Pending(module string) int {
	n := 0
	e.db.View(func(tx *bolt.Tx) error {
		if q := tx.Bucket(queueBucket(module)); q != nil {
			n = q.Stats().KeyN
		}
		return nil
	})
	return n
}

// Host is the events service: publish {topic, data} -> {id, subscribers}.
func (e *Events) Host() host {
	return host{
		"publish": func(ctx context.Context, caller *manifest.Manifest, p []byte) (any, error) {
			var in struct {
				Topic string          `json:"topic"`
				Data  json.RawMessage `json:"data"`
			}
			if err := decode(p, &in); err != nil {
				return nil, err
			}
			id, n, err := e.Publish(caller, in.Topic, in.Data)
			if err != nil {
				return nil, err
			}
			return map[string]any{"id": id, "subscribers": n}, nil
		},
	}
}

// deliverer sends one subscriber's queue, in order.
type deliverer struct {
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (d *deliverer) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *deliverer) stop() {
	d.cancel()
	<-d.done
}

func (e *Events) startDeliverer(module string) *deliverer {
	ctx, cancel := context.WithCancel(e.ctx)
	d := &deliverer{wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	e.wg.Go(func() {
		defer close(d.done)
		e.deliver(ctx, module, d.wake)
	})
	return d
}

// deliver is a subscriber's delivery loop: the oldest queued event first, until ctx ends.
func (e *Events) deliver(ctx context.Context, module string, wake <-chan struct{}) {
	backoff := e.MinBackoff
	for ctx.Err() == nil {
		key, ev, ok := e.head(module)
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-wake:
				continue
			}
		}
		if ev.ID == "" { // unreadable: already logged
			e.remove(module, key)
			continue
		}
		err := e.send(ctx, module, ev)
		if err == nil {
			e.remove(module, key)
			backoff = e.MinBackoff
			continue
		}
		if ctx.Err() != nil {
			return
		}
		var handlerErr *runtime.CallError
		if errors.As(err, &handlerErr) {
			ev.Attempt++
			if ev.Attempt >= e.MaxAttempts {
				e.logger.Error("event dropped: the handler failed every attempt", "module", module, "topic", ev.Topic, "id", ev.ID, "attempts", ev.Attempt, "err", err)
				e.remove(module, key)
				continue
			}
			e.update(module, key, ev)
			e.logger.Warn("event handler failed; will retry", "module", module, "topic", ev.Topic, "id", ev.ID, "attempt", ev.Attempt, "err", err)
		} else {
			e.logger.Debug("subscriber unavailable; will retry", "module", module, "topic", ev.Topic, "id", ev.ID, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, e.MaxBackoff)
	}
}

func (e *Events) send(ctx context.Context, module string, ev Event) error {
	payload, _ := json.Marshal(ev)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := e.target.Call(cctx, "base", module, EventMethodPrefix+ev.Topic, payload)
	return err
}

func (e *Events) head(module string) (key []byte, ev Event, ok bool) {
	e.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(queueBucket(module))
		if q == nil {
			return nil
		}
		k, v := q.Cursor().First()
		if k == nil {
			return nil
		}
		if err := json.Unmarshal(v, &ev); err != nil {
			e.logger.Error("queued event unreadable: dropped", "module", module, "err", err)
		}
		key, ok = slices.Clone(k), true
		return nil
	})
	return key, ev, ok
}

func (e *Events) remove(module string, key []byte) {
	e.db.Update(func(tx *bolt.Tx) error {
		if q := tx.Bucket(queueBucket(module)); q != nil {
			return q.Delete(key)
		}
		return nil
	})
}

func (e *Events) update(module string, key []byte, ev Event) {
	rec, _ := json.Marshal(ev)
	e.db.Update(func(tx *bolt.Tx) error {
		if q := tx.Bucket(queueBucket(module)); q != nil && q.Get(key) != nil {
			return q.Put(key, rec)
		}
		return nil
	})
}

// Subscriptions lists the topics by subscriber module.
func (e *Events) Subscriptions() map[string][]string {
	out := map[string][]string{}
	e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(subsBucket).ForEach(func(k, v []byte) error {
			var topics []string
			json.Unmarshal(v, &topics)
			out[string(k)] = topics
			return nil
		})
	})
	return out
}
