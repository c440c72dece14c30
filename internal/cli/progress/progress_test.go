package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlain(t *testing.T) {
	in := strings.Join([]string{
		`{"status":"latest: Pulling from x"}`,
		`{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}`,
		`{"status":"Downloading","progressDetail":{"current":10,"total":100},"id":"abc"}`,
		`{"status":"Pull complete","progressDetail":{},"id":"abc"}`,
		`{"aux":{"Tag":"latest"}}`,
		`{"stream":"raw text\n"}`,
		`{"status":"Digest: sha256:00"}`,
	}, "\n")
	var b bytes.Buffer
	if err := Plain(&b, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := "latest: Pulling from x\nabc: Pulling fs layer\nabc: Pull complete\nraw text\nDigest: sha256:00\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	err := Plain(&b, strings.NewReader(`{"status":"x"}`+"\n"+`{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}`))
	if err == nil || err.Error() != "manifest unknown" {
		t.Errorf("error message: %v", err)
	}
	if err := Plain(&b, strings.NewReader("{bad")); err == nil {
		t.Error("a broken stream was accepted")
	}
}

func TestLive(t *testing.T) {
	clock := time.Unix(0, 0)
	in := strings.Join([]string{
		`{"status":"latest: Pulling from x"}`,
		`{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}`,
		`{"status":"Pulling fs layer","progressDetail":{},"id":"bbb"}`,
		`{"status":"Downloading","progressDetail":{"current":1000000,"total":4000000},"id":"aaa"}`,
		`{"status":"Downloading","progressDetail":{"current":3000000,"total":4000000},"id":"aaa"}`,
		`{"status":"Pull complete","progressDetail":{},"id":"aaa"}`,
		`{"status":"Already exists","progressDetail":{},"id":"bbb"}`,
		`{"status":"Digest: sha256:00"}`,
	}, "\n")
	var b bytes.Buffer
	l := &live{out: &b, width: 80, layers: map[string]*layer{}, now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	if err := liveWith(l, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"latest: Pulling from x\n", "aaa: Downloading [", "3MB/4MB", "kB/s ETA 2s", "aaa: Pull complete\nbbb: Already exists\n", "Digest: sha256:00\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("live output lacks %q:\n%q", want, out)
		}
	}
	// Once both layers have ended the digest comes below them, as docker
	// ends a pull, and nothing is redrawn after it.
	if !strings.HasSuffix(out, "aaa: Pull complete\nbbb: Already exists\nDigest: sha256:00\n") || strings.LastIndex(out, "Digest") < strings.LastIndex(out, "Pulling fs layer") {
		t.Errorf("final screen:\n%q", out[max(0, len(out)-120):])
	}
}
