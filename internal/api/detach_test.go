package api

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	for in, want := range map[string]string{"": "\x10\x11", "ctrl-a,x": "\x01x", "ctrl-@,ctrl-[": "\x00\x1b"} {
		got, err := parseDetachKeys(in)
		if err != nil || string(got) != want {
			t.Errorf("parseDetachKeys(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "ctrl-1", "ab"} {
		if _, err := parseDetachKeys(bad); err == nil {
			t.Errorf("parseDetachKeys(%q) accepted", bad)
		}
	}
}

func TestEscapeReader(t *testing.T) {
	for _, c := range []struct {
		in, out  string
		detached bool
	}{
		{"hello", "hello", false},
		{"ab\x10\x11cd", "ab", true},
		{"a\x10b\x10\x10\x11", "a\x10b\x10", true},
		{"\x10", "", false}, // a prefix cut by the end is dropped
	} {
		got, err := io.ReadAll(newEscapeReader(iotestOneByte(c.in), []byte{16, 17}))
		if string(got) != c.out || errors.Is(err, errDetached) != c.detached {
			t.Errorf("%q: got %q, %v", c.in, got, err)
		}
	}
}

// iotestOneByte reads one byte at a time, so sequences split across reads.
func iotestOneByte(s string) io.Reader { return &oneByte{strings.NewReader(s)} }

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
