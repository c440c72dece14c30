package progress

import (
	"bytes"
	"strings"
	"testing"
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
