package artifact

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kouple/kouple/manifest"
)

// module assembles a wasm module that imports the given module.name functions (all of type 0) and carries
// the given custom manifest payload (none if empty).
func module(manifestJSON string, imports ...string) []byte {
	b := append([]byte(nil), wasmMagic...)
	b = appendSection(b, 1, []byte{1, 0x60, 0, 0}) // one type: func() -> ()
	if len(imports) > 0 {
		body := binary.AppendUvarint(nil, uint64(len(imports)))
		for _, imp := range imports {
			mod, name, _ := strings.Cut(imp, ".")
			body = binary.AppendUvarint(body, uint64(len(mod)))
			body = append(body, mod...)
			body = binary.AppendUvarint(body, uint64(len(name)))
			body = append(body, name...)
			body = append(body, 0, 0) // func, type 0
		}
		b = appendSection(b, 2, body)
	}
	if manifestJSON != "" {
		p := binary.AppendUvarint(nil, uint64(len(ManifestSection)))
		p = append(p, ManifestSection...)
		b = appendSection(b, 0, append(p, manifestJSON...))
	}
	return b
}

const goodManifest = `{"abi":1,"name":"hello","version":"1.0.0","contextPath":"/hello"}`

func TestReadWasm(t *testing.T) {
	info, err := ReadWasm(module(goodManifest, "kouple_v1.abi_version", "wasi_snapshot_preview1.fd_write"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Manifest.ID() != "hello:1.0.0" || info.Manifest.Runtime != "wasm" || len(info.Imports) != 2 {
		t.Errorf("info = %+v %+v", info.Manifest, info.Imports)
	}
}

func TestReadWasmRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not wasm", []byte("#!/bin/sh\necho hi\n"), "not a WebAssembly module"},
		{"truncated", module(goodManifest, "kouple_v1.abi_version")[:30], "malformed WebAssembly module"},
		{"no manifest", module("", "kouple_v1.abi_version"), "has no Kouple manifest"},
		{"other ABI", module(goodManifest, "kouple_v2.abi_version"), "built for Kouple module ABI v2, but this base speaks v1"},
		{"manifest says other ABI", module(`{"abi":7,"name":"hello","version":"1.0.0","contextPath":"/hello"}`, "kouple_v1.abi_version"), "built for module ABI v7"},
		{"no SDK", module(goodManifest, "wasi_snapshot_preview1.fd_write"), "imports nothing from kouple_v1"},
		{"bad name", module(`{"abi":1,"name":"../../etc","version":"1.0.0","contextPath":"/x"}`, "kouple_v1.abi_version"), `module name "../../etc" is not valid`},
		{"bad context path", module(`{"abi":1,"name":"a","version":"1","contextPath":"/a/../b"}`, "kouple_v1.abi_version"), "contextPath"},
		{"unknown field", module(`{"abi":1,"name":"a","version":"1","contextPath":"/a","colour":"red"}`, "kouple_v1.abi_version"), `unknown field "colour"`},
		{"bad runtime", module(`{"abi":1,"name":"a","version":"1","contextPath":"/a","runtime":"jvm"}`, "kouple_v1.abi_version"), `runtime "jvm" is not known`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadWasm(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestEmbedManifestReplaces(t *testing.T) {
	m := &manifest.Manifest{ABI: 1, Name: "hello", Version: "2.0.0", ContextPath: "/hello"}
	out, err := EmbedManifest(module(goodManifest, "kouple_v1.abi_version"), m)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ReadWasm(out)
	if err != nil {
		t.Fatal(err)
	}
	if info.Manifest.Version != "2.0.0" {
		t.Errorf("version = %s, want the new manifest's 2.0.0", info.Manifest.Version)
	}
}

func TestDetect(t *testing.T) {
	if k, err := Detect(module(goodManifest)); k != KindWasm || err != nil {
		t.Errorf("wasm: %v %v", k, err)
	}
	if k, err := Detect([]byte("\x7fELF\x02\x01\x01")); k != KindPlugin || err != nil {
		t.Errorf("elf: %v %v", k, err)
	}
	for _, data := range [][]byte{nil, []byte("PK\x03\x04 a jar"), []byte("\x00asm\x02\x00\x00\x00")} {
		if _, err := Detect(data); err == nil {
			t.Errorf("Detect(%q) accepted it", data)
		}
	}
}
