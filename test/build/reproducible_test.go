package build_test

import (
	"strings"
	"testing"
)

// TestSourceDateEpoch builds the same inputs twice without the cache: with
// SOURCE_DATE_EPOCH the image digests match and every time is the epoch;
// without it they differ (the creation time is in the config).
func TestSourceDateEpoch(t *testing.T) {
	d := startDaemon(t)
	dir := contextDir(t, map[string]string{
		"Dockerfile": "FROM busybox\nRUN mkdir -p /out && echo built > /out/f && touch /out/g\nCOPY . /src/\nENV A=1\n",
		"x":          "x\n",
	})
	ids := map[string]bool{}
	for _, tag := range []string{"r:1", "r:2"} {
		r := d.must(d.run(dir, nil, dockerCLI, "build", "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", tag, "."))
		if strings.Contains(r.out, "were not consumed") {
			t.Errorf("SOURCE_DATE_EPOCH reported as unused:\n%s", r.out)
		}
		_, _, id := d.inspect(tag)
		ids[id] = true
	}
	if len(ids) != 1 {
		t.Errorf("SOURCE_DATE_EPOCH builds differ: %v", ids)
	}
	if got := d.must(d.docker("image", "inspect", "-f", "{{.Created}}", "r:1")).out; got != "2023-11-14T22:13:20Z\n" {
		t.Errorf("Created = %q", got)
	}
	if got := d.must(d.docker("run", "--rm", "r:1", "stat", "-c", "%Y", "/out/g", "/src/x")).out; got != "1700000000\n1700000000\n" {
		t.Errorf("file mtimes %q, want the epoch", got)
	}
	// berth's CLI passes SOURCE_DATE_EPOCH from its environment, as buildx does.
	d.must(d.run(dir, []string{"SOURCE_DATE_EPOCH=1700000000"}, binary(t), "build", "--no-cache", "-t", "r:3", "."))
	if _, _, id := d.inspect("r:3"); !ids[id] {
		t.Errorf("berth build with SOURCE_DATE_EPOCH in the environment gave %s, want %v", id, ids)
	}
	d.must(d.run(dir, nil, dockerCLI, "build", "--no-cache", "-t", "r:4", "."))
	if _, _, id := d.inspect("r:4"); ids[id] {
		t.Errorf("a build without SOURCE_DATE_EPOCH has the same ID")
	}
}
