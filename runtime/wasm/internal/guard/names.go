package guard

// Subsections of the name section whose entries are keyed by function
// index: function names, local names, label names.
const (
	nameFunctions = 1
	nameLocals    = 2
	nameLabels    = 3
)

// rewriteNames renumbers the function indices in the "name" custom
// section and names the yield import. r is positioned after the section's
// own name. Other subsections are copied.
func (m *module) rewriteNames(r *reader) ([]byte, error) {
	out := append([]byte(nil), r.buf[:r.pos]...)
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.pos
		data, err := r.bytes(int(min(size, 1<<31-1)))
		if err != nil {
			return nil, err
		}
		if id == nameFunctions || id == nameLocals || id == nameLabels {
			sub := &reader{buf: data, base: r.base + start, section: r.section}
			if data, err = m.rewriteNameMap(sub, id); err != nil {
				return nil, err
			}
		}
		out = appendSection(out, id, data)
	}
	return out, nil
}

// rewriteNameMap rewrites a name map (function names) or an indirect name
// map (local or label names) keyed by function index. Entries stay sorted
// because the renumbering preserves order; the yield import's name is
// inserted in its place in the function names.
func (m *module) rewriteNameMap(r *reader, id byte) ([]byte, error) {
	extra := uint32(0)
	if id == nameFunctions {
		extra = 1
	}
	added := false
	addYield := func(out []byte) []byte {
		added = true
		return appendName(appendU32(out, m.numImportedFuncs), ImportModule+"."+ImportName)
	}
	out, err := vec(r, extra, func(out []byte) ([]byte, error) {
		fn, err := r.u32()
		if err != nil {
			return out, err
		}
		if extra == 1 && !added && fn >= m.numImportedFuncs {
			out = addYield(out)
		}
		if fn, err = m.funcIndex(r, fn); err != nil {
			return out, err
		}
		out = appendU32(out, fn)
		start := r.pos
		if id == nameFunctions {
			_, err = r.name()
		} else {
			err = r.skipVecOf(r.nameAssoc)
		}
		return copied(out, r, start), err
	})
	if err != nil {
		return nil, err
	}
	if extra == 1 && !added {
		out = addYield(out)
	}
	return out, r.end()
}

// nameAssoc skips one (index, name) pair.
func (r *reader) nameAssoc() error {
	if _, err := r.u32(); err != nil {
		return err
	}
	_, err := r.name()
	return err
}
