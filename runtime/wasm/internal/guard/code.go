package guard

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
	code := r.pos

	// First pass: is this a leaf, and is a loop header reached on entry
	// before any branch or call?
	// Also check that the body is a well nested sequence ending in end.
	leaf, loopFirst, straight := true, false, true
	depth := 0
	for !r.done() {
		if depth < 0 {
			return out, r.errf("instructions after the end of the function")
		}
		in, err := r.next()
		if err != nil {
			return out, err
		}
		switch in.op {
		case opBlock, opLoop, opIf:
			depth++
		case opEnd:
			depth--
		}
		if in.isCall() {
			leaf = false
		}
		if straight && in.op == opLoop {
			loopFirst = true
		}
		if in.mayBranch() {
			straight = false
		}
	}

	if depth >= 0 {
		return out, r.errf("function body does not end with end")
	}

	// Second pass: copy, renumbering function indices and adding checks.
	out = append(out, r.buf[:code]...)
	if !leaf && !loopFirst {
		out = append(out, m.check...)
	}
	r.pos = code
	copyFrom := code // r.buf[copyFrom:] is not yet copied
	for !r.done() {
		in, _ := r.next() // the first pass has decoded it all already
		switch in.op {
		case opCall, opReturnCall, opRefFunc:
			i, err := m.funcIndex(r, in.fn)
			if err != nil {
				r.pos = in.start
				return out, err
			}
			out = append(out, r.buf[copyFrom:in.start]...)
			out = appendU32(append(out, in.op), i)
			copyFrom = in.end
		case opLoop:
			out = append(out, r.buf[copyFrom:in.end]...)
			out = append(out, m.check...)
			copyFrom = in.end
		}
	}
	return append(out, r.buf[copyFrom:]...), nil
}
