package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kouple/kouple/agent"
	"github.com/kouple/kouple/internal/moduletest"
)

// TestDeployCycle: start, deploy, call, deploy a second version, switch, roll back, undeploy, through the real
// binary and CLI; a restart brings the modules back.
func TestDeployCycle(t *testing.T) {
	dataDir := t.TempDir()
	b := startBase(t, dataDir)
	hello := filepath.Join(moduletest.Root(), "examples/hello")

	out := b.mustCLI("deploy", hello)
	if !strings.Contains(out, "hello "+b.gateway+"/hello/") {
		t.Errorf("deploy did not print the module's URL:\n%s", out)
	}
	if code, body := b.get("/hello/"); code != 200 || body != "Hello from hello 1.0.0!\n" {
		t.Fatalf("GET /hello/ = %d %q", code, body)
	}
	b.mustCLI("deploy", hello, "--version", "2.0.0")
	if _, body := b.get("/hello/"); body != "Hello from hello 2.0.0!\n" {
		t.Fatalf("after deploying 2.0.0: %q", body)
	}
	b.mustCLI("deploy", filepath.Join(moduletest.Root(), "examples/greeter"))
	if _, body := b.get("/greeter/"); !strings.Contains(body, "Hello from hello 2.0.0!") {
		t.Errorf("greeter: %q", body)
	}
	b.mustCLI("switch", "hello:1.0.0") // roll back
	if _, body := b.get("/hello/"); body != "Hello from hello 1.0.0!\n" {
		t.Fatalf("after rolling back: %q", body)
	}
	if out := b.mustCLI("switch", "hello:1.0.0"); !strings.Contains(out, "hello:1.0.0 is active") {
		t.Errorf("switch to the active version: %s", out)
	}
	var infos []agent.BizInfo
	if err := json.Unmarshal([]byte(b.mustCLI("status", "-o", "json")), &infos); err != nil || len(infos) != 3 {
		t.Fatalf("status: %v %+v", err, infos)
	}
	table := b.mustCLI("status")
	for _, want := range []string{"hello    1.0.0    ACTIVATED    *", "hello    2.0.0    DEACTIVATED", "greeter  1.0.0    ACTIVATED"} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q:\n%s", want, table)
		}
	}

	// SIGTERM, then a restart on the same data dir: the same modules and active versions come back.
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err := b.waitExit(30 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, b.output)
	}
	b = startBase(t, dataDir)
	if _, body := b.get("/hello/"); body != "Hello from hello 1.0.0!\n" {
		t.Errorf("after restart: %q", body)
	}
	if _, body := b.get("/greeter/"); !strings.Contains(body, "Hello from hello 1.0.0!") {
		t.Errorf("greeter after restart: %q", body)
	}

	b.mustCLI("undeploy", "hello")
	if code, body := b.get("/hello/"); code != 404 {
		t.Errorf("after undeploy: %d %q", code, body)
	}
	if code, body := b.get("/greeter/"); code != 502 || !strings.Contains(body, "module hello is not installed") {
		t.Errorf("greeter without hello: %d %q", code, body)
	}
	if out, err := b.cli("switch", "hello:1.0.0"); err == nil || !strings.Contains(out, "module hello: not installed") {
		t.Errorf("switch to an undeployed module: %v %s", err, out)
	}
}

// TestArkletCommands: the commands with the request bodies of Koupleless's documentation.
// TestNewModule: a module made by `kouple new`, outside the repository with its own copy of the SDK, deploys
// as a wasm module and, built against the running base, as a native one.
func TestNewModule(t *testing.T) {
	b := startBase(t, t.TempDir())
	work := t.TempDir()
	cmd := exec.Command(kouple(t), "new", "fresh")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kouple new: %v\n%s", err, out)
	}
	dir := filepath.Join(work, "fresh")
	b.mustCLI("deploy", dir)
	if code, body := b.get("/fresh/"); code != 200 || body != "Hello from fresh 0.1.0!\n" {
		t.Fatalf("wasm: %d %q", code, body)
	}
	so := filepath.Join(work, "fresh.so")
	b.mustCLI("build", dir, "--runtime", "native", "--base", b.agent, "--version", "0.2.0", "-o", so)
	b.mustCLI("deploy", so)
	if code, body := b.get("/fresh/"); code != 200 || body != "Hello from fresh 0.2.0!\n" {
		t.Fatalf("native: %d %q", code, body)
	}
}

// TestRecycleNative: once uninstalled native modules hold more code than --recycle-native-mb, the base drains
// and starts again in the same process, with its modules replayed and no code held.
func TestRecycleNative(t *testing.T) {
	b := startBaseWith(t, t.TempDir(), []string{"--recycle-native-mb", "1"}, nil)
	hello := filepath.Join(moduletest.Root(), "examples/hello")
	var sos []string
	for _, v := range []string{"1.0.0", "2.0.0"} {
		so := filepath.Join(t.TempDir(), "hello-"+v+".so")
		b.mustCLI("build", hello, "--runtime", "native", "--base", b.agent, "--version", v, "-o", so)
		sos = append(sos, so)
	}
	b.mustCLI("deploy", sos[0])
	b.mustCLI("deploy", sos[1])
	pid := b.cmd.Process.Pid
	b.mustCLI("undeploy", "hello:1.0.0") // 1.0.0's code stays mapped: past 1 MB, the base recycles
	var health string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-b.exited:
			t.Fatalf("the base exited instead of recycling: %v\n%s", b.exitErr, b.output)
		default:
		}
		if resp, err := http.Post(b.agent+"/health", "application/json", strings.NewReader("{}")); err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			health = string(raw)
			if strings.Contains(b.output.String(), "starting again") && strings.Contains(health, `"uninstalledPlugins":0`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recycle: health %s\n%s", health, b.output)
		}
	}
	if b.cmd.Process.Pid != pid {
		t.Errorf("pid changed")
	}
	if code, body := b.get("/hello/"); code != 200 || body != "Hello from hello 2.0.0!\n" {
		t.Errorf("after recycling: %d %q", code, body)
	}
	if !strings.Contains(health, `"loadedPlugins":1`) {
		t.Errorf("health after recycling: %s", health)
	}
}

func TestArkletCommands(t *testing.T) {
	b := startBase(t, t.TempDir())
	path := artifactFile(t, "examples/hello", "1.0.0")

	env := b.command("installBiz", fmt.Sprintf(`{"bizName":"hello","bizVersion":"1.0.0","bizUrl":"file://%s"}`, path))
	var data agent.ClientResponse
	json.Unmarshal(env.Data, &data)
	if env.Code != "SUCCESS" || data.Code != "SUCCESS" || len(data.BizInfos) != 1 || data.BizInfos[0].BizState != "ACTIVATED" || env.BaseIdentity == "" {
		t.Fatalf("installBiz: %s", env.raw)
	}
	if !strings.HasPrefix(data.BizInfos[0].WebContextPath, "/") {
		t.Errorf("webContextPath %q", data.BizInfos[0].WebContextPath)
	}
	env = b.command("installBiz", fmt.Sprintf(`{"bizName":"hello","bizVersion":"1.0.0","bizUrl":"file://%s"}`, path))
	json.Unmarshal(env.Data, &data)
	if env.Code != "FAILED" || data.Code != "REPEAT_BIZ" {
		t.Errorf("second installBiz: %s", env.raw)
	}
	env = b.command("queryAllBiz", `{}`)
	var all []struct {
		BizName, BizVersion, BizState, WebContextPath string
		BizStateRecords                               []struct {
			ChangeTime int64
			State      string
		}
	}
	json.Unmarshal(env.Data, &all)
	if env.Code != "SUCCESS" || len(all) != 1 || all[0].BizState != "ACTIVATED" || len(all[0].BizStateRecords) != 3 || all[0].BizStateRecords[0].ChangeTime < 1e12 {
		t.Errorf("queryAllBiz: %s", env.raw)
	}
	v2 := artifactFile(t, "examples/hello", "2.0.0")
	env = b.command("installBiz", fmt.Sprintf(`{"bizName":"hello","bizVersion":"2.0.0","bizUrl":"file://%s","installStrategy":"installOnly"}`, v2))
	if env.Code != "SUCCESS" {
		t.Fatalf("install 2.0.0: %s", env.raw)
	}
	if env = b.command("switchBiz", `{"bizName":"hello","bizVersion":"2.0.0"}`); env.Code != "SUCCESS" {
		t.Errorf("switchBiz: %s", env.raw)
	}
	if _, body := b.get("/hello/"); body != "Hello from hello 2.0.0!\n" {
		t.Errorf("after switchBiz: %q", body)
	}
	env = b.command("health", `{}`)
	var health struct {
		HealthData struct {
			JVM           map[string]any `json:"jvm"`
			CPU           map[string]any `json:"cpu"`
			MasterBizInfo map[string]any `json:"masterBizInfo"`
			BizListInfo   []any          `json:"bizListInfo"`
		} `json:"healthData"`
	}
	json.Unmarshal(env.Data, &health)
	if env.Code != "SUCCESS" || health.HealthData.JVM["java max metaspace"] == nil || health.HealthData.CPU["count"] == nil || len(health.HealthData.BizListInfo) != 2 {
		t.Errorf("health: %s", env.raw)
	}
	env = b.command("help", ``)
	if env.Code != "SUCCESS" || !strings.Contains(string(env.Data), `"installBiz"`) {
		t.Errorf("help: %s", env.raw)
	}
	// Asynchronous uninstall, followed with queryBizOps.
	env = b.command("uninstallBiz", `{"bizName":"hello","bizVersion":"1.0.0","async":true,"requestId":"req-1"}`)
	if env.Code != "SUCCESS" || !strings.Contains(string(env.Data), `"requestId":"req-1"`) {
		t.Fatalf("async uninstallBiz: %s", env.raw)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		env = b.command("queryBizOps", `{"requestId":"req-1"}`)
		if strings.Contains(string(env.Data), `"status":"SUCCEEDED"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queryBizOps: %s", env.raw)
		}
	}
	env = b.command("uninstallBiz", `{"bizName":"hello","bizVersion":"2.0.0"}`)
	if env.Code != "SUCCESS" {
		t.Errorf("uninstallBiz: %s", env.raw)
	}
	env = b.command("batchInstallBiz", fmt.Sprintf(`{"bizList":[{"bizUrl":"file://%s"},{"bizUrl":"file://%s"}]}`, path, artifactFile(t, "examples/notes", "1.0.0")))
	if env.Code != "SUCCESS" || strings.Count(string(env.Data), `"code":"SUCCESS"`) != 3 {
		t.Errorf("batchInstallBiz: %s", env.raw)
	}
	if env = b.command("noSuchCommand", `{}`); env.Code != "CMD_NOT_FOUND" || env.status != 200 {
		t.Errorf("unknown command: %d %s", env.status, env.raw)
	}
}

// TestBadRequests: each bad request gets the right code and a clear message, and changes nothing.
func TestBadRequests(t *testing.T) {
	b := startBase(t, t.TempDir())
	path := artifactFile(t, "examples/hello", "1.0.0")
	b.command("installBiz", fmt.Sprintf(`{"bizUrl":"file://%s"}`, path))
	garbage := filepath.Join(t.TempDir(), "garbage.wasm")
	os.WriteFile(garbage, []byte("not a module at all"), 0o644)

	for _, tc := range []struct{ name, cmd, body, code, want string }{
		{"missing bizUrl", "installBiz", `{"bizName":"hello"}`, "FAILED", "bizUrl is missing"},
		{"bad scheme", "installBiz", `{"bizUrl":"ftp://x/y.wasm"}`, "FAILED", `scheme "ftp" is not supported`},
		{"missing file", "installBiz", `{"bizUrl":"file:///nonexistent/m.wasm"}`, "FAILED", "no such file"},
		{"not a module", "installBiz", fmt.Sprintf(`{"bizUrl":"file://%s"}`, garbage), "FAILED", "not a module artifact"},
		{"digest mismatch", "installBiz", fmt.Sprintf(`{"bizUrl":"file://%s#sha256=%s"}`, path, strings.Repeat("ab", 32)), "FAILED", "digest mismatch"},
		{"name mismatch", "installBiz", fmt.Sprintf(`{"bizName":"other","bizVersion":"1.0.0","bizUrl":"file://%s"}`, path), "FAILED", "the request names other:1.0.0 but the artifact is hello:1.0.0"},
		{"bad strategy", "installBiz", fmt.Sprintf(`{"bizUrl":"file://%s","installStrategy":"yolo"}`, path), "FAILED", `installStrategy "yolo" is not known`},
		{"async without id", "installBiz", fmt.Sprintf(`{"bizUrl":"file://%s","async":true}`, path), "FAILED", "needs a requestId"},
		{"unknown module", "uninstallBiz", `{"bizName":"nope","bizVersion":"1.0.0"}`, "FAILED", "module nope: not installed"},
		{"unknown version", "switchBiz", `{"bizName":"hello","bizVersion":"9.9.9"}`, "FAILED", "installed versions are [1.0.0 (ACTIVATED)]"},
		{"missing name", "switchBiz", `{"bizVersion":"1.0.0"}`, "FAILED", "bizName is missing"},
		{"not JSON", "installBiz", `{"bizUrl":`, "FAILED", "not valid JSON"},
		{"unknown op", "queryBizOps", `{"requestId":"never"}`, "FAILED", `no operation with requestId "never"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := b.command(tc.cmd, tc.body)
			if env.Code != tc.code || !strings.Contains(env.Message, tc.want) {
				t.Errorf("%s %s:\n got %s\nwant code %s and a message with %q", tc.cmd, tc.body, env.raw, tc.code, tc.want)
			}
		})
	}
	// A data code that says exactly what failed.
	env := b.command("uninstallBiz", `{"bizName":"nope","bizVersion":"1.0.0"}`)
	if !strings.Contains(string(env.Data), `"code":"NOT_FOUND_BIZ"`) {
		t.Errorf("unknown module's data code: %s", env.raw)
	}
	// A huge body is refused before it is read whole.
	resp, err := http.Post(b.agent+"/installBiz", "application/json", strings.NewReader(`{"bizUrl":"`+strings.Repeat("x", 2<<20)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %s", resp.Status)
	}
	resp, _ = http.Get(b.agent + "/queryAllBiz")
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %s", resp.Status)
	}
	// Two operations on one module at once: one wins, the other is told of the conflict.
	v2, v3 := artifactFile(t, "examples/hello", "2.0.0"), artifactFile(t, "examples/hello", "3.0.0")
	conflicts := 0
	for attempt := 0; attempt < 5 && conflicts == 0; attempt++ {
		var wg sync.WaitGroup
		envs := make([]envelope, 2)
		for i, p := range []string{v2, v3} {
			wg.Go(func() {
				envs[i] = b.command("installBiz", fmt.Sprintf(`{"bizUrl":"file://%s","replace":true}`, p))
			})
		}
		wg.Wait()
		for _, e := range envs {
			if strings.Contains(e.Message, "another operation on this module is in progress") {
				conflicts++
			} else if e.Code != "SUCCESS" {
				t.Errorf("concurrent install: %s", e.raw)
			}
		}
	}
	if conflicts == 0 {
		t.Error("two installs of one module at once never conflicted")
	}
	// Nothing was disturbed.
	if code, body := b.get("/hello/"); code != 200 || body != "Hello from hello 1.0.0!\n" {
		t.Errorf("hello after the bad requests: %d %q", code, body)
	}
}

// TestSigtermDrains: a request in flight at SIGTERM completes; the base exits cleanly.
func TestSigtermDrains(t *testing.T) {
	b := startBase(t, t.TempDir())
	b.command("installBiz", fmt.Sprintf(`{"bizUrl":"file://%s"}`, artifactFile(t, "examples/hello", "1.0.0")))
	done := make(chan string)
	go func() {
		resp, err := http.Get(b.gateway + "/hello/wait?ms=1500")
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, 100)
		n, _ := resp.Body.Read(buf)
		done <- fmt.Sprintf("%d %s", resp.StatusCode, buf[:n])
	}()
	time.Sleep(300 * time.Millisecond) // let the request reach the module
	b.cmd.Process.Signal(syscall.SIGTERM)
	if got := <-done; got != "200 waited 1500 ms\n" {
		t.Errorf("request in flight at SIGTERM: %q", got)
	}
	if err := b.waitExit(30 * time.Second); err != nil {
		t.Errorf("exit: %v\n%s", err, b.output)
	}
}

// TestStartRefusals: a port in use and a data dir in use are clear errors, at once.
func TestStartRefusals(t *testing.T) {
	dataDir := t.TempDir()
	b := startBase(t, dataDir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http", b.httpAddr, "--agent", freeAddr(t), "--data-dir", t.TempDir()}, "gateway address " + b.httpAddr + " is in use"},
		{[]string{"--http", freeAddr(t), "--agent", freeAddr(t), "--data-dir", dataDir}, "the data dir is in use by another base process"},
	} {
		cmd := execKouple(t, append([]string{"base"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("kouple base %v: %v\n%s\nwant %q", tc.args, err, out, tc.want)
		}
	}
}
