// Package format renders lists and objects the way docker's CLI does:
// `--format` Go templates with docker's helper functions, the `table`
// directive (a header row and columns aligned by a tabwriter with docker's
// settings), `json` for one JSON object per line, and a raw default.
package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// Keys with a meaning of their own in a --format value.
const (
	TableKey = "table"
	JSONKey  = "json"
)

// Funcs are the helpers docker's templates offer.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"json":     jsonString,
		"split":    strings.Split,
		"join":     strings.Join,
		"title":    title,
		"lower":    strings.ToLower,
		"upper":    strings.ToUpper,
		"pad":      func(s string, pre, post int) string { return strings.Repeat(" ", pre) + s + strings.Repeat(" ", post) },
		"truncate": truncate,
	}
}

// headerFuncs render a header row: every helper hands its input back, so
// `{{upper .Names}}` still prints the column's name.
func headerFuncs() template.FuncMap {
	return template.FuncMap{
		"json":     func(v any) string { return fmt.Sprint(v) },
		"split":    func(v string, _ string) string { return v },
		"join":     func(v string, _ string) string { return v },
		"title":    func(v string) string { return v },
		"lower":    func(v string) string { return v },
		"upper":    func(v string) string { return v },
		"pad":      func(v string, _, _ int) string { return v },
		"truncate": func(v string, _ int) string { return v },
	}
}

func jsonString(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || unicode.IsPunct(prev) {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Parse parses a user's template with docker's helpers. The error reads
// like docker's so scripts matching on it keep working.
func Parse(text string) (*template.Template, error) {
	t, err := template.New("").Funcs(Funcs()).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// Lister writes rows under one --format value.
type Lister struct {
	table  bool
	tmpl   *template.Template
	header any
	buf    bytes.Buffer
	out    io.Writer
}

// NewLister parses format. def is the table used for "" and "table";
// header maps each field to its column name (nil for formats without one).
func NewLister(out io.Writer, format, def string, header map[string]string) (*Lister, error) {
	switch format {
	case "", TableKey:
		format = def
	case JSONKey:
		format = "{{json .}}"
	}
	table := false
	if rest, ok := strings.CutPrefix(format, TableKey); ok {
		table, format = true, rest
	}
	format = strings.Trim(format, " ")
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	t, err := template.New("").Funcs(Funcs()).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return &Lister{table: table, tmpl: t, header: header, out: out}, nil
}

// Row renders one row; nothing reaches the output until Flush, so a
// template failing half way prints no partial table.
func (l *Lister) Row(v any) error {
	if err := l.tmpl.Execute(&l.buf, v); err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	l.buf.WriteByte('\n')
	return nil
}

// Flush writes the rows, under a header and aligned when the format is a table.
func (l *Lister) Flush() error {
	if !l.table {
		_, err := l.buf.WriteTo(l.out)
		return err
	}
	// docker's settings: minimum width 10, padding 3, spaces.
	tw := tabwriter.NewWriter(l.out, 10, 1, 3, ' ', 0)
	if l.header != nil {
		// A header for a field the map lacks (for example a method call
		// with arguments) is left empty rather than failing the listing.
		var h bytes.Buffer
		if err := template.Must(l.tmpl.Clone()).Funcs(headerFuncs()).Option("missingkey=zero").Execute(&h, l.header); err == nil {
			tw.Write(h.Bytes())
		}
		tw.Write([]byte{'\n'})
	}
	if _, err := l.buf.WriteTo(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// Object renders one value (inspect, version, info) with a user's
// template, or as indented JSON when there is none. A key missing from a
// decoded object is an error, as in docker, rather than "<no value>".
func Object(out io.Writer, format string, v any) error {
	if format == "" || format == JSONKey {
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	t, err := Parse(format)
	if err != nil {
		return err
	}
	t.Option("missingkey=error")
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	b.WriteByte('\n')
	_, err = b.WriteTo(out)
	return err
}
