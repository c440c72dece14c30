package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// tarOf makes a context tar (gzip-compressed with gz).
func tarOf(t *testing.T, files map[string]string, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// postBuild posts a context to /build and returns the whole answer.
func (d *daemon) postBuild(t *testing.T, query string, body []byte) string {
	t.Helper()
	status, out := d.postBuildStatus(t, query, body)
	if status != http.StatusOK {
		t.Fatalf("POST /build?%s: %d %s", query, status, out)
	}
	return out
}

func (d *daemon) postBuildStatus(t *testing.T, query string, body []byte) (int, string) {
	t.Helper()
	resp, err := d.http().Post("http://berth/v1.47/build?"+query, "application/x-tar", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// streamMessage is one line of the build stream.
type streamMessage struct {
	Stream      string          `json:"stream"`
	Aux         json.RawMessage `json:"aux"`
	Error       string          `json:"error"`
	ErrorDetail *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errorDetail"`
}

func messages(t *testing.T, s string) []streamMessage {
	t.Helper()
	var out []streamMessage
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.More() {
		var m streamMessage
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("stream %q: %v", s, err)
		}
		out = append(out, m)
	}
	return out
}

// TestAPI drives POST /build directly: a gzip context with a Dockerfile
// under another name, quiet mode, a lone Dockerfile body, the aux line and
// the error shapes (HTTP status before the stream, errorDetail within).
func TestAPI(t *testing.T) {
	d := startDaemon(t)
	files := map[string]string{"build/App.dockerfile": "FROM busybox\nARG WHO\nRUN echo hi $WHO\nCOPY x /x\n", "x": "x"}
	out := d.postBuild(t, `t=api:1&dockerfile=build/App.dockerfile&buildargs={"WHO":"there","EXTRA":"1"}`, tarOf(t, files, true))
	ms := messages(t, out)
	var stream strings.Builder
	var auxID string
	for _, m := range ms {
		stream.WriteString(m.Stream)
		if m.Aux != nil {
			var a struct{ ID string }
			_ = json.Unmarshal(m.Aux, &a)
			auxID = a.ID
		}
	}
	for _, want := range []string{"Step 1/4 : FROM busybox\n", "Step 3/4 : RUN echo hi $WHO\n", "hi there\n",
		"[Warning] One or more build-args [EXTRA] were not consumed\n", "Successfully tagged api:1\n"} {
		if !strings.Contains(stream.String(), want) {
			t.Errorf("stream lacks %q:\n%s", want, stream.String())
		}
	}
	if !strings.HasPrefix(auxID, "sha256:") || !strings.Contains(stream.String(), "Successfully built "+auxID[7:19]) {
		t.Errorf("aux ID %q:\n%s", auxID, stream.String())
	}
	// Quiet: the stream is the ID alone.
	out = d.postBuild(t, `q=1&t=api:2&dockerfile=build/App.dockerfile&buildargs={"WHO":"there"}`, tarOf(t, files, false))
	var quiet strings.Builder
	for _, m := range messages(t, out) {
		quiet.WriteString(m.Stream)
	}
	if quiet.String() != auxID+"\n" {
		t.Errorf("quiet stream %q, want the ID %s", quiet.String(), auxID)
	}
	// A lone Dockerfile as the body (docker build - < Dockerfile).
	out = d.postBuild(t, "t=api:lone", []byte("FROM busybox\nENV LONE=1\n"))
	if !strings.Contains(out, "Successfully tagged api:lone") {
		t.Errorf("lone Dockerfile: %s", out)
	}
	// Errors before the stream: an HTTP status and docker's message shape.
	status, out := d.postBuildStatus(t, "t=api:bad", []byte("FROM busybox\nRUN true\nFOO bar\n"))
	if status != http.StatusBadRequest || !strings.Contains(out, `"message":"dockerfile parse error on line 3: unknown instruction: FOO`) {
		t.Errorf("unknown instruction: %d %s", status, out)
	}
	status, out = d.postBuildStatus(t, "t=Bad%20Name", []byte("FROM busybox\n"))
	if status != http.StatusBadRequest || !strings.Contains(out, "invalid reference format") {
		t.Errorf("bad tag: %d %s", status, out)
	}
	// A failing RUN: an errorDetail with the command's code.
	out = d.postBuild(t, "t=api:bad", []byte("FROM busybox\nRUN echo failing; exit 3\n"))
	ms = messages(t, out)
	last := ms[len(ms)-1]
	if last.ErrorDetail == nil || last.ErrorDetail.Code != 3 || last.Error != "The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3" {
		t.Errorf("failing RUN: %s", out)
	}
	if r := d.docker("image", "inspect", "api:bad"); r.code == 0 {
		t.Errorf("a failed build tagged its image")
	}
}
