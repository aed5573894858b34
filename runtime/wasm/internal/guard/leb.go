package guard

import (
	"fmt"
	"math"
)

// Error reports why a module could not be instrumented: the section being
// read and the byte offset in the input module where the problem was found.
type Error struct {
	Section string // e.g. "code", "import", "custom \"name\"", or "header"
	Offset  int    // offset in the input module
	Msg     string
	Err     error // the cause, if any (e.g. ErrAlreadyInstrumented)
}

func (e *Error) Error() string {
	return fmt.Sprintf("guard: %s section at offset %#x: %s", e.Section, e.Offset, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// reader decodes the WebAssembly binary format from a slice of the input
// module. Every error it returns is an *Error naming the section and the
// absolute offset. LEB128 decoding accepts non-minimal (padded) encodings,
// which Go's linker writes, within the size limits of the spec.
type reader struct {
	buf     []byte
	pos     int
	base    int // absolute offset of buf[0] in the input module
	section string
}

func (r *reader) errf(format string, args ...any) error {
	return &Error{Section: r.section, Offset: r.base + r.pos, Msg: fmt.Sprintf(format, args...)}
}

func (r *reader) done() bool { return r.pos >= len(r.buf) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.buf) {
		return 0, r.errf("unexpected end")
	}
	b := r.buf[r.pos]
	r.pos++
	return b, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.buf)-r.pos {
		return nil, r.errf("length %d exceeds the remaining %d bytes", n, len(r.buf)-r.pos)
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *reader) uleb(bits uint) (uint64, error) {
	start := r.pos
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			r.pos = start
			return 0, r.errf("unsigned LEB128 longer than %d bits", bits)
		}
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			if left := bits - shift; left < 7 && b>>left != 0 {
				r.pos = start
				return 0, r.errf("unsigned LEB128 overflows %d bits", bits)
			}
			return v, nil
		}
	}
}

// sleb reads a signed LEB128 of at most bits bits.
func (r *reader) sleb(bits uint) (int64, error) {
	start := r.pos
	var v int64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			r.pos = start
			return 0, r.errf("signed LEB128 longer than %d bits", bits)
		}
		b, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(b&0x7f) << shift
		if b&0x80 == 0 {
			if left := bits - shift; left < 7 {
				// The unused high bits must all equal the sign bit.
				rest := int8(b<<1) >> left
				if rest != 0 && rest != -1 {
					r.pos = start
					return 0, r.errf("signed LEB128 overflows %d bits", bits)
				}
			}
			if shift+7 < 64 && b&0x40 != 0 {
				v |= -1 << (shift + 7)
			}
			return v, nil
		}
	}
}

func (r *reader) u32() (uint32, error) {
	if r.pos < len(r.buf) && r.buf[r.pos] < 0x80 { // the common one-byte case
		r.pos++
		return uint32(r.buf[r.pos-1]), nil
	}
	v, err := r.uleb(32)
	return uint32(v), err
}

// count reads a vector length and rejects lengths that cannot fit in the
// rest of the input (each element takes at least one byte), so corrupt
// input cannot make us allocate or loop for long.
func (r *reader) count() (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int(n) > len(r.buf)-r.pos {
		return 0, r.errf("vector length %d exceeds the remaining %d bytes", n, len(r.buf)-r.pos)
	}
	return int(n), nil
}

// name reads a length-prefixed UTF-8 name.
func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(min(n, math.MaxInt32)))
	return string(b), err
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// appendSection appends a section with the given id and contents.
func appendSection(b []byte, id byte, contents []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(contents)))
	return append(b, contents...)
}
