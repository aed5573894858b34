// Package manifest reads, checks and writes a module's manifest: the kouple.yaml beside a module's code, which
// the build embeds into the artifact so that every artifact says what it is.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

// FileName is the manifest's name beside a module's code.
const FileName = "kouple.yaml"

// ABIVersion is the version of the module ABI (docs/abi.md) this base and SDK speak.
const ABIVersion = 1

// Runtimes a module can ask for.
const (
	RuntimeWasm   = "wasm"
	RuntimeNative = "native"
)

// Manifest describes one version of a module.
type Manifest struct {
	// ABI is the module ABI version the artifact was built for; set by the build, not by authors.
	ABI int `yaml:"abi,omitempty" json:"abi,omitempty"`
	// Name identifies the module: lower-case letters, digits and dashes, at most 63 characters.
	Name string `yaml:"name" json:"name"`
	// Version is the module's version: letters, digits, '.', '_', '+' and '-', at most 64 characters.
	Version string `yaml:"version" json:"version"`
	// ContextPath is the URL path prefix the gateway routes to this module, such as "/hello".
	ContextPath string `yaml:"contextPath" json:"contextPath"`
	// Runtime is "wasm" (sandboxed, the default) or "native" (a Go plugin).
	Runtime string `yaml:"runtime,omitempty" json:"runtime,omitempty"`
	// Priority orders installs at a base's start: lower first (Koupleless's priority, default 100).
	Priority int `yaml:"priority,omitempty" json:"priority,omitempty"`
	// Limits bound what the module may use.
	Limits Limits `yaml:"limits,omitempty" json:"limits,omitzero"`
	// Capabilities are the base services the module asks for (granted or not by the base).
	Capabilities []string `yaml:"capabilities,omitempty" json:"capabilities,omitempty"`
	// Config is the module's default configuration, seen by the module as its environment.
	Config map[string]string `yaml:"config,omitempty" json:"config,omitempty"`
	// Subscribe lists the event topics the base delivers to the module's handlers (sdk/events); each is
	// granted as the built-in capability events:TOPIC.
	Subscribe []string `yaml:"subscribe,omitempty" json:"subscribe,omitempty"`
	// Timers are schedules on which the base calls the module's timer handlers (sdk/timers).
	Timers []Timer `yaml:"timers,omitempty" json:"timers,omitempty"`
}

// Timer is one schedule of a module.
type Timer struct {
	// Name is the handler the base calls (sdk/timers.Handle).
	Name string `yaml:"name" json:"name"`
	// Schedule is a cron expression (minute hour day-of-month month day-of-week) or a descriptor such as
	// @hourly or @every 30s.
	Schedule string `yaml:"schedule" json:"schedule"`
	// CatchUp runs the timer once at start when a run was missed while the base was down.
	CatchUp bool `yaml:"catchUp,omitempty" json:"catchUp,omitempty"`
}

// Limits bound a module's resources. Zero means the base's default.
type Limits struct {
	// MemoryMB caps each instance's linear memory (wasm), in MiB.
	MemoryMB int `yaml:"memoryMB,omitempty" json:"memoryMB,omitempty"`
	// Instances is how many instances serve the module (wasm); connections are spread over them.
	Instances int `yaml:"instances,omitempty" json:"instances,omitempty"`
	// CPUBudget is how long an instance may compute without waiting before it is stopped (wasm), such as
	// "2s"; empty means the base's default.
	CPUBudget string `yaml:"cpuBudget,omitempty" json:"cpuBudget,omitempty"`
	// MaxInFlight bounds the requests and calls the module serves at once; MaxQueue bounds those waiting for
	// a turn. Past both, requests are refused with 503.
	MaxInFlight int `yaml:"maxInFlight,omitempty" json:"maxInFlight,omitempty"`
	MaxQueue    int `yaml:"maxQueue,omitempty" json:"maxQueue,omitempty"`
}

// Budget is the CPU budget, or zero for the base's default.
func (l Limits) Budget() time.Duration {
	d, _ := time.ParseDuration(l.CPUBudget)
	return d
}

// Defaults filled in by Normalize.
const (
	DefaultPriority  = 100
	DefaultMemoryMB  = 256
	DefaultInstances = 1
	DefaultInFlight  = 512
	DefaultQueue     = 1024
	MaxMemoryMB      = 4096 // wasm32 cannot address more
	MaxInstances     = 64
)

var (
	nameRE        = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	versionRE     = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$`)
	contextPathRE = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)
	configKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	capabilityRE  = regexp.MustCompile(`^[a-z][a-z0-9-]*(:[A-Za-z0-9._:*/-]+)?$`)
	topicRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// ValidName reports whether s is a valid module name, and why not.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("module name %q is not valid: use 1-63 lower-case letters, digits and dashes, starting and ending with a letter or digit", s)
	}
	return nil
}

// ValidVersion reports whether s is a valid module version, and why not.
func ValidVersion(s string) error {
	if !versionRE.MatchString(s) {
		return fmt.Errorf("module version %q is not valid: use 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit", s)
	}
	return nil
}

// Parse reads a manifest from YAML (or JSON, which is YAML), refusing unknown fields, and checks it.
func Parse(data []byte) (*Manifest, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m.Normalize()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Load reads dir/kouple.yaml.
func Load(dir string) (*Manifest, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no module manifest here: a module directory needs a %s with at least name, version and contextPath", dir, FileName)
		}
		return nil, err
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Normalize fills in defaults.
func (m *Manifest) Normalize() {
	if m.Runtime == "" {
		m.Runtime = RuntimeWasm
	}
	if m.Priority == 0 {
		m.Priority = DefaultPriority
	}
	if m.Limits.MemoryMB == 0 {
		m.Limits.MemoryMB = DefaultMemoryMB
	}
	if m.Limits.Instances == 0 {
		m.Limits.Instances = DefaultInstances
	}
	if m.Limits.MaxInFlight == 0 {
		m.Limits.MaxInFlight = DefaultInFlight
	}
	if m.Limits.MaxQueue == 0 {
		m.Limits.MaxQueue = DefaultQueue
	}
}

// Validate checks every field and reports all problems at once.
func (m *Manifest) Validate() error {
	var errs []error
	if m.Name == "" {
		errs = append(errs, errors.New("name is missing"))
	} else if err := ValidName(m.Name); err != nil {
		errs = append(errs, err)
	}
	if m.Version == "" {
		errs = append(errs, errors.New("version is missing"))
	} else if err := ValidVersion(m.Version); err != nil {
		errs = append(errs, err)
	}
	switch {
	case m.ContextPath == "":
		errs = append(errs, errors.New("contextPath is missing: give the URL prefix the module serves under, such as /"+m.Name))
	case !contextPathRE.MatchString(m.ContextPath) || strings.Contains(m.ContextPath, "/../") || strings.HasSuffix(m.ContextPath, "/..") || strings.Contains(m.ContextPath, "/./"):
		errs = append(errs, fmt.Errorf("contextPath %q is not valid: use a path such as /%s (starts with /, no trailing /, no . or .. segments)", m.ContextPath, m.Name))
	}
	if m.Runtime != RuntimeWasm && m.Runtime != RuntimeNative {
		errs = append(errs, fmt.Errorf("runtime %q is not known: use %q or %q", m.Runtime, RuntimeWasm, RuntimeNative))
	}
	if m.ABI != 0 && m.ABI != ABIVersion {
		errs = append(errs, fmt.Errorf("built for module ABI v%d, but this base speaks v%d: rebuild the module with a matching Kouple SDK", m.ABI, ABIVersion))
	}
	if m.Priority < 0 {
		errs = append(errs, fmt.Errorf("priority %d is negative", m.Priority))
	}
	if m.Limits.MemoryMB < 0 || m.Limits.MemoryMB > MaxMemoryMB {
		errs = append(errs, fmt.Errorf("limits.memoryMB %d is out of range 1-%d", m.Limits.MemoryMB, MaxMemoryMB))
	}
	if m.Limits.Instances < 0 || m.Limits.Instances > MaxInstances {
		errs = append(errs, fmt.Errorf("limits.instances %d is out of range 1-%d", m.Limits.Instances, MaxInstances))
	}
	if b := m.Limits.CPUBudget; b != "" {
		if d, err := time.ParseDuration(b); err != nil || d < 10*time.Millisecond || d > 10*time.Minute {
			errs = append(errs, fmt.Errorf("limits.cpuBudget %q is not valid: give a duration from 10ms to 10m, such as 2s", b))
		}
	}
	if m.Limits.MaxInFlight < 0 || m.Limits.MaxQueue < 0 {
		errs = append(errs, errors.New("limits.maxInFlight and limits.maxQueue cannot be negative"))
	}
	for k := range m.Config {
		if !configKeyRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("config key %q is not valid: use letters, digits and _, not starting with a digit", k))
		}
	}
	for _, c := range m.Capabilities {
		if !capabilityRE.MatchString(c) {
			errs = append(errs, fmt.Errorf("capability %q is not valid: use a service name such as kv, sql or http:example.com", c))
		}
	}
	for _, t := range m.Subscribe {
		if !topicRE.MatchString(t) {
			errs = append(errs, fmt.Errorf("subscribe: topic %q is not valid: use letters, digits, '.', '_' and '-', such as order.placed", t))
		}
	}
	seen := map[string]bool{}
	for _, t := range m.Timers {
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("timers: name %q is used twice", t.Name))
		}
		seen[t.Name] = true
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("timers: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("manifest of module %q is not valid: %w", m.Name, errors.Join(errs...))
	}
	return nil
}

// Validate checks a timer's name and schedule.
func (t Timer) Validate() error {
	if !topicRE.MatchString(t.Name) {
		return fmt.Errorf("timer name %q is not valid: use letters, digits, '.', '_' and '-'", t.Name)
	}
	if _, err := ParseSchedule(t.Schedule); err != nil {
		return fmt.Errorf("%s: %w", t.Name, err)
	}
	return nil
}

// ParseSchedule reads a timer's cron schedule: five fields (minute hour day-of-month month day-of-week) or
// a descriptor (@hourly, @daily, @every 30s, ...).
func ParseSchedule(s string) (cron.Schedule, error) {
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, fmt.Errorf("schedule %q is not valid: give five cron fields such as \"0 3 * * *\", or @hourly, @every 30s: %w", s, err)
	}
	return sched, nil
}

// ID is the module's identity, name:version.
func (m *Manifest) ID() string { return m.Name + ":" + m.Version }

// JSON encodes the manifest as embedded in artifacts.
func (m *Manifest) JSON() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // only plain types: cannot fail
	}
	return b
}

// FromJSON decodes an embedded manifest, refusing unknown fields, and checks it.
func FromJSON(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("embedded manifest: %w", err)
	}
	m.Normalize()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
