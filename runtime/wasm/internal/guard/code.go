package guard

import "slices"

// rewriteCode instruments every function body.
func (m *module) rewriteCode(r *reader) ([]byte, error) {
	out, err := vec(r, 0, func(out []byte) ([]byte, error) {
		size, err := r.u32()
		if err != nil {
			return out, err
		}
		start := r.pos
		body, err := r.bytes(int(min(size, 1<<31-1)))
		if err != nil {
			return out, err
		}
		br := &reader{buf: body, base: r.base + start, section: r.section}
		// Write the body after a maximal-width size and fix the size up
		// afterwards, so the body is not copied twice.
		at := len(out)
		out = append(out, 0x80, 0x80, 0x80, 0x80, 0x00)
		if out, err = m.rewriteBody(out, br); err != nil {
			return out, err
		}
		putU32Padded(out[at:at+5], uint32(len(out)-at-5))
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return out, r.end()
}

// putU32Padded writes v as a five-byte LEB128.
func putU32Padded(b []byte, v uint32) {
	for i := range 4 {
		b[i] = byte(v)&0x7f | 0x80
		v >>= 7
	}
	b[4] = byte(v)
}

// rewriteBody appends the instrumented function body read by r to out.
// It decodes the body once, copying it while renumbering function indices
// and adding a check after every loop opcode; the entry check, which
// depends on the whole body, is inserted at the end if it is needed.
func (m *module) rewriteBody(out []byte, r *reader) ([]byte, error) {
	// Local declarations: a vector of (count, type).
	n, err := r.count()
	if err != nil {
		return out, err
	}
	for range n {
		if _, err := r.u32(); err != nil {
			return out, err
		}
		if err := r.valType(); err != nil {
			return out, err
		}
	}
	out = append(out, r.buf[:r.pos]...)
	entry := len(out)

	// leaf: no calls so far; loopFirst: a loop header is reached on entry
	// before any branch or call. depth checks that the body is well nested
	// and ends with end.
	leaf, loopFirst, straight := true, false, true
	depth := 0
	copyFrom := r.pos // r.buf[copyFrom:] is not yet copied
	for !r.done() {
		if depth < 0 {
			return out, r.errf("instructions after the end of the function")
		}
		in, err := r.next()
		if err != nil {
			return out, err
		}
		leaf = leaf && !in.isCall()
		loopFirst = loopFirst || straight && in.op == opLoop
		straight = straight && !in.mayBranch()
		switch in.op {
		case opBlock, opIf:
			depth++
		case opEnd:
			depth--
		case opLoop:
			depth++
			out = append(out, r.buf[copyFrom:in.end]...)
			out = append(out, m.check...)
			copyFrom = in.end
		case opCall, opReturnCall, opRefFunc:
			i, err := m.funcIndex(r, in.fn)
			if err != nil {
				r.pos = in.start
				return out, err
			}
			out = append(out, r.buf[copyFrom:in.start]...)
			out = appendU32(append(out, in.op), i)
			copyFrom = in.end
		}
	}
	if depth >= 0 {
		return out, r.errf("function body does not end with end")
	}
	out = append(out, r.buf[copyFrom:]...)
	if !leaf && !loopFirst {
		out = slices.Insert(out, entry, m.check...)
	}
	return out, nil
}
