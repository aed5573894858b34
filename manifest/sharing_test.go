package manifest

import (
	"strings"
	"testing"
)

// TestSubscribeAndTimers: topics and timer schedules are checked at parse, with what to write instead.
func TestSubscribeAndTimers(t *testing.T) {
	const head = "name: a\nversion: 1\ncontextPath: /a\n"
	m, err := Parse([]byte(head + "subscribe: [order.placed]\ntimers:\n  - {name: nightly, schedule: \"0 3 * * *\", catchUp: true}\n  - {name: often, schedule: \"@every 30s\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Timers) != 2 || !m.Timers[0].CatchUp || m.Subscribe[0] != "order.placed" {
		t.Errorf("parsed %+v", m)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"subscribe: [\"a b\"]\n", `topic "a b" is not valid`},
		{"timers: [{name: x, schedule: \"61 * * * *\"}]\n", `timers: x: schedule "61 * * * *" is not valid`},
		{"timers: [{name: x, schedule: \"@daily\"}, {name: x, schedule: \"@hourly\"}]\n", `timers: name "x" is used twice`},
		{"timers: [{name: \"a b\", schedule: \"@daily\"}]\n", `timer name "a b" is not valid`},
	} {
		if _, err := Parse([]byte(head + tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
