package format

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

type row struct{ ID, Name string }

func (r row) Upper() string { return strings.ToUpper(r.Name) }

func list(t *testing.T, format string, rows ...row) string {
	t.Helper()
	var b bytes.Buffer
	l, err := NewLister(&b, format, "table {{.ID}}\t{{.Name}}", map[string]string{"ID": "CONTAINER ID", "Name": "NAMES"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := l.Row(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestTable(t *testing.T) {
	rows := []row{{"abc", "web"}, {"0123456789abcdef", "db"}}
	// docker's tabwriter: minimum width 10, padding 3; the last cell unpadded.
	want := "CONTAINER ID       NAMES\nabc                web\n0123456789abcdef   db\n"
	for _, f := range []string{"", "table", `table {{.ID}}\t{{.Name}}`} {
		if got := list(t, f, rows...); got != want {
			t.Errorf("%q:\n%s\nwant:\n%s", f, got, want)
		}
	}
	if got := list(t, "table {{.ID}}"); got != "CONTAINER ID\n" {
		t.Errorf("empty table: %q", got)
	}
	// Helpers in a table keep the column's name in the header.
	if got := list(t, `table {{upper .Name}}\t{{truncate .ID 2}}`, rows[0]); got != "NAMES     CONTAINER ID\nWEB       ab\n" {
		t.Errorf("helpers in a table: %q", got)
	}
}

func TestRaw(t *testing.T) {
	rows := []row{{"a", "web"}, {"b", "db"}}
	if got := list(t, `{{.ID}}\t{{.Name}}`, rows...); got != "a\tweb\nb\tdb\n" {
		t.Errorf("raw: %q", got)
	}
	if got := list(t, "json", rows[0]); got != `{"ID":"a","Name":"web"}`+"\n" {
		t.Errorf("json: %q", got)
	}
	got := list(t, `{{json .Name}} {{join (split "a,b" ",") "+"}}|{{title "hello world"}}|{{lower "AB"}}|{{pad .Name 1 2}}|{{.Upper}}`, rows[0])
	if got != `"web" a+b|Hello World|ab| web  |WEB`+"\n" {
		t.Errorf("helpers: %q", got)
	}
}

func TestBadTemplate(t *testing.T) {
	_, err := NewLister(&bytes.Buffer{}, "{{.ID", "", nil)
	if err == nil || err.Error() != "template parsing error: template: :1: unclosed action" {
		t.Errorf("parse error: %v", err)
	}
	var b bytes.Buffer
	l, _ := NewLister(&b, "{{.Nope}}", "", nil)
	if err := l.Row(row{}); err == nil || !strings.HasPrefix(err.Error(), "template parsing error: ") {
		t.Errorf("exec error: %v", err)
	}
	if err := Object(&b, "{{.Missing}}", map[string]any{"A": 1}); err == nil {
		t.Error("a missing key in an object is an error, as in docker's inspect")
	}
}

func TestHuman(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for d, want := range map[time.Duration]string{
		500 * time.Millisecond: "Less than a second ago",
		3 * time.Second:        "3 seconds ago",
		70 * time.Second:       "About a minute ago",
		5 * time.Minute:        "5 minutes ago",
		61 * time.Minute:       "About an hour ago",
		50 * time.Hour:         "2 days ago",
	} {
		if got := Ago(now, now.Add(-d).Unix()); got != want && d >= time.Second {
			t.Errorf("Ago(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0B", 999: "999B", 4_261_000: "4.26MB", 1_500_000_000: "1.5GB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
	if got := ShortID("sha256:0123456789abcdef"); got != "0123456789ab" {
		t.Errorf("ShortID: %q", got)
	}
	if got := Ellipsis("sh -c trap 'exit 143' TERM", 20); got != "sh -c trap 'exit 14…" {
		t.Errorf("Ellipsis: %q", got)
	}
}
