package sdk

import "embed"

// Source is this SDK's own source, which `kouple new` writes beside a new module so that it builds outside
// the Kouple repository (the module proxy does not serve the SDK's path). Programs that do not refer to it do
// not carry it: the linker drops it.
//
//go:embed go.mod sdk.go export.go call.go call_wasip1.go call_native.go serve_wasip1.go serve_native.go trace.go config_helpers.go module.go outbound.go outbound_wasip1.go outbound_native.go kv sqldriver sqlwire events timers
var Source embed.FS
