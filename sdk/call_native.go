//go:build !wasip1

package sdk

import (
	"context"
	"fmt"
)

// CallRaw is Call with the payloads as bytes, not encoded.
func CallRaw(ctx context.Context, target, method string, payload []byte) ([]byte, error) {
	return nil, fmt.Errorf("call %s.%s: this program runs standalone, outside a Kouple base, and no address is configured for %q", target, method, target)
}
