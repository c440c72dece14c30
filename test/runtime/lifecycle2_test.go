package runtime_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCreateStartKillDelete(t *testing.T) {
	e := newEnv(t, "sh", "-c", "echo started > /tmp/marker; exec sleep 60")
	e.writeSpec()
	pidFile := filepath.Join(t.TempDir(), "pid")
	if _, errOut, code := e.berth("create", "--bundle", e.bundle, "--pid-file", pidFile, "c1"); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	st := e.state("c1")
	if st.Status != specs.StateCreated || st.Pid == 0 || st.Bundle != e.bundle || st.ID != "c1" {
		t.Fatalf("after create: %+v", st)
	}
	data, _ := os.ReadFile(pidFile)
	if strings.TrimSpace(string(data)) != fmt.Sprint(st.Pid) {
		t.Fatalf("pid file %q, state pid %d", data, st.Pid)
	}
	// The user process has not run yet: the init is still berth.
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.Pid)); filepath.Base(exe) != "berth" {
		t.Fatalf("after create the init runs %q, want berth waiting for start", exe)
	}
	if _, errOut, code := e.berth("start", "c1"); code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	e.waitStatus("c1", specs.StateRunning)
	if _, _, code := e.berth("start", "c1"); code == 0 {
		t.Fatalf("second start succeeded")
	}
	out, _, _ := e.berth("list")
	if !strings.Contains(out, "c1") || !strings.Contains(out, "running") {
		t.Fatalf("list: %s", out)
	}
	out, _, _ = e.berth("list", "--format", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		t.Fatalf("list json: %v %s", err, out)
	}
	out, errOut, code := e.berth("ps", "--format", "json", "c1")
	if code != 0 || !strings.Contains(out, fmt.Sprint(st.Pid)) {
		t.Fatalf("ps: %s %s", out, errOut)
	}
	if _, errOut, code := e.berth("delete", "c1"); code == 0 || !strings.Contains(errOut, "not stopped") {
		t.Fatalf("delete of a running container: exit %d %s", code, errOut)
	}
	if _, errOut, code := e.berth("kill", "c1", "KILL"); code != 0 {
		t.Fatalf("kill: %s", errOut)
	}
	e.waitStatus("c1", specs.StateStopped)
	if _, errOut, code := e.berth("delete", "c1"); code != 0 {
		t.Fatalf("delete: %s", errOut)
	}
	if _, errOut, code := e.berth("state", "c1"); code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("state after delete: %d %s", code, errOut)
	}
	assertGone(t, st.Pid, "c1")
}

// assertGone checks that nothing of a deleted container remains.
func assertGone(t *testing.T, pid int, name string) {
	t.Helper()
	if err := unix.Kill(pid, 0); err == nil {
		if data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(data), ") Z") {
			t.Errorf("process %d still alive", pid)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), "berth-runtime-test") || strings.Contains(string(mi), "/bundle") {
		t.Errorf("a mount of the container is left on the host")
	}
	filepath.Walk("/sys/fs/cgroup", func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() && strings.HasSuffix(p, "/"+sanitize(t.Name())) {
			t.Errorf("cgroup %s left behind", p)
		}
		if err == nil && info.IsDir() && strings.Count(p, "/") > 6 {
			return filepath.SkipDir
		}
		return nil
	})
}

func TestKillSignalAndExitCode(t *testing.T) {
	e := newEnv(t, "sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done")
	e.writeSpec()
	out := filepath.Join(t.TempDir(), "out")
	f, _ := os.Create(out)
	defer f.Close()
	done := make(chan int, 1)
	go func() {
		_, _, code := e.berth("run", "--bundle", e.bundle, "sig")
		done <- code
	}()
	e.waitStatus("sig", specs.StateRunning)
	time.Sleep(200 * time.Millisecond)
	if _, errOut, code := e.berth("kill", "sig", "TERM"); code != 0 {
		t.Fatalf("kill: %s", errOut)
	}
	select {
	case code := <-done:
		if code != 42 {
			t.Fatalf("exit code %d, want 42", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("container did not exit on SIGTERM")
	}
}

func TestKilledBySignalExitCode(t *testing.T) {
	e := newEnv(t, "sleep", "60")
	e.writeSpec()
	done := make(chan int, 1)
	go func() {
		_, _, code := e.berth("run", "--bundle", e.bundle, "k9")
		done <- code
	}()
	e.waitStatus("k9", specs.StateRunning)
	e.berth("kill", "k9", "9")
	select {
	case code := <-done:
		if code != 137 {
			t.Fatalf("exit code %d, want 137", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("container did not die")
	}
}

func TestExec(t *testing.T) {
	e := newEnv(t, "sleep", "60")
	e.spec.Hostname = "exec-box"
	e.writeSpec()
	if _, errOut, code := e.berth("run", "-d", "--bundle", e.bundle, "ex"); code != 0 {
		t.Fatalf("run -d: %s", errOut)
	}
	st := e.waitStatus("ex", specs.StateRunning)
	out, errOut, code := e.berth("exec", "--env", "X=1", "--cwd", "/etc", "ex", "sh", "-c", "hostname; echo $X; pwd; echo $$; ps -o pid,comm | grep -c sleep")
	if code != 0 {
		t.Fatalf("exec: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || lines[0] != "exec-box" || lines[1] != "1" || lines[2] != "/etc" || lines[3] == "1" || lines[4] != "1" {
		t.Fatalf("exec output %q", out)
	}
	// Same namespaces and cgroup as the init.
	out, _, _ = e.berth("exec", "ex", "sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid")
	for _, ns := range []string{"net", "mnt", "pid"} {
		want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", st.Pid, ns))
		if !strings.Contains(out, want) {
			t.Errorf("exec not in the container's %s namespace (%s): %s", ns, want, out)
		}
	}
	if _, _, code := e.berth("exec", "ex", "sh", "-c", "exit 7"); code != 7 {
		t.Fatalf("exec exit code %d, want 7", code)
	}
	if _, errOut, code := e.berth("exec", "ex", "nosuchcmd"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("exec of a missing command: %d %s", code, errOut)
	}
	out, _, _ = e.berth("exec", "--user", "1000:1000", "ex", "id", "-u")
	if strings.TrimSpace(out) != "1000" {
		t.Fatalf("exec --user: %q", out)
	}
	// No host fd leaks into an exec'd process.
	out, _, _ = e.berth("exec", "ex", "ls", "/proc/self/fd")
	if strings.TrimSpace(out) != "0\n1\n2\n3" && strings.TrimSpace(out) != "0\n1\n2" {
		t.Fatalf("exec sees fds %q", out)
	}
}

func TestExecInUserNamespace(t *testing.T) {
	e := newEnv(t, "sleep", "60")
	e.spec.Linux.Namespaces = append(e.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	e.writeSpec()
	if _, errOut, code := e.berth("run", "-d", "--bundle", e.bundle, "uex"); code != 0 {
		t.Fatalf("run -d: %s", errOut)
	}
	e.waitStatus("uex", specs.StateRunning)
	out, errOut, code := e.berth("exec", "uex", "cat", "/proc/self/uid_map")
	if code != 0 || len(strings.Fields(out)) < 3 || strings.Fields(out)[1] != "200000" {
		t.Fatalf("exec in userns: %d %q %s", code, out, errOut)
	}
}

func TestNoHostFDsLeak(t *testing.T) {
	e := newEnv(t, "sh", "-c", "ls /proc/self/fd; readlink /proc/1/cwd")
	out := e.mustRun("fds")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// ls itself opens one fd for the directory it reads.
	if len(lines) > 5 || lines[len(lines)-1] != "/" {
		t.Fatalf("container sees fds/cwd: %q", out)
	}
}

func TestBinaryIsNotWritableFromContainer(t *testing.T) {
	// During create the init is berth, visible to anything that shares its
	// pid namespace (an exec into the created container): its
	// /proc/PID/exe must not be writable.
	t.Run("direct", func(t *testing.T) {
		// The direct init is a fork of berth: not dumpable, so a process
		// of the container may not even open /proc/1/exe.
		e := newEnv(t, "sleep", "60")
		e.writeSpec()
		if _, errOut, code := e.berth("create", "--bundle", e.bundle, "exe"); code != 0 {
			t.Fatalf("create: %s", errOut)
		}
		out, errOut, code := e.berth("exec", "exe", "sh", "-c", "exec 3</proc/1/exe && echo opened")
		if code == 0 || strings.Contains(out, "opened") || !strings.Contains(errOut+out, "denied") {
			t.Fatalf("a container process opened the init's /proc/1/exe: exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("exec", func(t *testing.T) { exeOnReadOnlyMount(t) })
}

func exeOnReadOnlyMount(t *testing.T) {
	e := newEnv(t, "sleep", "60")
	e.environ = []string{"BERTH_DIRECT_INIT=0"}
	e.writeSpec()
	if _, errOut, code := e.berth("create", "--bundle", e.bundle, "exe"); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	st := e.state("exe")
	_, err := os.OpenFile(fmt.Sprintf("/proc/%d/exe", st.Pid), os.O_WRONLY, 0)
	if err == nil {
		t.Fatal("the berth binary of a created container is writable through /proc/PID/exe")
	}
	if !strings.Contains(err.Error(), "read-only") && !strings.Contains(err.Error(), "text file busy") {
		t.Fatalf("unexpected error: %v", err)
	}
	// ETXTBSY alone would also come from an unprotected binary while it
	// runs; the protection is the read-only mount the exe is seen through,
	// which still holds for an O_PATH handle kept after the process exits.
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", st.Pid), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		t.Fatal("the init's /proc/PID/exe is not on a read-only mount")
	}
}

func TestConsoleSocket(t *testing.T) {
	t.Run("direct", func(t *testing.T) { consoleSocket(t, nil) })
	t.Run("exec", func(t *testing.T) { consoleSocket(t, []string{"BERTH_DIRECT_INIT=0"}) })
}

// consoleSocket: a terminal through a console socket, on either init path.
func consoleSocket(t *testing.T, environ []string) {
	e := newEnv(t, "sh", "-c", "tty; stty size")
	e.environ = environ
	e.spec.Process.Terminal = true
	e.spec.Process.ConsoleSize = &specs.Box{Height: 33, Width: 101}
	e.writeSpec()
	sock := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	masterc := make(chan *os.File, 1)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			masterc <- nil
			return
		}
		defer conn.Close()
		buf := make([]byte, 256)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			masterc <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&msgs[0])
		masterc <- os.NewFile(uintptr(fds[0]), "master")
	}()
	if _, errOut, code := e.berth("create", "--bundle", e.bundle, "--console-socket", sock, "tty"); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	master := <-masterc
	if master == nil {
		t.Fatal("no pty master received")
	}
	defer master.Close()
	if _, errOut, code := e.berth("start", "tty"); code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	var got strings.Builder
	buf := make([]byte, 1024)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(got.String(), "101") {
		master.SetReadDeadline(time.Now().Add(time.Second))
		n, err := master.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(got.String(), "/dev/pts/0") || !strings.Contains(got.String(), "33 101") {
		t.Fatalf("tty output %q", got.String())
	}
}

func TestHookOrder(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks.log")
	hook := func(name string) specs.Hook {
		// Hooks get the state on stdin: record the name and the status.
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", fmt.Sprintf(`read -r s; st=$(echo "$s" | sed 's/.*"status":"\([a-z]*\)".*/\1/'); echo "%s $st" >> %s`, name, log)}}
	}
	// The process stays until poststart has run, so that poststart sees it
	// running however slowly a busy machine runs the hook.
	e := newEnv(t, "sh", "-c", "echo run >> /hooklog/hooks.log; i=0; while ! grep -q poststart /hooklog/hooks.log && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done")
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}})
	e.spec.Hooks = &specs.Hooks{
		Prestart:      []specs.Hook{hook("prestart")},
		CreateRuntime: []specs.Hook{hook("createRuntime")},
		// createContainer runs in the container's namespaces before
		// pivot_root, startContainer inside the container's root.
		CreateContainer: []specs.Hook{hook("createContainer")},
		StartContainer:  []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "read -r s; echo startContainer >> /hooklog/hooks.log"}}},
		Poststart:       []specs.Hook{hook("poststart")},
		Poststop:        []specs.Hook{hook("poststop")},
	}
	e.mustRun("hooks")
	data, _ := os.ReadFile(log)
	// poststart runs once the process has been started, so its line and the
	// process's own are in either order; everything else is sequential.
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var order []string
	for _, l := range lines {
		if l != "run" {
			order = append(order, l)
		}
	}
	want := []string{"prestart creating", "createRuntime creating", "createContainer creating", "startContainer", "poststart running", "poststop stopped"}
	if strings.Join(order, "|") != strings.Join(want, "|") || len(lines) != len(want)+1 {
		t.Fatalf("hook log:\n%s\nwant hooks in order %q plus the process's line", data, want)
	}
	runAt, startAt := -1, -1
	for i, l := range lines {
		switch l {
		case "run":
			runAt = i
		case "startContainer":
			startAt = i
		}
	}
	if runAt < startAt {
		t.Fatalf("the process ran before the startContainer hook:\n%s", data)
	}
}

func TestHookTimeout(t *testing.T) {
	e := newEnv(t, "true")
	one := 1
	e.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "10"}, Timeout: &one}}}
	start := time.Now()
	_, errOut, code := e.run("hooktimeout")
	if code == 0 || !strings.Contains(errOut, "timed out") {
		t.Fatalf("hook timeout: %d %s", code, errOut)
	}
	if time.Since(start) > 8*time.Second {
		t.Fatalf("timeout not enforced")
	}
	if _, err := os.Stat(filepath.Join(e.root, "hooktimeout")); !os.IsNotExist(err) {
		t.Fatalf("state left after failed create")
	}
}

func TestPauseResumeUpdate(t *testing.T) {
	e := newEnv(t, "sh", "-c", "while true; do date +%s%N > /tmp/tick; sleep 0.05; done")
	e.writeSpec()
	if _, errOut, code := e.berth("run", "-d", "--bundle", e.bundle, "pz"); code != 0 {
		t.Fatalf("run -d: %s", errOut)
	}
	e.waitStatus("pz", specs.StateRunning)
	if _, errOut, code := e.berth("pause", "pz"); code != 0 {
		t.Fatalf("pause: %s", errOut)
	}
	if st := e.state("pz"); st.Status != "paused" {
		t.Fatalf("after pause: %s", st.Status)
	}
	if _, errOut, code := e.berth("delete", "pz"); code == 0 || !strings.Contains(errOut, "paused") {
		t.Fatalf("delete of a paused container: %d %s", code, errOut)
	}
	if _, errOut, code := e.berth("resume", "pz"); code != 0 {
		t.Fatalf("resume: %s", errOut)
	}
	e.waitStatus("pz", specs.StateRunning)
	if _, errOut, code := e.berth("update", "--pids-limit", "33", "pz"); code != 0 {
		t.Fatalf("update: %s", errOut)
	}
	data, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids/berth-test", sanitize(t.Name()), "pids.max"))
	if strings.TrimSpace(string(data)) != "33" {
		t.Fatalf("pids.max after update = %q", data)
	}
	out, _, code := e.berth("events", "--stats", "pz")
	if code != 0 || !strings.Contains(out, `"type":"stats"`) {
		t.Fatalf("events --stats: %d %s", code, out)
	}
}
