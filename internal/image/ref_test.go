package image

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestParseReference(t *testing.T) {
	const d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, c := range []struct{ in, want, familiar string }{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"},
		{"user/app:v1.0-rc_1", "docker.io/user/app:v1.0-rc_1", "user/app:v1.0-rc_1"},
		{"localhost:5000/app@" + d, "localhost:5000/app@" + d, "localhost:5000/app@" + d},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest"},
		{"127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"},
		{"Registry.Example.com/x", "Registry.Example.com/x:latest", "Registry.Example.com/x:latest"},
		{"[::1]:5000/app:1", "[::1]:5000/app:1", "[::1]:5000/app:1"},
		{"busybox:1.36@" + d, "docker.io/library/busybox:1.36@" + d, "busybox:1.36@" + d},
		{"a__b/c-d---e.f_g", "docker.io/a__b/c-d---e.f_g:latest", "a__b/c-d---e.f_g:latest"},
	} {
		r, err := ParseReference(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if r.String() != c.want || r.Familiar() != c.familiar {
			t.Errorf("%q: got %q / %q, want %q / %q", c.in, r.String(), r.Familiar(), c.want, c.familiar)
		}
	}
	for _, bad := range []string{
		"", "Busybox", "busybox:", ":tag", "busybox:-x", "busybox:.x", "a//b", "-a", "a-", "a..b", "a___b",
		"busybox@sha256:abc", "busybox@md5:" + d[7:], "https://docker.io/busybox", "host:port/app",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "a/b:" + string(make([]byte, 129)),
		"bad_host_/x",
	} {
		if r, err := ParseReference(bad); err == nil || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: got %v, %v; want an invalid-argument error", bad, r, err)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "amd64": "linux/amd64", "linux/x86_64": "linux/amd64",
		"linux/arm64": "linux/arm64/v8", "linux/aarch64": "linux/arm64/v8", "linux/arm/v7": "linux/arm/v7",
	} {
		p, err := ParsePlatform(in)
		if err != nil || FormatPlatform(p) != want {
			t.Errorf("%q: got %v %v, want %s", in, FormatPlatform(p), err, want)
		}
	}
	if _, err := ParsePlatform("a/b/c/d"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a/b/c/d: %v", err)
	}
}

func TestParseNamedDockerWording(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{in: "busybox", want: "docker.io/library/busybox"},
		{in: "busybox:1.36", want: "docker.io/library/busybox:1.36"},
		{in: "localhost:5000/app", want: "localhost:5000/app"},
		{in: "Busybox", err: "invalid reference format: repository name (library/Busybox) must be lowercase"},
		{in: "example.com/App:v1", err: "invalid reference format: repository name (App) must be lowercase"},
		{in: strings.Repeat("a", 64), err: "invalid repository name (" + strings.Repeat("a", 64) + "), cannot specify 64-byte hexadecimal strings"},
		{in: "bad name", err: "invalid reference format"},
		{in: "", err: "invalid reference format"},
		{in: "x/" + strings.Repeat("a", 300), err: "repository name must not be more than 255 characters"},
	} {
		r, err := ParseNamed(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || r.String() != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, r.String(), err, c.want)
		}
	}
	r, _ := ParseNamed("localhost:5000/app@sha256:" + strings.Repeat("a", 64))
	if _, err := r.WithTag("-x"); err == nil || err.Error() != "invalid tag format" {
		t.Errorf("bad tag: %v", err)
	}
	if r, _ := ParseNamed("busybox"); r.OrLatest().Familiar() != "busybox:latest" || r.FamiliarName() != "busybox" {
		t.Errorf("familiar forms of %v", r)
	}
}
