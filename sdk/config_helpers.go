package sdk

import "context"

// Config reads a configuration key the base holds for this module (or shares with every module); it needs the
// capability "config". The module's own manifest config is simply its environment (os.Getenv).
func Config(ctx context.Context, key string) (string, bool, error) {
	var out struct {
		Value string `json:"value"`
		Found bool   `json:"found"`
	}
	err := Call(ctx, "config", "get", struct {
		Key string `json:"key"`
	}{key}, &out)
	return out.Value, out.Found, err
}
