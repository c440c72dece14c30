package cli_test

import (
	"strings"
	"testing"
)

// TestInfoLayout: `berth info` prints what docker's CLI prints for the same
// daemon, line for line, but for the client's own version.
func TestInfoLayout(t *testing.T) {
	d := startDaemon(t)
	strip := func(s string) string {
		var keep []string
		for i, l := range strings.Split(s, "\n") {
			if i == 1 && strings.HasPrefix(l, " Version:") {
				continue // the client's version
			}
			keep = append(keep, l)
		}
		return strings.Join(keep, "\n")
	}
	b, k := d.berth("info"), d.docker("info")
	if b.code != 0 || k.code != 0 || strip(b.out) != strip(k.out) {
		t.Errorf("info differs:\nberth (exit %d):\n%s\ndocker (exit %d):\n%s", b.code, b.out, k.code, k.out)
	}
	if !strings.Contains(b.out, " Network: bridge host null\n") || !strings.Contains(b.out, " Swarm: inactive\n") {
		t.Errorf("info:\n%s", b.out)
	}
}
