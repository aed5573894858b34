package module

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kouple/kouple/manifest"
	"github.com/kouple/kouple/runtime"
)

// Version is one installed version of a module.
type Version struct {
	Manifest *manifest.Manifest
	Digest   string // sha256 of the artifact, hex
	Source   string // where the artifact came from, if known
	MemoryMB int    // the install's override of the manifest's limits.memoryMB (already in Manifest); 0 for none

	mu      sync.Mutex
	state   State
	records []Record
	code    runtime.Module // nil until loaded, and after it stops
	running sync.WaitGroup // requests and calls being served
	active  atomic.Int64   // the same, counted, for reports
}

// maxRecords bounds the transition history kept per version.
const maxRecords = 64

func (v *Version) set(s State, reason, msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.state = s
	v.records = append(v.records, Record{Time: time.Now().UTC(), State: s, Reason: reason, Message: msg})
	if len(v.records) > maxRecords {
		v.records = append(v.records[:0], v.records[len(v.records)-maxRecords:]...)
	}
}

// note records something that happened to the version without changing its state (an instance replaced).
func (v *Version) note(reason, msg string) {
	v.mu.Lock()
	s := v.state
	v.mu.Unlock()
	v.set(s, reason, msg)
}

// ID is name:version.
func (v *Version) ID() string { return v.Manifest.ID() }

// State is the version's current state.
func (v *Version) State() State {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.state
}

// Records are the version's state transitions, oldest first.
func (v *Version) Records() []Record {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Record(nil), v.records...)
}

// LastRecord is the latest transition.
func (v *Version) LastRecord() Record {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.records) == 0 {
		return Record{}
	}
	return v.records[len(v.records)-1]
}

// Stats reports what the version's code uses; zero when it is not running.
func (v *Version) Stats() runtime.Stats {
	v.mu.Lock()
	code := v.code
	v.mu.Unlock()
	if code == nil {
		return runtime.Stats{}
	}
	return code.Stats()
}

// ServeHTTP serves a request on this version, counted so that a switch or uninstall can let it finish.
func (v *Version) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := v.enter()
	if code == nil {
		http.Error(w, "module "+v.ID()+" stopped", http.StatusServiceUnavailable)
		return
	}
	defer v.leave()
	code.ServeHTTP(w, r)
}

func (v *Version) enter() runtime.Module {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.code == nil {
		return nil
	}
	v.running.Add(1)
	v.active.Add(1)
	return v.code
}

func (v *Version) leave() {
	v.active.Add(-1)
	v.running.Done()
}
