package supervisor

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCopyLinesAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	l, err := OpenJSONLog(path, 300, 3)
	if err != nil {
		t.Fatal(err)
	}
	input := strings.Repeat("line\n", 20) + strings.Repeat("x", maxLine+5) + "tail-without-newline"
	if err := copyLines(l, "stdout", strings.NewReader(input), make([]byte, maxLine)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	var got strings.Builder
	for _, p := range []string{path + ".2", path + ".1", path} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatalf("rotated file %s: %v", p, err)
		}
		st, _ := f.Stat()
		if st.Size() > 300+maxLine+200 {
			t.Errorf("%s: %d bytes, over max-size by more than one entry", p, st.Size())
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e LogEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: bad entry %q: %v", p, sc.Text(), err)
			}
			if e.Stream != "stdout" || time.Since(e.Time) > time.Minute {
				t.Fatalf("entry %+v", e)
			}
			got.WriteString(e.Log)
		}
		f.Close()
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("max-file 3 kept a fourth file")
	}
	// Rotation drops the oldest entries; what is kept is the input's end.
	if !strings.HasSuffix(input, got.String()) || !strings.HasSuffix(got.String(), "tail-without-newline") {
		t.Fatalf("kept output is not the end of the input: %q", got.String())
	}
}
