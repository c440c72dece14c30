package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oneLine fails unless stderr is exactly one line with no Go panic in it.
func oneLine(t *testing.T, what string, r result) {
	t.Helper()
	if strings.Count(r.err, "\n") != 1 || strings.Contains(r.err, "goroutine ") {
		t.Errorf("%s: stderr is not one line: %q", what, r.err)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	bin := berthBinary(t)
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, env := range [][]string{{"BERTH_HOST=unix://" + sock}, {"DOCKER_HOST=unix://" + sock}} {
		for _, args := range [][]string{{"ps"}, {"images"}, {"info"}, {"rm", "x"}, {"logs", "x"}, {"inspect", "x"}} {
			r := run(t, env, bin, args...)
			want := "cannot connect to berth at unix://" + sock + ": is `berth daemon` running?\n"
			if r.code != 1 || r.err != want || r.out != "" {
				t.Errorf("%v %v: exit %d, stderr %q, stdout %q; want exit 1, %q", env, args, r.code, r.err, r.out, want)
			}
		}
	}
	// run fails before the container exists: docker's 125.
	r := run(t, []string{"BERTH_HOST=unix://" + sock}, bin, "run", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.err, "cannot connect to berth") {
		t.Errorf("run: exit %d, %q", r.code, r.err)
	}
	oneLine(t, "run", r)
	// -H before the verb wins over the environment, as docker's.
	r = run(t, []string{"BERTH_HOST=unix:///nonexistent/b.sock"}, bin, "-H", "unix://"+sock, "ps")
	if r.code != 1 || !strings.Contains(r.err, "berth at unix://"+sock+":") {
		t.Errorf("-H: %+v", r)
	}
	// BERTH_HOST wins over DOCKER_HOST; the default is berth's socket.
	r = run(t, []string{"BERTH_HOST=unix://" + sock, "DOCKER_HOST=unix:///nonexistent/docker.sock"}, bin, "ps")
	if !strings.Contains(r.err, sock) {
		t.Errorf("BERTH_HOST did not win: %q", r.err)
	}
	if _, err := os.Stat("/run/berth/berth.sock"); os.IsNotExist(err) {
		r = run(t, nil, bin, "ps")
		if r.err != "cannot connect to berth at unix:///run/berth/berth.sock: is `berth daemon` running?\n" || r.code != 1 {
			t.Errorf("default host: exit %d, %q", r.code, r.err)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	for _, flag := range []string{"--version", "-v"} {
		r := run(t, nil, berthBinary(t), flag)
		if r.code != 0 || !strings.HasPrefix(r.out, "berth version ") {
			t.Errorf("berth %s: %+v", flag, r)
		}
	}
}

// TestUsageErrors checks docker's exit statuses for bad input, which are
// decided before any daemon is dialled.
func TestUsageErrors(t *testing.T) {
	bin := berthBinary(t)
	env := []string{"BERTH_HOST=unix://" + filepath.Join(t.TempDir(), "none.sock")}
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"ps", "foo"}, 1, `"berth ps" accepts no arguments`},
		{[]string{"ps", "--x"}, 125, "unknown flag: --x"},
		{[]string{"images", "--x"}, 125, "unknown flag: --x"},
		{[]string{"run", "--x"}, 125, "unknown flag: --x"},
		{[]string{"create", "--x"}, 125, "unknown flag: --x"},
		{[]string{"run"}, 1, `"berth run" requires at least 1 argument`},
		{[]string{"start"}, 1, `"berth start" requires at least 1 argument`},
		{[]string{"logs"}, 1, `"berth logs" requires exactly 1 argument`},
		{[]string{"container", "foo"}, 1, "unknown command: berth container foo"},
		{[]string{"rename", "a"}, 1, `"berth rename" requires exactly 2 arguments`},
		{[]string{"ps", "--format", "{{.Foo"}, 1, "template parsing error: template: :1: unclosed action"},
		{[]string{"inspect", "-f", "{{.Foo", "x"}, 64, "template parsing error"},
		{[]string{"version", "--format", "{{.Foo"}, 64, "template parsing error"},
		{[]string{"run", "--restart", "sometimes", "busybox"}, 125, "invalid restart policy"},
		{[]string{"run", "-m", "lots", "busybox"}, 125, `invalid argument "lots"`},
	}
	for _, c := range cases {
		r := run(t, env, bin, c.args...)
		if r.code != c.code || !strings.Contains(r.err, c.msg) {
			t.Errorf("berth %v: exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.err, c.code, c.msg)
		}
		oneLine(t, strings.Join(c.args, " "), r)
	}
	// The same exit statuses as docker's CLI, where docker decides them
	// without a daemon too.
	if _, err := os.Stat(dockerCLI); err == nil {
		for _, args := range [][]string{{"ps", "foo"}, {"ps", "--x"}, {"run", "--x"}, {"run"}, {"logs"}, {"inspect", "-f", "{{.Foo", "x"}, {"version", "--format", "{{.Foo"}} {
			b, d := run(t, env, bin, args...), run(t, []string{"DOCKER_HOST=" + env[0][len("BERTH_HOST="):]}, dockerCLI, args...)
			if b.code != d.code {
				t.Errorf("%v: berth exits %d, docker %d", args, b.code, d.code)
			}
		}
	}
}
