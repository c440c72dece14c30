package api

import (
	"errors"
	"io"
	"strings"
)

// defaultDetachKeys is docker's ctrl-p,ctrl-q.
var defaultDetachKeys = []byte{16, 17}

// errDetached ends an attach whose client typed the detach sequence.
var errDetached = errors.New("detached")

// parseDetachKeys reads docker's detach key syntax: comma-separated
// "ctrl-<key>" or single characters.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return defaultDetachKeys, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if rest, ok := strings.CutPrefix(strings.ToLower(k), "ctrl-"); ok && len(rest) == 1 {
			c := rest[0]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c == '@':
				out = append(out, 0)
			case c >= '[' && c <= '_':
				out = append(out, c-'['+27)
			default:
				return nil, badParam("invalid detach keys (%s)", s)
			}
			continue
		}
		if len(k) != 1 {
			return nil, badParam("invalid detach keys (%s)", s)
		}
		out = append(out, k[0])
	}
	return out, nil
}

// escapeReader passes input through until the detach sequence appears,
// then returns errDetached. Bytes that may begin the sequence are held
// back until the next byte tells; the sequence itself never reaches the
// container.
type escapeReader struct {
	r       io.Reader
	keys    []byte
	matched int    // bytes of keys seen so far
	pending []byte // output ready for the caller
	buf     []byte
}

func newEscapeReader(r io.Reader, keys []byte) *escapeReader {
	return &escapeReader{r: r, keys: keys, buf: make([]byte, 32<<10)}
}

func (e *escapeReader) Read(p []byte) (int, error) {
	for len(e.pending) == 0 {
		n, err := e.r.Read(e.buf)
		for _, b := range e.buf[:n] {
			if b == e.keys[e.matched] {
				e.matched++
				if e.matched == len(e.keys) {
					return 0, errDetached
				}
				continue
			}
			// A broken prefix was input after all.
			e.pending = append(e.pending, e.keys[:e.matched]...)
			e.matched = 0
			if b == e.keys[0] {
				e.matched = 1
				continue
			}
			e.pending = append(e.pending, b)
		}
		if err != nil {
			if len(e.pending) > 0 {
				break
			}
			return 0, err
		}
	}
	n := copy(p, e.pending)
	e.pending = e.pending[n:]
	return n, nil
}
