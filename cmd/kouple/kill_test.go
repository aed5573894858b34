package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// modState is what a base should run: per module, its versions and the active one.
type modState map[string]struct {
	versions []string // sorted
	active   string
}

func (s modState) clone() modState {
	c := modState{}
	for k, v := range s {
		v.versions = slices.Clone(v.versions)
		c[k] = v
	}
	return c
}

func (s modState) String() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, fmt.Sprintf("%s%v*%s", name, s[name].versions, s[name].active))
	}
	return strings.Join(parts, " ")
}

// op is one agent command and what it does to the state when it takes effect.
type op struct {
	cmd, body string
	apply     func(modState)
}

// TestKillAnywhere kills the base with SIGKILL at 20 points of installs, switches and uninstalls (named crash
// points, chosen by a seeded random generator; some hit while the base restores its modules at start) and
// restarts it each time: it must come back with exactly what it had acknowledged, the interrupted operation
// complete or absent, and every module serving.
func TestKillAnywhere(t *testing.T) {
	seed := uint64(20261126)
	if s, err := strconv.ParseUint(os.Getenv("KOUPLE_TEST_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (set KOUPLE_TEST_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	points := []string{"install.fetched", "install.stored", "install.before-load", "install.started", "install.activated", "install.journaled", "switch.swapped", "switch.journaled", "uninstall.journaled"}
	artifacts := map[string]string{}
	for _, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		artifacts["hello:"+v] = artifactFile(t, "examples/hello", v)
	}
	artifacts["notes:1.0.0"] = artifactFile(t, "examples/notes", "1.0.0")

	dataDir := t.TempDir()
	model := modState{}
	var pending *op
	for round := 0; round < 20; round++ {
		// Every point, twice or more; a third of the time at the first pass, which may be while the base restores
		// its modules, else past the restore, during the operations.
		point := points[round%len(points)]
		nth := 1 + rng.IntN(2)
		if rng.IntN(3) > 0 {
			nth += restoreHits(point, model)
		}
		point = fmt.Sprintf("%s#%d", point, nth)
		b, up := startBaseMaybe(t, dataDir, "KOUPLE_CRASH_AT="+point)
		if !up {
			t.Logf("round %d: killed at %s while restoring", round, point)
			continue // killed while restoring: the next start must still see the model
		}
		model = verifyState(t, b, model, pending, round)
		pending = nil
		died := false
		for n := 0; n < 12 && !died; n++ {
			o := randomOp(rng, model, artifacts, strings.TrimSuffix(strings.Split(point, ".")[0], "Biz"))
			resp, err := http.Post(b.agent+"/"+o.cmd, "application/json", strings.NewReader(o.body))
			if err != nil {
				pending, died = &o, true // no answer: the base died during the operation
				break
			}
			var env envelope
			json.NewDecoder(resp.Body).Decode(&env)
			resp.Body.Close()
			if env.Code == "SUCCESS" {
				o.apply(model)
			} else {
				t.Fatalf("round %d: %s %s failed: %s", round, o.cmd, o.body, env.Message)
			}
		}
		if !died {
			b.cmd.Process.Signal(syscall.SIGKILL)
		}
		b.waitExit(30 * time.Second)
		t.Logf("round %d: killed at %s; acknowledged %s; interrupted %v", round, point, model, pending != nil)
	}
	b, _ := startBaseMaybe(t, dataDir)
	verifyState(t, b, model, pending, 20)
}

// restoreHits is how often a base passes a crash point while it restores state s at start.
func restoreHits(point string, s modState) int {
	n := 0
	for _, m := range s {
		switch point {
		case "install.before-load", "install.started", "install.activated", "install.journaled":
			n += len(m.versions)
		case "switch.swapped", "switch.journaled":
			if m.active != "" {
				n++
			}
		}
	}
	return n
}

// randomOp picks an operation that is valid for the acknowledged state, half of the time of the kind prefer
// (install, switch or uninstall).
func randomOp(rng *rand.Rand, s modState, artifacts map[string]string, prefer string) op {
	ids := slices.Sorted(maps.Keys(artifacts))
	kinds := map[string]int{"install": 0, "switch": 1, "uninstall": 2}
	for {
		kind := rng.IntN(3)
		if k, ok := kinds[prefer]; ok && rng.IntN(2) == 0 {
			kind = k
		}
		switch kind {
		case 0: // install a version that is not installed
			id := ids[rng.IntN(len(ids))]
			name, version, _ := strings.Cut(id, ":")
			if slices.Contains(s[name].versions, version) {
				continue
			}
			return op{"installBiz", fmt.Sprintf(`{"bizUrl":"file://%s"}`, artifacts[id]), func(s modState) {
				m := s[name]
				m.versions = append(m.versions, version)
				slices.Sort(m.versions)
				if m.active == "" {
					m.active = version
				}
				s[name] = m
			}}
		case 1: // switch to an installed version
			name, version, ok := pick(rng, s)
			if !ok {
				continue
			}
			return op{"switchBiz", fmt.Sprintf(`{"bizName":%q,"bizVersion":%q}`, name, version), func(s modState) {
				m := s[name]
				m.active = version
				s[name] = m
			}}
		case 2: // uninstall an installed version
			name, version, ok := pick(rng, s)
			if !ok {
				continue
			}
			return op{"uninstallBiz", fmt.Sprintf(`{"bizName":%q,"bizVersion":%q}`, name, version), func(s modState) {
				m := s[name]
				m.versions = slices.DeleteFunc(m.versions, func(v string) bool { return v == version })
				if m.active == version {
					m.active = ""
				}
				if len(m.versions) == 0 {
					delete(s, name)
				} else {
					s[name] = m
				}
			}}
		}
	}
}

func pick(rng *rand.Rand, s modState) (string, string, bool) {
	if len(s) == 0 {
		return "", "", false
	}
	names := slices.Sorted(maps.Keys(s))
	name := names[rng.IntN(len(names))]
	vs := s[name].versions
	return name, vs[rng.IntN(len(vs))], true
}

// verifyState checks that the base runs the acknowledged state, or that state with the interrupted operation
// applied, and that every version is running and every active one serves. It returns the state found.
func verifyState(t *testing.T, b *baseProc, model modState, pending *op, round int) modState {
	t.Helper()
	env := b.command("queryAllBiz", "{}")
	var infos []struct {
		BizName, BizVersion, BizState string
		Active                        bool
	}
	json.Unmarshal(env.Data, &infos)
	actual := modState{}
	for _, in := range infos {
		if in.BizState != "ACTIVATED" && in.BizState != "DEACTIVATED" {
			t.Errorf("round %d: %s:%s is %s after restart", round, in.BizName, in.BizVersion, in.BizState)
		}
		m := actual[in.BizName]
		m.versions = append(m.versions, in.BizVersion)
		slices.Sort(m.versions)
		if in.Active {
			m.active = in.BizVersion
		}
		actual[in.BizName] = m
	}
	want := []modState{model}
	if pending != nil {
		applied := model.clone()
		pending.apply(applied)
		want = append(want, applied)
	}
	if !slices.ContainsFunc(want, func(s modState) bool { return s.String() == actual.String() }) {
		t.Fatalf("round %d: after restart the base runs %s; acknowledged %s (interrupted: %v)\n%s", round, actual, model, pending, b.output)
	}
	for name, m := range actual {
		if m.active == "" {
			continue
		}
		code, body := b.get("/" + name + "/")
		if name == "hello" && (code != 200 || body != "Hello from hello "+m.active+"!\n") {
			t.Errorf("round %d: GET /hello/ = %d %q, want version %s", round, code, body, m.active)
		}
		if name == "notes" {
			if code, _ := b.get("/notes/healthz"); code != 200 {
				t.Errorf("round %d: notes answers %d", round, code)
			}
		}
	}
	return actual
}

// startBaseMaybe starts a base that may be killed by a crash point before it serves.
func startBaseMaybe(t *testing.T, dataDir string, env ...string) (*baseProc, bool) {
	p := &baseProc{t: t, dataDir: dataDir, httpAddr: freeAddr(t), agtAddr: freeAddr(t), output: &syncBuffer{}, exited: make(chan struct{})}
	p.gateway, p.agent = "http://"+p.httpAddr, "http://"+p.agtAddr
	p.cmd = execKouple(t, "base", "--http", p.httpAddr, "--agent", p.agtAddr, "--data-dir", dataDir, "--cache-dir", cacheDir())
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.exited:
			return p, false
		default:
		}
		if resp, err := http.Post(p.agent+"/help", "application/json", nil); err == nil {
			resp.Body.Close()
			return p, true
		}
	}
	t.Fatalf("base did not answer within 60 s\n%s", p.output)
	return nil, false
}
