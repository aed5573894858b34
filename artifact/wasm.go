// Package artifact recognises module artifacts by their content and reads and writes the manifest embedded in
// them. A wasm artifact is a plain WebAssembly module whose manifest travels in a custom section.
package artifact

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kouple/kouple/manifest"
)

// ManifestSection is the name of the wasm custom section that holds the module's manifest (JSON).
const ManifestSection = "kouple.manifest"

// ABIImportModule is the import module name of the Kouple host functions for this ABI version.
var ABIImportModule = fmt.Sprintf("kouple_v%d", manifest.ABIVersion)

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Kind of an artifact, recognised by content.
type Kind string

const (
	KindWasm   Kind = "wasm"
	KindPlugin Kind = "native" // an ELF shared object built with -buildmode=plugin
)

// Detect says what kind of artifact data is, or why it is none.
func Detect(data []byte) (Kind, error) {
	switch {
	case bytes.HasPrefix(data, wasmMagic):
		return KindWasm, nil
	case bytes.HasPrefix(data, []byte{0x00, 'a', 's', 'm'}):
		return "", errors.New("a WebAssembly module of an unsupported binary version (want 1)")
	case bytes.HasPrefix(data, []byte{0x7f, 'E', 'L', 'F'}):
		return KindPlugin, nil
	case len(data) == 0:
		return "", errors.New("the artifact is empty")
	}
	return "", errors.New("not a module artifact: neither a WebAssembly module nor a Go plugin (build one with `kouple build`)")
}

// Import is one entry of a wasm module's import section.
type Import struct {
	Module, Name string
	Kind         byte // 0 func, 1 table, 2 memory, 3 global
}

// WasmInfo is what Kouple reads from a wasm module without compiling it.
type WasmInfo struct {
	Manifest *manifest.Manifest
	Imports  []Import
}

// ReadWasm reads the embedded manifest and the imports of a wasm artifact and checks that it is a Kouple module
// of this ABI version.
func ReadWasm(data []byte) (*WasmInfo, error) {
	if !bytes.HasPrefix(data, wasmMagic) {
		return nil, errors.New("not a WebAssembly module (bad magic or version)")
	}
	info := &WasmInfo{}
	var manifestJSON []byte
	err := walkSections(data, func(id byte, body []byte, off int) error {
		switch id {
		case 0:
			name, rest, err := readName(body)
			if err != nil {
				return fmt.Errorf("custom section at offset %d: %w", off, err)
			}
			if name == ManifestSection {
				if manifestJSON != nil {
					return errors.New("two kouple.manifest sections")
				}
				manifestJSON = rest
			}
		case 2:
			imps, err := readImports(body)
			if err != nil {
				return fmt.Errorf("import section at offset %d: %w", off, err)
			}
			info.Imports = imps
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("malformed WebAssembly module: %w", err)
	}
	if manifestJSON == nil {
		return nil, errors.New("the WebAssembly module has no Kouple manifest: build it with `kouple build`, which embeds kouple.yaml")
	}
	m, err := manifest.FromJSON(manifestJSON)
	if err != nil {
		return nil, err
	}
	if m.ABI == 0 {
		return nil, errors.New("the embedded manifest names no ABI version: rebuild the module with `kouple build`")
	}
	info.Manifest = m
	if err := checkImports(info.Imports); err != nil {
		return nil, fmt.Errorf("module %s: %w", m.ID(), err)
	}
	return info, nil
}

// checkImports refuses modules that speak another Kouple ABI version or none.
func checkImports(imps []Import) error {
	speaks := false
	for _, imp := range imps {
		var v int
		if n, _ := fmt.Sscanf(imp.Module, "kouple_v%d", &v); n == 1 && imp.Module == fmt.Sprintf("kouple_v%d", v) {
			if v != manifest.ABIVersion {
				return fmt.Errorf("imports %s.%s: the module was built for Kouple module ABI v%d, but this base speaks v%d: rebuild it with a matching SDK", imp.Module, imp.Name, v, manifest.ABIVersion)
			}
			speaks = true
		}
	}
	if !speaks {
		return fmt.Errorf("imports nothing from %s: it was not built with the Kouple SDK (its main must call sdk.Serve)", ABIImportModule)
	}
	return nil
}

// EmbedManifest returns wasm with m in a kouple.manifest custom section, replacing any earlier one.
func EmbedManifest(wasm []byte, m *manifest.Manifest) ([]byte, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, errors.New("not a WebAssembly module")
	}
	out := make([]byte, 0, len(wasm)+1024)
	out = append(out, wasmMagic...)
	err := walkSections(wasm, func(id byte, body []byte, off int) error {
		if id == 0 {
			if name, _, err := readName(body); err == nil && name == ManifestSection {
				return nil // dropped: replaced below
			}
		}
		out = appendSection(out, id, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("malformed WebAssembly module: %w", err)
	}
	payload := appendName(nil, ManifestSection)
	payload = append(payload, m.JSON()...)
	return appendSection(out, 0, payload), nil
}

// WasmCode is what of a wasm artifact runs: the module without Kouple's own custom sections (manifest and
// signatures). Two artifacts of the same build that differ only in their manifest have the same code, and share
// its compiled form.
func WasmCode(wasm []byte) ([]byte, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, errors.New("not a WebAssembly module")
	}
	out := make([]byte, 0, len(wasm))
	out = append(out, wasmMagic...)
	err := walkSections(wasm, func(id byte, body []byte, off int) error {
		if id == 0 {
			if name, _, err := readName(body); err == nil && (name == ManifestSection || name == SignatureSection) {
				return nil
			}
		}
		out = appendSection(out, id, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("malformed WebAssembly module: %w", err)
	}
	return out, nil
}

func appendSection(out []byte, id byte, body []byte) []byte {
	out = append(out, id)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

// appendName appends a wasm name (length-prefixed bytes).
func appendName(b []byte, name string) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(b, name...)
}

// walkSections calls fn for each section of a wasm module, with its id, body and offset.
func walkSections(data []byte, fn func(id byte, body []byte, off int) error) error {
	pos := len(wasmMagic)
	for pos < len(data) {
		off := pos
		id := data[pos]
		pos++
		size, n := binary.Uvarint(data[pos:])
		if n <= 0 || size > uint64(len(data)-pos-n) {
			return fmt.Errorf("section %d at offset %d: bad size", id, off)
		}
		pos += n
		if err := fn(id, data[pos:pos+int(size)], off); err != nil {
			return err
		}
		pos += int(size)
	}
	return nil
}

func readName(b []byte) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", nil, errors.New("bad name")
	}
	return string(b[n : n+int(l)]), b[n+int(l):], nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > 0xffffffff {
		r.err = errors.New("bad integer")
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errors.New("unexpected end")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) name() string {
	if r.err != nil {
		return ""
	}
	s, rest, err := readName(r.b)
	r.b, r.err = rest, err
	return s
}

func (r *reader) limits() {
	if flags := r.byte(); flags&1 != 0 {
		r.u32()
	}
	r.u32()
}

func readImports(body []byte) ([]Import, error) {
	r := &reader{b: body}
	count := r.u32()
	if r.err == nil && uint64(count) > uint64(len(body)) {
		return nil, errors.New("bad import count")
	}
	imps := make([]Import, 0, count)
	for i := uint32(0); i < count && r.err == nil; i++ {
		imp := Import{Module: r.name(), Name: r.name(), Kind: r.byte()}
		switch imp.Kind {
		case 0: // func: type index
			r.u32()
		case 1: // table: reftype, limits
			r.byte()
			r.limits()
		case 2: // memory: limits
			r.limits()
		case 3: // global: valtype, mutability
			r.byte()
			r.byte()
		default:
			return nil, fmt.Errorf("import %d: unknown kind %d", i, imp.Kind)
		}
		imps = append(imps, imp)
	}
	if r.err != nil {
		return nil, r.err
	}
	return imps, nil
}
