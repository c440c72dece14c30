package command

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseDetachKeys(t *testing.T) {
	for in, want := range map[string]string{"": "\x10\x11", "ctrl-p,ctrl-q": "\x10\x11", "a,ctrl-@,ctrl-_": "a\x00\x1f"} {
		got, err := parseDetachKeys(in)
		if err != nil || string(got) != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "ctrl-1", "ab", "a,,b"} {
		if _, err := parseDetachKeys(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDetachReader(t *testing.T) {
	for _, c := range []struct {
		in, out  string
		detached bool
	}{
		{"hello", "hello", false},
		{"ab\x10\x11cd", "ab", true},
		{"a\x10b\x10\x10\x11c", "a\x10b\x10", true},
		{"\x10", "", false}, // a sequence cut short by EOF is dropped, as docker does
	} {
		r := &detachReader{in: iotest.OneByteReader(strings.NewReader(c.in)), keys: []byte{0x10, 0x11}, detached: make(chan struct{})}
		var b bytes.Buffer
		if _, err := io.Copy(&b, r); err != nil {
			t.Fatal(err)
		}
		detached := false
		select {
		case <-r.detached:
			detached = true
		default:
		}
		if b.String() != c.out || detached != c.detached {
			t.Errorf("%q: passed %q, detached %v; want %q, %v", c.in, b.String(), detached, c.out, c.detached)
		}
	}
}

func TestLeadingHost(t *testing.T) {
	for _, c := range []struct {
		in   []string
		host string
		rest []string
		ok   bool
	}{
		{[]string{"-H", "unix:///x", "ps", "-a"}, "unix:///x", []string{"ps", "-a"}, true},
		{[]string{"--host=tcp://h:1", "ps"}, "tcp://h:1", []string{"ps"}, true},
		{[]string{"daemon", "-H", "unix:///y"}, "", nil, false},
		{[]string{"history", "-H", "img"}, "", nil, false},
		{[]string{"ps"}, "", nil, false},
	} {
		host, rest, ok := LeadingHost(c.in)
		if host != c.host || ok != c.ok || strings.Join(rest, " ") != strings.Join(c.rest, " ") {
			t.Errorf("%v: %q %v %v", c.in, host, rest, ok)
		}
	}
}
