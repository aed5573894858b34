package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kouple/kouple/internal/moduletest"
)

// TestShop: examples/shop on a plain `kouple base`: orders asks inventory (a call), keeps the order in the kv
// namespace both name, publishes order.placed; inventory reserves the stock and calls orders back. An order
// placed while inventory is being redeployed is still reserved, by one version or the other (the delivery to a
// module with no active version is tested deterministically in base.TestEventsAcrossSwitch).
func TestShop(t *testing.T) {
	b := startBase(t, t.TempDir())
	shop := filepath.Join(moduletest.Root(), "examples/shop")
	b.mustCLI("deploy", filepath.Join(shop, "inventory"))
	b.mustCLI("deploy", filepath.Join(shop, "orders"))
	send := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, b.gateway+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, body := send("PUT", "/inventory/apple", "10"); code != 200 {
		t.Fatalf("PUT stock: %d %s", code, body)
	}
	order := func(body string) string {
		t.Helper()
		code, out := send("POST", "/orders/", body)
		var o struct{ ID, Status string }
		if code != 201 || json.Unmarshal([]byte(out), &o) != nil || o.Status != "placed" {
			t.Fatalf("POST /orders/ %s = %d %s", body, code, out)
		}
		return o.ID
	}
	reserved := func(id string) {
		t.Helper()
		var out string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, out = b.get("/orders/" + id); strings.Contains(out, `"status":"reserved"`) {
				return
			}
		}
		t.Fatalf("order %s never reserved: %s", id, out)
	}
	reserved(order(`{"item":"apple","qty":3}`))
	if _, out := b.get("/inventory/apple"); out != "7\n" {
		t.Errorf("stock after one order of 3: %q", out)
	}
	if code, out := send("POST", "/orders/", `{"item":"apple","qty":8}`); code != 409 || !strings.Contains(out, "only 7 apple in stock") {
		t.Errorf("order beyond the stock: %d %s", code, out)
	}

	// Redeploy inventory while an order is placed: whichever version gets the event, nothing is lost.
	done := make(chan string)
	go func() { done <- b.mustCLI("deploy", filepath.Join(shop, "inventory"), "--version", "2.0.0") }()
	id := order(`{"item":"apple","qty":2}`)
	<-done
	reserved(id)
	if _, out := b.get("/inventory/apple"); out != "5\n" {
		t.Errorf("stock after the upgrade and a second order of 2: %q", out)
	}
}
