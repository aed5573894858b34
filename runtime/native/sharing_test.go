package native_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestShopNative: examples/shop built as native modules gets the same sharing as in wasm: a call each way,
// the shared kv namespace, and the order.placed event delivered by the base.
func TestShopNative(t *testing.T) {
	inventory := mustBuild(t, "examples/shop/inventory", "1.0.0")
	orders := mustBuild(t, "examples/shop/orders", "1.0.0")
	b := newBase(t)
	for _, p := range []string{inventory, orders} {
		if err := install(t, b, p, true); err != nil {
			t.Fatal(err)
		}
	}
	gw := b.GatewayURL()
	send := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, gw+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, out := send("PUT", "/inventory/pear", "4"); code != 200 {
		t.Fatalf("PUT stock: %d %s", code, out)
	}
	code, out := send("POST", "/orders/", `{"item":"pear","qty":3}`)
	id, ok := strings.CutPrefix(out, `{"id":"`)
	if code != 201 || !ok {
		t.Fatalf("order: %d %s", code, out)
	}
	id, _, _ = strings.Cut(id, `"`)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out, `"status":"reserved"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("order %s never reserved: %s", id, out)
		}
		_, out = send("GET", "/orders/"+id, "")
	}
	if _, out := send("GET", "/inventory/pear", ""); out != "1\n" {
		t.Errorf("stock after the order: %q", out)
	}
}
