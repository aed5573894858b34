// Package module keeps the modules a base runs: every installed version of each module, its lifecycle state
// with a record per transition, which version is active, and the routing of requests and calls to it. It
// follows Koupleless's biz model: states UNRESOLVED, RESOLVED, ACTIVATED, DEACTIVATED, BROKEN, STOPPED;
// several versions side by side, one active; an atomic switch.
package module

import (
	"errors"
	"time"
)

// State is a module version's lifecycle state (Koupleless's BizState).
type State string

const (
	Unresolved  State = "UNRESOLVED"  // being installed: the artifact is being checked and compiled
	Resolved    State = "RESOLVED"    // compiled, not running yet
	Activated   State = "ACTIVATED"   // running and receiving the module's requests and calls
	Deactivated State = "DEACTIVATED" // running, but another version (or none) is active
	Broken      State = "BROKEN"      // failed to load or start; the record says why
	Stopped     State = "STOPPED"     // uninstalled
)

// Record is one state transition (Koupleless's BizStateRecord).
type Record struct {
	Time    time.Time
	State   State
	Reason  string
	Message string
}

// Errors an operation can fail with; each is wrapped with the module and the details.
var (
	// ErrConflict: another operation on the same module is in progress.
	ErrConflict = errors.New("another operation on this module is in progress")
	// ErrRepeat: the version is already installed (Arklet's REPEAT_BIZ).
	ErrRepeat = errors.New("this version is already installed")
	// ErrNotFound: no such module or version (Arklet's NOT_FOUND_BIZ).
	ErrNotFound = errors.New("not installed")
	// ErrIllegalState: the version is in a state that does not allow the operation (ILLEGAL_STATE_BIZ).
	ErrIllegalState = errors.New("illegal state")
	// ErrInvalid: the request or the artifact is not acceptable.
	ErrInvalid = errors.New("invalid")
)
