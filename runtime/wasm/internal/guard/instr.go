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

// next decodes one instruction, skipping its immediates. It knows the MVP
// instruction set plus the extensions wazero implements: sign extension,
// saturating truncation, bulk memory, reference types, multi-value, tail
// calls, SIMD and threads. Go's wasm backend emits a subset of these.
// Exception handling and typed function references are rejected.
func (r *reader) next() (instr, error) {
	in := instr{start: r.pos}
	op, err := r.byte()
	if err != nil {
		return in, err
	}
	in.op = op
	switch {
	case op <= 0x01, op == opElse, op == opEnd, op == opReturn, op == 0x1a, op == 0x1b:
		// unreachable, nop, else, end, return, drop, select: no immediates.
	case op >= opBlock && op <= opIf:
		_, err = r.sleb(33) // block type: empty, a value type or a type index
	case op == opBr, op == opBrIf:
		_, err = r.u32()
	case op == opBrTable:
		err = r.brTable()
	case op == opCall, op == opReturnCall, op == opRefFunc:
		in.fn, err = r.u32()
	case op == opCallIndirect, op == opReturnCallIndirect:
		err = r.skipU32s(2) // type index, table index
	case op == 0x1c: // select with types
		err = r.skipVecOf(func() error { _, err := r.sleb(33); return err })
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		_, err = r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		err = r.memarg()
	case op == 0x3f, op == 0x40: // memory.size, memory.grow
		_, err = r.u32()
	case op == 0x41:
		_, err = r.sleb(32)
	case op == opI64Const:
		_, err = r.sleb(64)
	case op == 0x43:
		_, err = r.bytes(4)
	case op == 0x44:
		_, err = r.bytes(8)
	case op >= 0x45 && op <= 0xc4: // numeric and sign-extension ops
	case op == 0xd0: // ref.null
		_, err = r.sleb(33)
	case op == 0xd1: // ref.is_null
	case op == opPrefixMisc:
		err = r.miscImmediates()
	case op == opPrefixSIMD:
		err = r.simdImmediates()
	case op == opPrefixThreads:
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
