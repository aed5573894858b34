package guard

// emit writes the instrumented module: every section in input order,
// rewritten where it mentions function indices, with the type, import,
// global and export sections created where the input has none.
func (m *module) emit() ([]byte, error) {
	out := make([]byte, 0, len(m.sections)*16+len(m.check)*64+sumLen(m.sections)*21/20)
	out = append(out, header...)
	// Sections we must add to when the input lacks them, in order.
	missing := []byte{secType, secImport, secGlobal, secExport}
	flush := func(before int) {
		for len(missing) > 0 && sectionOrder[missing[0]] < before {
			id := missing[0]
			missing = missing[1:]
			if !m.present[id] {
				// An empty section's contents are a zero count.
				contents, _ := m.rewrite(section{id: id, data: []byte{0}})
				out = appendSection(out, id, contents)
			}
		}
	}
	for _, s := range m.sections {
		if s.id != secCustom {
			flush(sectionOrder[s.id])
		}
		contents, err := m.rewrite(s)
		if err != nil {
			return nil, err
		}
		out = appendSection(out, s.id, contents)
	}
	flush(len(sectionOrder) + 1)
	return out, nil
}

func sumLen(ss []section) int {
	n := 0
	for _, s := range ss {
		n += len(s.data)
	}
	return n
}

// rewrite returns the new contents of one section.
func (m *module) rewrite(s section) ([]byte, error) {
	r := m.reader(s)
	switch s.id {
	case secType:
		return m.rewriteTypes(r)
	case secImport:
		return m.rewriteImports(r)
	case secGlobal:
		return m.rewriteGlobals(r)
	case secExport:
		return m.rewriteExports(r)
	case secStart:
		out, err := m.appendFuncIndex(nil, r)
		if err != nil {
			return nil, err
		}
		return out, r.end()
	case secElement:
		return m.rewriteElements(r)
	case secCode:
		return m.rewriteCode(r)
	case secData:
		return m.rewriteData(r)
	case secCustom:
		name, err := r.name()
		if err == nil && name == "name" {
			return m.rewriteNames(r)
		}
	}
	return s.data, nil
}

// vec rewrites a vector whose count grows by extra elements: it writes the
// new count, then calls elem for each input element and returns the
// result, to which the caller appends the extra elements.
func vec(r *reader, extra uint32, elem func(out []byte) ([]byte, error)) ([]byte, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(r.buf)+16)
	out = appendU32(out, uint32(n)+extra)
	for range n {
		if out, err = elem(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copied appends what r read since start.
func copied(out []byte, r *reader, start int) []byte {
	return append(out, r.buf[start:r.pos]...)
}

func (m *module) rewriteTypes(r *reader) ([]byte, error) {
	if m.haveYieldType {
		return r.buf, nil
	}
	out, err := vec(r, 1, func(out []byte) ([]byte, error) {
		start := r.pos
		r.pos++ // the form byte, checked by scan
		if err := r.skipVecOf(r.valType); err != nil {
			return out, err
		}
		err := r.skipVecOf(r.valType)
		return copied(out, r, start), err
	})
	if err != nil {
		return nil, err
	}
	return append(out, funcTypeTag, 0, 1, valI64), nil
}

func (m *module) rewriteImports(r *reader) ([]byte, error) {
	out, err := vec(r, 1, func(out []byte) ([]byte, error) {
		start := r.pos
		if _, err := r.name(); err != nil {
			return out, err
		}
		if _, err := r.name(); err != nil {
			return out, err
		}
		_, err := r.importDesc()
		return copied(out, r, start), err
	})
	if err != nil {
		return nil, err
	}
	out = appendName(appendName(out, ImportModule), ImportName)
	return appendU32(append(out, kindFunc), m.yieldType), nil
}

func (m *module) rewriteGlobals(r *reader) ([]byte, error) {
	out, err := vec(r, 1, func(out []byte) ([]byte, error) {
		start := r.pos
		if err := r.globalType(); err != nil {
			return out, err
		}
		return m.expr(copied(out, r, start), r)
	})
	if err != nil {
		return nil, err
	}
	// mutable i64, initialised by (i64.const InitialFuel) end
	out = append(out, valI64, 0x01, opI64Const)
	return append(appendS64(out, InitialFuel), opEnd), nil
}

func (m *module) rewriteExports(r *reader) ([]byte, error) {
	out, err := vec(r, 1, func(out []byte) ([]byte, error) {
		start := r.pos
		if _, err := r.name(); err != nil {
			return out, err
		}
		kind, err := r.byte()
		if err != nil {
			return out, err
		}
		out = copied(out, r, start)
		if kind == kindFunc {
			return m.appendFuncIndex(out, r)
		}
		i, err := r.u32()
		return appendU32(out, i), err
	})
	if err != nil {
		return nil, err
	}
	out = appendName(out, FuelExport)
	return appendU32(append(out, kindGlobal), m.numGlobals), nil
}

// rewriteElements handles all eight element segment forms. The flags'
// bit 0 marks a passive or declarative segment, bit 1 an explicit table
// index (active) or a declarative segment, and bit 2 elements given as
// expressions rather than function indices.
func (m *module) rewriteElements(r *reader) ([]byte, error) {
	out, err := vec(r, 0, func(out []byte) ([]byte, error) {
		start := r.pos
		flags, err := r.u32()
		if err != nil {
			return out, err
		}
		if flags > 7 {
			r.pos = start
			return out, r.errf("unknown element segment flags %d", flags)
		}
		if flags&1 == 0 { // active
			if flags&2 != 0 {
				if _, err := r.u32(); err != nil { // table index
					return out, err
				}
			}
			if out, err = m.expr(copied(out, r, start), r); err != nil {
				return out, err
			}
			start = r.pos
		}
		if flags&3 != 0 {
			if err := r.valType(); err != nil { // element kind or reference type
				return out, err
			}
		}
		n, err := r.count()
		if err != nil {
			return out, err
		}
		out = copied(out, r, start)
		for range n {
			if flags&4 == 0 {
				out, err = m.appendFuncIndex(out, r)
			} else {
				out, err = m.expr(out, r)
			}
			if err != nil {
				return out, err
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return out, r.end()
}

// rewriteData renumbers ref.func in offset expressions (never seen in
// practice, but legal in extended constant expressions) and copies the
// bytes.
func (m *module) rewriteData(r *reader) ([]byte, error) {
	out, err := vec(r, 0, func(out []byte) ([]byte, error) {
		start := r.pos
		flags, err := r.u32()
		if err != nil {
			return out, err
		}
		switch flags {
		case 0:
		case 1:
		case 2:
			if _, err := r.u32(); err != nil { // memory index
				return out, err
			}
		default:
			r.pos = start
			return out, r.errf("unknown data segment flags %d", flags)
		}
		out = copied(out, r, start)
		if flags != 1 {
			if out, err = m.expr(out, r); err != nil {
				return out, err
			}
		}
		start = r.pos
		n, err := r.u32()
		if err != nil {
			return out, err
		}
		if _, err := r.bytes(int(min(n, 1<<31-1))); err != nil {
			return out, err
		}
		return copied(out, r, start), nil
	})
	if err != nil {
		return nil, err
	}
	return out, r.end()
}
