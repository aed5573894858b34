// Package timers runs a module's code on schedules its manifest declares:
//
//	timers:
//	  - name: nightly
//	    schedule: "0 3 * * *"   # cron: minute hour day-of-month month day-of-week (the base's time zone,
//	                            # or CRON_TZ=Area/City first), or @hourly, @every 30s
//	    catchUp: true           # run once at start if a run was missed while the base was down
//
// The base calls the handler registered here under the timer's name. A module can also schedule timers at
// run time (Schedule, with the capability "timers"); they are kept across upgrades and base restarts until
// cancelled or the module is uninstalled.
package timers

import (
	"context"
	"time"

	"github.com/kouple/kouple/sdk"
)

// Tick is one run of a timer.
type Tick struct {
	Name      string    `json:"name"`
	Scheduled time.Time `json:"scheduled"`         // the time the run was due
	CatchUp   bool      `json:"catchUp,omitempty"` // a run missed while the base was down
}

// MethodPrefix is how the base calls a timer's handler: the exported method "kouple.timer.NAME".
const MethodPrefix = "kouple.timer."

// Handle registers fn for the timer name. Call it from init().
func Handle(name string, fn func(context.Context, Tick) error) {
	sdk.Export(MethodPrefix+name, func(ctx context.Context, t Tick) (struct{}, error) {
		return struct{}{}, fn(ctx, t)
	})
}

type timer struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	CatchUp  bool   `json:"catchUp,omitempty"`
}

// Schedule adds or changes the timer name (its handler registered with Handle) with a cron schedule, as the
// manifest's timers: entries take it. A timer the manifest declares cannot be changed so.
func Schedule(ctx context.Context, name, schedule string, catchUp bool) error {
	return sdk.Call(ctx, "timers", "schedule", timer{name, schedule, catchUp}, nil)
}

// Cancel removes a timer added with Schedule.
func Cancel(ctx context.Context, name string) error {
	return sdk.Call(ctx, "timers", "cancel", timer{Name: name}, nil)
}
