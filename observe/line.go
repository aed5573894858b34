package observe

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Line is a record as one line of text without its time: LEVEL module@version [request] message k=v ...
// trace=ID. `kouple logs` prints it after the time; `kubectl logs` on a module pod prints it as is.
func (r Record) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s ", r.Level)
	if r.Module == "" {
		b.WriteString("base")
	} else {
		b.WriteString(r.Module + "@" + r.Version)
	}
	if r.RequestID != "" {
		b.WriteString(" [" + r.RequestID + "]")
	}
	b.WriteString(" " + r.Message)
	for _, k := range slices.Sorted(maps.Keys(r.Attrs)) {
		fmt.Fprintf(&b, " %s=%s", k, formatValue(r.Attrs[k]))
	}
	if r.TraceID != "" {
		b.WriteString(" trace=" + r.TraceID)
	}
	return b.String()
}

func formatValue(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		s = string(raw)
	}
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
