package build_test

import (
	"strings"
	"testing"
)

func TestSmoke(t *testing.T) {
	d := startDaemon(t)
	dir := contextDir(t, map[string]string{
		"Dockerfile": "FROM busybox\nRUN echo hello > /hello && echo ran\nRUN cat /hello\nCOPY app.txt /app/\nENV GREETING=hi\nWORKDIR /app\nCMD [\"cat\", \"app.txt\"]\n",
		"app.txt":    "the app\n",
	})
	r := d.must(d.run(dir, nil, dockerCLI, "build", "-t", "smoke:1", "."))
	t.Log(r.out, r.err)
	r = d.must(d.docker("run", "--rm", "smoke:1"))
	if r.out != "the app\n" {
		t.Fatalf("run: %q", r.out)
	}
	r = d.must(d.run(dir, nil, dockerCLI, "build", "-t", "smoke:1", "."))
	t.Log(r.out)
	if strings.Count(r.out, "Using cache") != 6 {
		t.Fatalf("not all cached")
	}
}
