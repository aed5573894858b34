package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kouple/kouple/artifact"
)

// proc is a child process the bench started; stop kills it and waits for it.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

func startProc(ctx context.Context, name string, args, env []string) (*proc, error) {
	p := &proc{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// waitHTTP polls url until it answers 200, the process exits or timeout passes.
func (p *proc) waitHTTP(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(timeout); ; time.Sleep(2 * time.Millisecond) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %s", filepath.Base(p.cmd.Path), p.out.String())
		default:
		}
		if resp, err := client.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %s", url, timeout, p.out.String())
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 { // keep the head: enough to say why a child failed
		return len(b), nil
	}
	return s.b.Write(b)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSpace(s.b.String())
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// memory is a process's resident memory from /proc/PID/status, in bytes.
type memory struct{ RSS, Anon float64 }

func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
		switch k {
		case "VmRSS":
			m.RSS = kb * 1024
		case "RssAnon":
			m.Anon = kb * 1024
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// readCPU is the CPU time (user and system, all threads) a process has used, from /proc/PID/stat, in clock
// ticks of 10 ms (Linux's USER_HZ).
func readCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields after it start with the state (field 3).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// baseProc is a `kouple base` child process.
type baseProc struct {
	*proc
	gateway, agent string
	client         *http.Client
}

// startBase runs `kouple base` on free loopback ports with a data dir under tmp, the given compile cache and
// any further flags.
func (r *runner) startBase(ctx context.Context, cacheDir string, flags ...string) (*baseProc, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	agentAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp(r.tmp, "base-")
	if err != nil {
		return nil, err
	}
	p, err := startProc(ctx, r.cfg.Exe, append([]string{"base", "--http", httpAddr, "--agent", agentAddr, "--data-dir", dataDir,
		"--cache-dir", cacheDir, "--log-level", "warn"}, flags...), nil)
	if err != nil {
		return nil, err
	}
	b := &baseProc{proc: p, gateway: "http://" + httpAddr, agent: "http://" + agentAddr, client: &http.Client{Timeout: 5 * time.Minute}}
	r.cleanup(b.stop)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("base exited at start: %s", p.out.String())
		default:
		}
		if resp, err := http.Post(b.agent+"/health", "application/json", strings.NewReader("{}")); err == nil {
			resp.Body.Close()
			return b, nil
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("base did not answer within 60 s: %s", p.out.String())
		}
	}
}

// command posts body to the agent's path and decodes the answer's data into out, if out is not nil.
func (b *baseProc) command(path string, body, out any) error {
	data, _ := json.Marshal(body)
	resp, err := b.client.Post(b.agent+path, "application/json", bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Code, Message string
		Data          json.RawMessage
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s: %v: %s", path, err, raw)
	}
	if env.Code != "SUCCESS" {
		return fmt.Errorf("%s: %s %s", path, env.Code, raw)
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("%s: %v: %.200s", path, err, env.Data)
		}
	}
	return nil
}

func (b *baseProc) install(a *artifactFile) error {
	return b.command("/installBiz", map[string]any{"bizUrl": "file://" + a.path, "bizName": a.name, "bizVersion": a.version, "activate": true}, nil)
}

func (b *baseProc) uninstall(a *artifactFile) error {
	return b.command("/uninstallBiz", map[string]any{"bizName": a.name, "bizVersion": a.version}, nil)
}

func (b *baseProc) memory() (memory, error) { return readMemory(b.pid()) }

// settle is how long a memory sample waits after installs and uninstalls: a base returns their garbage to the
// OS once changes pause for 2 s (base.releaseMemory), and its RSS then shows what its modules hold.
const settle = 3 * time.Second

// buildInfo is how the base was built, from its health: what its native modules are built against.
func (b *baseProc) buildInfo() (*artifact.BuildInfo, error) {
	var h struct {
		HealthData struct {
			Native struct {
				Available bool                `json:"available"`
				BuildInfo *artifact.BuildInfo `json:"buildInfo"`
			} `json:"native"`
		} `json:"healthData"`
	}
	if err := b.command("/health", struct{}{}, &h); err != nil {
		return nil, err
	}
	if n := h.HealthData.Native; !n.Available || n.BuildInfo == nil {
		return nil, fmt.Errorf("the base cannot load native modules (is %s built with cgo?)", filepath.Base(b.cmd.Path))
	}
	return h.HealthData.Native.BuildInfo, nil
}

// get fetches url and fails unless it answers 200.
func get(client *http.Client, url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body, err
}
