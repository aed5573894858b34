package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kouple/kouple/agent"
)

// TestRunawayContained: with runaway's endpoints hammered (a loop forever, unbounded recursion, unbounded
// allocation), hello keeps answering, each runaway request ends with a 5xx, the base stays up, runaway serves
// /ok again afterwards, and the state records and health say what happened.
func TestRunawayContained(t *testing.T) {
	b := startBase(t, t.TempDir())
	for _, dir := range []string{"examples/hello", "examples/runaway"} {
		if env := b.command("installBiz", fmt.Sprintf(`{"bizUrl":"file://%s"}`, artifactFile(t, dir, "1.0.0"))); env.Code != "SUCCESS" {
			t.Fatalf("install %s: %s", dir, env.raw)
		}
	}
	client := &http.Client{Timeout: 60 * time.Second}
	fetch := func(path string) (int, string, error) {
		resp, err := client.Get(b.gateway + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}

	var helloOK, helloFailed atomic.Int64
	stop := make(chan struct{})
	var neighbour sync.WaitGroup
	neighbour.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, body, err := fetch("/hello/"); err == nil && code == 200 && body == "Hello from hello 1.0.0!\n" {
				helloOK.Add(1)
			} else {
				helloFailed.Add(1)
				t.Logf("hello failed while runaway ran: %d %q %v", code, body, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	var wg sync.WaitGroup
	for _, path := range []string{"/runaway/spin", "/runaway/spin", "/runaway/recurse", "/runaway/alloc"} {
		wg.Go(func() {
			code, body, err := fetch(path)
			if err != nil || code < 500 {
				t.Errorf("%s: %d %q %v, want a 5xx", path, code, body, err)
			}
			t.Logf("%s -> %d %s", path, code, strings.TrimSpace(body))
		})
	}
	wg.Wait()
	// Once more each, one at a time, so that every kind of failure meets a fresh instance.
	for _, path := range []string{"/runaway/recurse", "/runaway/alloc", "/runaway/spin"} {
		if code, body, err := fetch(path); err != nil || code < 500 {
			t.Errorf("%s alone: %d %q %v, want a 5xx", path, code, body, err)
		}
	}
	close(stop)
	neighbour.Wait()
	if helloFailed.Load() > 0 || helloOK.Load() == 0 {
		t.Errorf("hello answered %d times and failed %d times while runaway ran", helloOK.Load(), helloFailed.Load())
	}
	if code, body, err := fetch("/runaway/ok"); err != nil || code != 200 || body != "ok\n" {
		t.Errorf("runaway /ok afterwards: %d %q %v", code, body, err)
	}
	if code, body, _ := fetch("/runaway/sleep?ms=1500"); code != 200 {
		t.Errorf("sleeping past the CPU budget is waiting, not computing: %d %q", code, body)
	}

	var infos []agent.BizInfo
	json.Unmarshal(b.command("queryAllBiz", "{}").Data, &infos)
	var runaway agent.BizInfo
	for _, in := range infos {
		if in.BizName == "runaway" {
			runaway = in
		}
	}
	reasons := ""
	for _, r := range runaway.BizStateRecords {
		if r.Reason == "InstanceFailed" {
			reasons += r.Message + "\n"
		}
	}
	for _, want := range []string{"past its CPU budget of 1s", "out of memory"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("runaway's records do not say %q:\n%s", want, reasons)
		}
	}
	if runaway.BizState != "ACTIVATED" || runaway.Stats.Restarts < 4 || runaway.Stats.CPUSeconds < 2 {
		t.Errorf("runaway after the storm: state %s, stats %+v", runaway.BizState, runaway.Stats)
	}
	health := string(b.command("health", "{}").Data)
	if !strings.Contains(health, `"restarts"`) || !strings.Contains(health, "past its CPU budget") {
		t.Errorf("health does not show runaway's failures: %.500s", health)
	}
	t.Logf("hello answered %d times meanwhile; runaway: %d restarts, %.1f s CPU", helloOK.Load(), runaway.Stats.Restarts, runaway.Stats.CPUSeconds)
}
