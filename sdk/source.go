package sdk

import "embed"

// Source is this SDK's own source, which `kouple new` writes beside a new module so that it builds outside
// the Kouple repository (the module proxy does not serve the SDK's path). Programs that do not refer to it do
// not carry it: the linker drops it. The copy must be the whole package, this file included: a native module
// (a Go plugin) loads only if its SDK is the very package the base was built with.
//
//go:embed go.mod *.go kv kvwire httpwire sqldriver sqlwire events timers
var Source embed.FS
