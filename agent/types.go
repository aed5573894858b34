package agent

import (
	"github.com/kouple/kouple/module"
)

// Response codes of the envelope and of install answers (Arklet's).
const (
	CodeSuccess      = "SUCCESS"
	CodeFailed       = "FAILED"
	CodeNotFound     = "CMD_NOT_FOUND"
	CodeInternal     = "CMD_PROCESS_INTERNAL_ERROR"
	CodeRepeatBiz    = "REPEAT_BIZ"
	CodeNotFoundBiz  = "NOT_FOUND_BIZ"
	CodeIllegalState = "ILLEGAL_STATE_BIZ"
)

// Envelope wraps every answer, always with HTTP 200 (Arklet's Output).
type Envelope struct {
	Code            string `json:"code"`
	Message         string `json:"message,omitempty"`
	Data            any    `json:"data,omitempty"`
	ErrorStackTrace string `json:"errorStackTrace,omitempty"`
	BaseIdentity    string `json:"baseIdentity,omitempty"`
}

// InstallRequest is installBiz's body.
type InstallRequest struct {
	BizURL          string            `json:"bizUrl"`
	BizName         string            `json:"bizName,omitempty"`
	BizVersion      string            `json:"bizVersion,omitempty"`
	Args            []string          `json:"args,omitempty"`
	Envs            map[string]string `json:"envs,omitempty"`
	InstallStrategy string            `json:"installStrategy,omitempty"` // installOnly (default) | uninstallThenInstall
	Async           bool              `json:"async,omitempty"`
	RequestID       string            `json:"requestId,omitempty"`
	// Kouple's extras.
	Sha256   string `json:"sha256,omitempty"`   // pinned digest, as an alternative to #sha256= on the URL
	Activate bool   `json:"activate,omitempty"` // make the new version active at once
	Replace  bool   `json:"replace,omitempty"`  // reinstall a version that is already installed
	// Limits override the manifest's: limits.memoryMB (kouple-controller sends a pod's resources.limits.memory).
	Limits *InstallLimits `json:"limits,omitempty"`
}

// InstallLimits are the limits an install may set over the artifact's manifest; zero keeps the manifest's.
type InstallLimits struct {
	MemoryMB int `json:"memoryMB,omitempty"`
}

// Install strategies.
const (
	StrategyInstallOnly          = "installOnly"
	StrategyUninstallThenInstall = "uninstallThenInstall"
)

// BizRequest names a module version (uninstallBiz, switchBiz).
type BizRequest struct {
	BizName    string `json:"bizName"`
	BizVersion string `json:"bizVersion"`
	RequestID  string `json:"requestId,omitempty"`
	Async      bool   `json:"async,omitempty"`
}

// ClientResponse is the data of install, uninstall and switch answers.
type ClientResponse struct {
	Code         string    `json:"code"`
	Message      string    `json:"message"`
	BizInfos     []BizInfo `json:"bizInfos,omitempty"`
	ElapsedSpace int64     `json:"elapsedSpace"`
}

// BizInfo describes one module version (Arklet's, plus Kouple's extras).
type BizInfo struct {
	BizName         string        `json:"bizName"`
	BizVersion      string        `json:"bizVersion"`
	BizState        string        `json:"bizState"`
	MainClass       string        `json:"mainClass"`
	WebContextPath  string        `json:"webContextPath"`
	Priority        int           `json:"priority"`
	BizStateRecords []StateRecord `json:"bizStateRecords"`
	// Kouple's extras.
	// Requested are the capabilities the module's manifest asks for; Granted those this base gave it. The
	// sandbox grants nothing else: no file system, no sockets, no environment beyond the module's config.
	Requested []string `json:"requested"`
	Granted   []string `json:"granted"`
	Active    bool     `json:"active"`
	Runtime   string   `json:"runtime"`
	// MemoryMB is the cap on each instance's memory in effect (wasm): the manifest's or the install's.
	MemoryMB int    `json:"memoryMB,omitempty"`
	Digest   string `json:"digest,omitempty"`
	Source   string `json:"source,omitempty"`
	Stats    Stats  `json:"stats"`
}

// StateRecord is one transition; changeTime is Unix milliseconds, as Arklet sends it.
type StateRecord struct {
	ChangeTime int64  `json:"changeTime"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	Message    string `json:"message"`
}

// Stats are a version's live numbers.
type Stats struct {
	Instances   int     `json:"instances"`
	MemoryBytes uint64  `json:"memoryBytes"`
	InFlight    int64   `json:"inFlight"`
	Requests    uint64  `json:"requests"`
	Errors      uint64  `json:"errors"`
	Restarts    int     `json:"restarts"`
	Refused     uint64  `json:"refused"`
	CPUSeconds  float64 `json:"cpuSeconds"`
	LastFailure string  `json:"lastFailure,omitempty"`
}

// NewBizInfo describes v, with the capabilities its base granted.
func NewBizInfo(v *module.Version, active bool, granted []string) BizInfo {
	info := BizInfo{
		BizName:        v.Manifest.Name,
		BizVersion:     v.Manifest.Version,
		BizState:       string(v.State()),
		WebContextPath: v.Manifest.ContextPath,
		Priority:       v.Manifest.Priority,
		Active:         active,
		Requested:      append([]string{}, v.Manifest.Capabilities...),
		Granted:        granted,
		Runtime:        v.Manifest.Runtime,
		MemoryMB:       v.Manifest.Limits.MemoryMB,
		Digest:         v.Digest,
		Source:         v.Source,
	}
	for _, r := range v.Records() {
		info.BizStateRecords = append(info.BizStateRecords, StateRecord{ChangeTime: r.Time.UnixMilli(), State: string(r.State), Reason: r.Reason, Message: r.Message})
	}
	s := v.Stats()
	info.Stats = Stats{Instances: s.Instances, MemoryBytes: s.MemoryBytes, InFlight: s.InFlight, Requests: s.Requests, Errors: s.Errors, Restarts: s.Restarts, Refused: s.Refused, CPUSeconds: s.CPUSeconds, LastFailure: s.LastFailure}
	return info
}

// ProcessRecord is an operation's progress (queryBizOps).
type ProcessRecord struct {
	RequestID   string         `json:"requestId"`
	ArkBizMeta  map[string]any `json:"arkBizMeta"`
	Status      string         `json:"status"` // INITIALIZED | EXECUTING | SUCCEEDED | FAILED
	StartTime   int64          `json:"startTime"`
	EndTime     int64          `json:"endTime,omitempty"`
	ElapsedTime int64          `json:"elapsedTime"`
	Result      any            `json:"result,omitempty"`
}
