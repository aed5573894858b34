package manifest

import "testing"

// FuzzParse: no input makes the parser panic, and whatever it accepts is valid and survives a JSON round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte("name: hello\nversion: 1.0.0\ncontextPath: /hello\n"))
	f.Add([]byte("name: a\nversion: 1\ncontextPath: /a\nlimits: {memoryMB: 64, cpuBudget: 1s}\nconfig: {K: v}\n"))
	f.Add([]byte("{\"name\":\"x\",\"version\":\"1\",\"contextPath\":\"/x\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid manifest: %v", err)
		}
		back, err := FromJSON(m.JSON())
		if err != nil || back.ID() != m.ID() || back.ContextPath != m.ContextPath {
			t.Fatalf("JSON round trip: %+v -> %+v, %v", m, back, err)
		}
	})
}
