package fleet

import (
	"fmt"

	"github.com/kouple/kouple/artifact"
	"github.com/kouple/kouple/manifest"
)

// TinyModule is a module artifact of a few hundred bytes, assembled here rather than compiled: a WASI command
// that speaks ABI v1, accepts each connection on the listener (fd 3), reads the request (one read of up to
// 4 KiB: a GET's head), writes a fixed HTTP answer ("ok" and the module's name) and closes the connection,
// waiting in poll_oneoff whenever there is nothing to do. A Go module costs ~37 MB
// per install (measurements.md); this one costs the base almost nothing, so a fleet of hundreds measures the
// controller and Kubernetes, not the compiler.
func TinyModule(name, version, contextPath string) ([]byte, error) {
	m := &manifest.Manifest{ABI: manifest.ABIVersion, Name: name, Version: version, ContextPath: contextPath, Runtime: manifest.RuntimeWasm}
	m.Normalize()
	m.Limits.MemoryMB = 1
	if err := m.Validate(); err != nil {
		return nil, err
	}
	body := "ok " + name + "\n"
	answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	return artifact.EmbedManifest(tinyWasm(answer), m)
}

// Memory layout of the tiny module.
const (
	tinySub     = 0   // poll_oneoff subscription: fd_read on fd 3 (48 bytes)
	tinyIOVec   = 64  // {buf, len} of the answer
	tinyAnswer  = 128 // the answer's bytes
	tinyEvent   = 1024
	tinyNEvents = 1100
	tinyFD      = 1104 // accepted connection
	tinyWritten = 1108
	tinyRead    = 1112
	tinyIOVecIn = 72   // {buf, len} of the request
	tinyConnSub = 1200 // poll_oneoff subscription: fd_read on the connection (fd stored at +16)
	tinyRequest = 2048 // 4 KiB for the request
)

func tinyWasm(answer string) []byte {
	const i32 = 0x7f
	fn := func(params, results int) []byte {
		b := []byte{0x60}
		b = append(b, uleb(uint32(params))...)
		for range params {
			b = append(b, i32)
		}
		b = append(b, uleb(uint32(results))...)
		for range results {
			b = append(b, i32)
		}
		return b
	}
	types := vec(fn(1, 1), fn(3, 1), fn(4, 1), fn(0, 0))
	imp := func(mod, name string, typ byte) []byte {
		return append(append(str(mod), str(name)...), 0x00, typ)
	}
	imports := vec(
		imp("kouple_v1", "abi_version", 0),              // func 0
		imp("wasi_snapshot_preview1", "sock_accept", 1), // func 1
		imp("wasi_snapshot_preview1", "poll_oneoff", 2), // func 2
		imp("wasi_snapshot_preview1", "fd_write", 2),    // func 3
		imp("wasi_snapshot_preview1", "fd_close", 0),    // func 4
		imp("wasi_snapshot_preview1", "fd_read", 2),     // func 5
	)
	funcs := vec([]byte{3})           // func 6: _start
	memory := vec([]byte{0x00, 0x01}) // one page, no maximum
	exports := vec(append(str("_start"), 0x00, 6), append(str("memory"), 0x02, 0))

	c := func(n int32) []byte { return append([]byte{0x41}, sleb(n)...) } // i32.const
	call := func(f byte) []byte { return []byte{0x10, f} }
	load := []byte{0x28, 0x02, 0x00} // i32.load align=4 offset=0
	var code []byte
	add := func(parts ...[]byte) {
		for _, p := range parts {
			code = append(code, p...)
		}
	}
	add(c(1), call(0), []byte{0x1a})                                                                 // abi_version(1); drop
	add([]byte{0x03, 0x40})                                                                          // loop
	add(c(3), c(0), c(tinyFD), call(1), []byte{0x22, 0x00, 0x45, 0x04, 0x40})                        // local.tee 0; i32.eqz; if
	add(c(tinyConnSub+16), c(tinyFD), load, []byte{0x36, 0x02, 0x00})                                // the connection's subscription names fd
	add([]byte{0x03, 0x40})                                                                          // loop (read)
	add(c(tinyFD), load, c(tinyIOVecIn), c(1), c(tinyRead), call(5), c(6), []byte{0x46, 0x04, 0x40}) // fd_read == EAGAIN: if
	add(c(tinyConnSub), c(tinyEvent), c(1), c(tinyNEvents), call(2), []byte{0x1a})                   // poll_oneoff(connection)
	add([]byte{0x0c, 0x01, 0x0b, 0x0b})                                                              // br read loop; end if; end loop
	add(c(tinyFD), load, c(tinyIOVec), c(1), c(tinyWritten), call(3), []byte{0x1a})                  // fd_write(fd, iov, 1, &n); drop
	add(c(tinyFD), load, call(4), []byte{0x1a})                                                      // fd_close(fd); drop
	add([]byte{0x0c, 0x01, 0x0b})                                                                    // br loop; end if
	add([]byte{0x20, 0x00}, c(6), []byte{0x47, 0x04, 0x40, 0x0f, 0x0b})                              // if errno != EAGAIN: return
	add(c(tinySub), c(tinyEvent), c(1), c(tinyNEvents), call(2), []byte{0x1a})                       // poll_oneoff(sub, ev, 1, &n)
	add([]byte{0x0c, 0x00, 0x0b, 0x0b})                                                              // br loop; end loop; end func
	body := append([]byte{0x01, 0x01, i32}, code...)                                                 // one i32 local
	codes := vec(append(uleb(uint32(len(body))), body...))

	sub := make([]byte, 48)
	sub[8] = 1                                                      // eventtype fd_read
	sub[16] = 3                                                     // the listener
	iov := le32(tinyAnswer, uint32(len(answer)), tinyRequest, 4096) // the answer's, then the request's
	connSub := make([]byte, 48)
	connSub[8] = 1
	seg := func(at int32, data []byte) []byte {
		b := append([]byte{0x00}, c(at)...)
		b = append(b, 0x0b)
		return append(append(b, uleb(uint32(len(data)))...), data...)
	}
	data := vec(seg(tinySub, sub), seg(tinyIOVec, iov), seg(tinyAnswer, []byte(answer)), seg(tinyConnSub, connSub))

	out := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	for _, s := range []struct {
		id   byte
		body []byte
	}{{1, types}, {2, imports}, {3, funcs}, {5, memory}, {7, exports}, {10, codes}, {11, data}} {
		out = append(out, s.id)
		out = append(out, uleb(uint32(len(s.body)))...)
		out = append(out, s.body...)
	}
	return out
}

func vec(items ...[]byte) []byte {
	out := uleb(uint32(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func str(s string) []byte { return append(uleb(uint32(len(s))), s...) }

func le32(vs ...uint32) []byte {
	var out []byte
	for _, v := range vs {
		out = append(out, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
	return out
}

func uleb(v uint32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func sleb(v int32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 && b&0x40 == 0 || v == -1 && b&0x40 != 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
