package guard

import "testing"

func TestLEB128(t *testing.T) {
	for _, c := range []struct {
		in     []byte
		bits   uint
		signed bool
		want   int64
		ok     bool
	}{
		{[]byte{0x05}, 32, false, 5, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x00}, 32, false, 0, true}, // padded, as Go's linker writes
		{[]byte{0x85, 0x80, 0x80, 0x80, 0x00}, 32, false, 5, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 32, false, 0xffffffff, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, 32, false, 0, false}, // overflows
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 32, false, 0, false},
		{[]byte{0x7f}, 32, true, -1, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, 32, true, -1, true}, // padded -1
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x78}, 32, true, -1 << 31, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x08}, 32, true, 0, false}, // 2^31 does not fit
		{[]byte{0xc0, 0xbb, 0x78}, 32, true, -123456, true},
		{[]byte{0x40}, 33, true, -64, true}, // the empty block type
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}, 64, true, -1 << 63, true},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 64, true, 0, false},
		{[]byte{0x80}, 32, false, 0, false}, // truncated
	} {
		r := &reader{buf: c.in, section: "test"}
		var got int64
		var err error
		if c.signed {
			got, err = r.sleb(c.bits)
		} else {
			var u uint64
			u, err = r.uleb(c.bits)
			got = int64(u)
		}
		if (err == nil) != c.ok || c.ok && (got != c.want || !r.done()) {
			t.Errorf("%x (%d bits, signed %v): got %d, %v; want %d, ok %v", c.in, c.bits, c.signed, got, err, c.want, c.ok)
		}
	}
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 1 << 40, -1 << 63, 1<<63 - 1} {
		r := &reader{buf: appendS64(nil, v)}
		if got, err := r.sleb(64); err != nil || got != v || !r.done() {
			t.Errorf("appendS64(%d) reads back as %d, %v", v, got, err)
		}
	}
}
