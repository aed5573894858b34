package guard

import (
	"bytes"
	"fmt"
	"math"
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

var sectionNames = [...]string{"custom", "type", "import", "function", "table",
	"memory", "global", "export", "start", "element", "code", "data", "data count", "tag"}

// sectionOrder gives the position each non-custom section must have
// (the tag and data count sections sit out of id order).
var sectionOrder = [...]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secTag: 6, secGlobal: 7, secExport: 8, secStart: 9, secElement: 10,
	secDataCount: 11, secCode: 12, secData: 13,
}

const (
	kindFunc   = 0x00
	kindTable  = 0x01
	kindMemory = 0x02
	kindGlobal = 0x03
	kindTag    = 0x04

	valI64      = 0x7e
	funcTypeTag = 0x60
)

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

type section struct {
	id   byte
	off  int    // offset of the contents in the input module
	data []byte // the contents
}

// module is what the first pass learns about the input.
type module struct {
	sections []section
	present  [secTag + 1]bool

	numTypes         uint32
	yieldType        uint32 // index of a () -> i64 type
	haveYieldType    bool
	numImportedFuncs uint32 // also the yield function's new index
	numFuncs         uint32 // imported plus defined, before instrumenting
	numGlobals       uint32 // imported plus defined; also the fuel global's index

	check []byte // the check-point instruction sequence
}

func sectionName(id byte) string {
	if int(id) < len(sectionNames) {
		return sectionNames[id]
	}
	return fmt.Sprintf("unknown (id %d)", id)
}

func (m *module) reader(s section) *reader {
	name := sectionName(s.id)
	if s.id == secCustom {
		r := &reader{buf: s.data, base: s.off, section: "custom"}
		if n, err := r.name(); err == nil {
			name = fmt.Sprintf("custom %q", n)
		}
	}
	return &reader{buf: s.data, base: s.off, section: name}
}

// scan splits the module into sections and reads the counts and indices
// instrumenting needs.
func scan(wasm []byte) (*module, error) {
	r := &reader{buf: wasm, section: "header"}
	if h, err := r.bytes(len(header)); err != nil || !bytes.Equal(h, header) {
		r.pos = 0
		return nil, r.errf("not a WebAssembly 1.0 binary module (bad magic or version)")
	}
	m := &module{}
	last := 0
	for !r.done() {
		r.section = "module"
		start := r.pos
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		r.section = sectionName(id)
		data, err := r.bytes(int(size))
		if err != nil {
			return nil, err
		}
		if id > secTag {
			r.pos = start
			return nil, r.errf("unknown section id %d", id)
		}
		if id != secCustom {
			if m.present[id] || sectionOrder[id] < last {
				r.pos = start
				return nil, r.errf("section out of order or repeated")
			}
			m.present[id] = true
			last = sectionOrder[id]
		}
		if id == secTag {
			r.pos = start
			return nil, r.errf("exception handling (tags) is not supported")
		}
		m.sections = append(m.sections, section{id: id, off: r.pos - len(data), data: data})
	}
	for _, s := range m.sections {
		var err error
		switch s.id {
		case secType:
			err = m.scanTypes(m.reader(s))
		case secImport:
			err = m.scanImports(m.reader(s))
		case secFunction:
			err = m.scanFunctions(m.reader(s))
		case secGlobal:
			err = m.scanGlobals(m.reader(s))
		case secExport:
			err = m.scanExports(m.reader(s))
		}
		if err != nil {
			return nil, err
		}
	}
	if !m.haveYieldType {
		m.yieldType = m.numTypes
	}
	if m.numFuncs == math.MaxUint32 || m.numTypes == math.MaxUint32 || m.numGlobals == math.MaxUint32 {
		return nil, &Error{Section: "module", Msg: "too many functions, types or globals to add one"}
	}
	m.check = m.checkCode()
	return m, nil
}

func (m *module) scanTypes(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := range n {
		start := r.pos
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != funcTypeTag {
			r.pos = start
			return r.errf("unsupported type form %#02x (only function types are supported)", form)
		}
		if err := r.skipVecOf(r.valType); err != nil {
			return err
		}
		if err := r.skipVecOf(r.valType); err != nil {
			return err
		}
		if !m.haveYieldType && bytes.Equal(r.buf[start:r.pos], []byte{funcTypeTag, 0, 1, valI64}) {
			m.yieldType, m.haveYieldType = uint32(i), true
		}
	}
	m.numTypes = uint32(n)
	return r.end()
}

func (r *reader) valType() error {
	_, err := r.sleb(33) // a one-byte value type, or a heap type index
	return err
}

// end reports an error if a section has bytes left over.
func (r *reader) end() error {
	if !r.done() {
		return r.errf("%d unexpected bytes at the end of the section", len(r.buf)-r.pos)
	}
	return nil
}

func (m *module) scanImports(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for range n {
		start := r.pos
		mod, err := r.name()
		if err != nil {
			return err
		}
		name, err := r.name()
		if err != nil {
			return err
		}
		if mod == ImportModule && name == ImportName {
			r.pos = start
			return &Error{Section: r.section, Offset: r.base + r.pos,
				Msg: "imports " + ImportModule + "." + ImportName + ": " + ErrAlreadyInstrumented.Error(),
				Err: ErrAlreadyInstrumented}
		}
		kind, err := r.importDesc()
		if err != nil {
			return err
		}
		switch kind {
		case kindFunc:
			m.numImportedFuncs++
		case kindGlobal:
			m.numGlobals++
		}
	}
	m.numFuncs = m.numImportedFuncs
	return r.end()
}

// importDesc skips an import description and returns its kind.
func (r *reader) importDesc() (byte, error) {
	start := r.pos
	kind, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch kind {
	case kindFunc:
		_, err = r.u32()
	case kindTable:
		if err = r.valType(); err == nil {
			err = r.limits()
		}
	case kindMemory:
		err = r.limits()
	case kindGlobal:
		err = r.globalType()
	default:
		r.pos = start
		return 0, r.errf("unsupported import kind %#02x", kind)
	}
	return kind, err
}

func (r *reader) limits() error {
	start := r.pos
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if flags > 7 {
		r.pos = start
		return r.errf("unknown limits flags %#02x", flags)
	}
	if _, err := r.uleb(64); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = r.uleb(64)
	}
	return err
}

func (r *reader) globalType() error {
	if err := r.valType(); err != nil {
		return err
	}
	_, err := r.byte() // mutability
	return err
}

func (m *module) scanFunctions(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	if err := r.skipU32s(n); err != nil {
		return err
	}
	m.numFuncs = m.numImportedFuncs + uint32(n)
	return r.end()
}

func (m *module) scanGlobals(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for range n {
		if err := r.globalType(); err != nil {
			return err
		}
		if _, err := m.expr(nil, r); err != nil {
			return err
		}
	}
	m.numGlobals += uint32(n)
	return r.end()
}

func (m *module) scanExports(r *reader) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for range n {
		start := r.pos
		name, err := r.name()
		if err != nil {
			return err
		}
		if name == FuelExport {
			r.pos = start
			return &Error{Section: r.section, Offset: r.base + r.pos,
				Msg: "exports " + FuelExport + ": " + ErrAlreadyInstrumented.Error(),
				Err: ErrAlreadyInstrumented}
		}
		if _, err := r.byte(); err != nil {
			return err
		}
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return r.end()
}

// checkCode returns the instructions of one check point:
//
//	global.get fuel; i64.const CheckCost; i64.sub; global.set fuel
//	global.get fuel; i64.const 0; i64.le_s
//	if; call yield; global.set fuel; end
func (m *module) checkCode() []byte {
	g := m.numGlobals
	b := appendU32([]byte{opGlobalGet}, g)
	b = appendS64(append(b, opI64Const), CheckCost)
	b = appendU32(append(b, opI64Sub, opGlobalSet), g)
	b = appendU32(append(b, opGlobalGet), g)
	b = append(b, opI64Const, 0, opI64LeS, opIf, blockEmpty)
	b = appendU32(append(b, opCall), m.numImportedFuncs)
	b = appendU32(append(b, opGlobalSet), g)
	return append(b, opEnd)
}

// funcIndex maps a function index of the input to the output, where the
// yield import sits after the input's imported functions.
func (m *module) funcIndex(r *reader, i uint32) (uint32, error) {
	if i >= m.numFuncs {
		return 0, r.errf("function index %d out of range (%d functions)", i, m.numFuncs)
	}
	if i >= m.numImportedFuncs {
		i++
	}
	return i, nil
}

// appendFuncIndex reads a function index and appends its new value.
func (m *module) appendFuncIndex(out []byte, r *reader) ([]byte, error) {
	i, err := r.u32()
	if err != nil {
		return out, err
	}
	if i, err = m.funcIndex(r, i); err != nil {
		return out, err
	}
	return appendU32(out, i), nil
}

// expr copies a constant expression up to and including its end,
// renumbering ref.func. It appends to out (which may be nil when only
// skipping).
func (m *module) expr(out []byte, r *reader) ([]byte, error) {
	for {
		in, err := r.next()
		if err != nil {
			return out, err
		}
		if in.op == opRefFunc {
			i, err := m.funcIndex(r, in.fn)
			if err != nil {
				return out, err
			}
			out = appendU32(append(out, opRefFunc), i)
		} else {
			out = append(out, r.buf[in.start:in.end]...)
		}
		if in.op == opEnd {
			return out, nil
		}
	}
}
