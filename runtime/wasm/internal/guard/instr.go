package guard

// Opcodes the instrumenter looks at or emits.
const (
	opUnreachable        = 0x00
	opBlock              = 0x02
	opLoop               = 0x03
	opIf                 = 0x04
	opElse               = 0x05
	opEnd                = 0x0b
	opBr                 = 0x0c
	opBrIf               = 0x0d
	opBrTable            = 0x0e
	opReturn             = 0x0f
	opCall               = 0x10
	opCallIndirect       = 0x11
	opReturnCall         = 0x12
	opReturnCallIndirect = 0x13
	opGlobalGet          = 0x23
	opGlobalSet          = 0x24
	opI64Const           = 0x42
	opI64LeS             = 0x57
	opI64Sub             = 0x7d
	opRefFunc            = 0xd2
	opPrefixMisc         = 0xfc // saturating truncation, bulk memory, table ops
	opPrefixSIMD         = 0xfd
	opPrefixThreads      = 0xfe

	blockEmpty = 0x40
)

// instr is one decoded instruction: its opcode and where it lies in the
// reader's buffer. fn is the function index immediate of call,
// return_call and ref.func, the only immediates we rewrite.
type instr struct {
	op         byte
	start, end int
	fn         uint32
}

// isCall reports whether the instruction transfers control to another
// function, which makes the enclosing function a non-leaf.
func (in instr) isCall() bool {
	switch in.op {
	case opCall, opCallIndirect, opReturnCall, opReturnCallIndirect:
		return true
	}
	return false
}

// mayBranch reports whether execution might not fall through to the next
// instruction.
func (in instr) mayBranch() bool {
	switch in.op {
	case opUnreachable, opIf, opElse, opEnd, opBr, opBrIf, opBrTable, opReturn:
		return true
	}
	return in.isCall()
}

// Immediate kinds, by opcode.
const (
	immInvalid   = iota // unknown or unsupported opcode
	immNone             // no immediates
	immBlockType        // block, loop, if: empty, a value type or a type index (s33)
	immU32              // one index or depth
	immU32x2            // two indices
	immBrTable          // vector of depths and a default
	immFunc             // a function index, which we renumber
	immSelectT          // a vector of value types
	immMemarg           // alignment (and memory index), offset
	immS32
	immS64
	immF32
	immF64
	immS33 // ref.null's heap type
	immMisc
	immSIMD
	immThreads
)

// immediates maps each opcode to the kind of its immediates. It covers the
// MVP instruction set plus the extensions wazero implements: sign
// extension, saturating truncation, bulk memory, reference types,
// multi-value, tail calls, SIMD and threads; Go's wasm backend emits a
// subset of these. Exception handling and typed function references are
// left invalid, so they are rejected.
var immediates = func() (t [256]byte) {
	set := func(kind byte, ops ...byte) {
		for _, op := range ops {
			t[op] = kind
		}
	}
	setRange := func(kind, from, to byte) {
		for op := int(from); op <= int(to); op++ {
			t[op] = kind
		}
	}
	set(immNone, opUnreachable, 0x01, opElse, opEnd, opReturn, 0x1a, 0x1b, 0xd1)
	set(immBlockType, opBlock, opLoop, opIf)
	set(immU32, opBr, opBrIf, 0x3f, 0x40)
	setRange(immU32, 0x20, 0x26) // local.*, global.*, table.get/set
	set(immBrTable, opBrTable)
	set(immFunc, opCall, opReturnCall, opRefFunc)
	set(immU32x2, opCallIndirect, opReturnCallIndirect) // type, table
	set(immSelectT, 0x1c)
	setRange(immMemarg, 0x28, 0x3e) // loads and stores
	set(immS32, 0x41)
	set(immS64, opI64Const)
	set(immF32, 0x43)
	set(immF64, 0x44)
	setRange(immNone, 0x45, 0xc4) // numeric and sign-extension ops
	set(immS33, 0xd0)
	set(immMisc, opPrefixMisc)
	set(immSIMD, opPrefixSIMD)
	set(immThreads, opPrefixThreads)
	return t
}()

// next decodes one instruction, skipping its immediates.
func (r *reader) next() (instr, error) {
	in := instr{start: r.pos}
	op, err := r.byte()
	if err != nil {
		return in, err
	}
	in.op = op
	switch immediates[op] {
	case immNone:
	case immBlockType, immS33:
		_, err = r.sleb(33)
	case immU32:
		_, err = r.u32()
	case immU32x2:
		err = r.skipU32s(2)
	case immBrTable:
		err = r.brTable()
	case immFunc:
		in.fn, err = r.u32()
	case immSelectT:
		err = r.skipVecOf(r.valType)
	case immMemarg:
		err = r.memarg()
	case immS32:
		_, err = r.sleb(32)
	case immS64:
		_, err = r.sleb(64)
	case immF32:
		_, err = r.bytes(4)
	case immF64:
		_, err = r.bytes(8)
	case immMisc:
		err = r.miscImmediates()
	case immSIMD:
		err = r.simdImmediates()
	case immThreads:
		err = r.threadsImmediates()
	default:
		r.pos = in.start
		return in, r.errf("unsupported opcode %#02x", op)
	}
	in.end = r.pos
	return in, err
}

func (r *reader) skipU32s(n int) error {
	for range n {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) skipVecOf(elem func() error) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for range n {
		if err := elem(); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) brTable() error {
	n, err := r.count()
	if err != nil {
		return err
	}
	return r.skipU32s(n + 1) // the targets and the default
}

// memarg skips a memory argument: alignment (bit 6 set means a memory
// index follows, as in multi-memory) and offset (64-bit for memory64).
func (r *reader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	_, err = r.uleb(64)
	return err
}

func (r *reader) miscImmediates() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // saturating truncation
		return nil
	case sub == 8, sub == 10, sub == 12, sub == 14:
		// memory.init data mem, memory.copy mem mem,
		// table.init elem table, table.copy table table
		return r.skipU32s(2)
	case sub <= 17:
		// data.drop, memory.fill, elem.drop, table.grow/size/fill
		return r.skipU32s(1)
	}
	return r.errf("unsupported opcode 0xfc %d", sub)
}

func (r *reader) simdImmediates() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads and stores
		return r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		_, err = r.bytes(16)
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		_, err = r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
		if err = r.memarg(); err == nil {
			_, err = r.byte()
		}
	case sub <= 0x113:
	default:
		return r.errf("unsupported opcode 0xfd %d", sub)
	}
	return err
}

func (r *reader) threadsImmediates() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub == 0x03: // atomic.fence
		_, err = r.byte()
		return err
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e:
		return r.memarg()
	}
	return r.errf("unsupported opcode 0xfe %d", sub)
}
