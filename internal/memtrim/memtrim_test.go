package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFileKB(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// TestTrim: the binary's resident file pages go, and the process goes on
// running code from them.
func TestTrim(t *testing.T) {
	before := rssFileKB(t)
	n, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if n == 0 || after >= before {
		t.Fatalf("Trim advised %d bytes; RssFile %d kB before, %d kB after", n, before, after)
	}
	if s := strconv.Itoa(42); s != "42" { // code mapped back on use
		t.Fatal(s)
	}
}
