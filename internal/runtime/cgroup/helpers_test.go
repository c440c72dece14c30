package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// helperEnv makes the test binary act as a helper process instead of
// running tests. Every helper waits for a line on stdin before it acts, so
// the test can move it into a cgroup first.
const helperEnv = "BERTH_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	// A test that fails half-way can leave the shared /berth parent of
	// the default cgroup path behind; take it away if this run made it.
	clean := testutil.CgroupParents("berth")
	code := m.Run()
	clean()
	os.Exit(code)
}

// runHelper is the helper process' main. Modes:
//
//	hog:N    allocate and touch N MiB, print "allocated", wait for EOF
//	spin     burn 30ms of CPU, print "spun", wait for EOF
//	tick     print "." every 5ms until killed
//	open:P   open each comma-separated path P, print "ok" or the error per path
func runHelper(mode string) int {
	// Up and running: the test may now change its cgroup without racing
	// the start-up of the process (a deny-all device policy would
	// otherwise catch the test binary opening /dev/null).
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return 2
	}
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "hog":
		mib, err := strconv.Atoi(arg)
		if err != nil {
			return 2
		}
		buf := make([]byte, mib<<20)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
		fmt.Println("allocated")
		_, _ = io.Copy(io.Discard, in)
		return int(buf[len(buf)-4096]) - 1
	case "spin":
		// Until 30ms of CPU are used, however long a busy machine makes
		// that take: the test checks the cgroup's accounting, not speed.
		for {
			var ru syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= 30*time.Millisecond {
				break
			}
		}
		fmt.Println("spun")
		_, _ = io.Copy(io.Discard, in)
		return 0
	case "tick":
		for {
			if _, err := os.Stdout.WriteString("."); err != nil {
				return 0
			}
			time.Sleep(5 * time.Millisecond)
		}
	case "open":
		var results []string
		for p := range strings.SplitSeq(arg, ",") {
			f, err := os.Open(p)
			if err != nil {
				var errno syscall.Errno
				if errors.As(err, &errno) {
					results = append(results, unix.ErrnoName(errno))
				} else {
					results = append(results, err.Error())
				}
				continue
			}
			f.Close()
			results = append(results, "ok")
		}
		fmt.Println(strings.Join(results, " "))
		return 0
	}
	return 2
}

// helper is a running helper process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	done  chan error
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// startHelper starts the test binary in the given helper mode; cleanup
// kills it by PID and reaps it.
func startHelper(t *testing.T, mode string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	h := startProcess(t, cmd)
	if got := h.readLine(t); got != "ready" {
		t.Fatalf("helper %d started with %q", h.pid(), got)
	}
	return h
}

// startSleep starts `sleep 100`.
func startSleep(t *testing.T) *helper {
	t.Helper()
	return startProcess(t, exec.Command("sleep", "100"))
}

func startProcess(t *testing.T, cmd *exec.Cmd) *helper {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A pipe of our own, not StdoutPipe: Wait (on its goroutine below)
	// closes StdoutPipe's read end when the process exits, which can be
	// before its last line has been read.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdout.Close() })
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	h := &helper{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), done: make(chan error, 1)}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = unix.Kill(h.pid(), unix.SIGKILL)
		_ = stdin.Close()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Errorf("helper %d did not exit", h.pid())
		}
	})
	return h
}

// kick lets the helper act.
func (h *helper) kick(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		t.Fatalf("kick helper %d: %v", h.pid(), err)
	}
}

func (h *helper) readLine(t *testing.T) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := h.out.ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %d said nothing", h.pid())
		return ""
	}
}

// wait returns the process' exit error, failing the test after 10s.
func (h *helper) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("process %d did not exit", h.pid())
		return nil
	}
}

// killedBy reports whether err is a process exit by signal sig.
func killedBy(err error, sig syscall.Signal) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// procState is the state letter in /proc/PID/stat (R, S, D, ...).
func procState(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name is in parentheses and may hold spaces.
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	return rest[:1]
}

// requireV1 skips unless running as root on a host with v1 hierarchies.
func requireV1(t testing.TB) hierarchy {
	t.Helper()
	testutil.RequireRoot(t)
	h, err := detectHierarchy()
	if err != nil {
		t.Fatal(err)
	}
	if h.isV2() {
		t.Skip("host runs cgroup v2 only; no v1 hierarchies to test")
	}
	return h
}

// requireV2 returns a hierarchy over a real cgroup2 mount: the host's
// /sys/fs/cgroup on a v2 host, or the cgroup2 tree of a hybrid host. It
// restores the root's cgroup.subtree_control after the test, since Apply
// enables controllers there.
func requireV2(t testing.TB) hierarchy {
	t.Helper()
	testutil.RequireRoot(t)
	h, err := detectHierarchy()
	if err != nil {
		t.Fatal(err)
	}
	root := h.unified
	if root == "" {
		root = h.hybrid
	}
	if root == "" {
		t.Skip("no cgroup2 mount on this host")
	}
	before, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		after, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
		if err != nil {
			t.Error(err)
			return
		}
		for _, c := range strings.Fields(string(after)) {
			if !strings.Contains(" "+string(before)+" ", " "+c+" ") {
				err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("-"+c), 0)
				switch {
				case errors.Is(err, unix.EBUSY):
					// Some cgroup not made here (another test run) now
					// uses the controller too; it is theirs to keep.
					t.Logf("leaving %s enabled in %s/cgroup.subtree_control: in use below", c, root)
				case err != nil:
					t.Errorf("restore %s/cgroup.subtree_control: %v", root, err)
				}
			}
		}
	})
	return hierarchy{unified: root}
}

// testCgroupPath is a cgroupsPath unique to this test run, under a parent
// of its own.
func testCgroupPath(t testing.TB) string {
	return fmt.Sprintf("/berth-test-%d/%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
}

// manage builds a manager and makes sure its directories and their parent
// are gone at the end. Processes started after this call are killed
// before (cleanups run last-in first-out).
func manage(t testing.TB, h hierarchy, res *specs.LinuxResources) *Manager {
	t.Helper()
	m, err := newManager(testCgroupPath(t), "", res, h)
	if err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s still exists after Destroy", p)
			}
			if err := unix.Rmdir(filepath.Dir(p)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EBUSY) {
				t.Errorf("remove test parent %s: %v", filepath.Dir(p), err)
			}
		}
	})
	return m
}

// readCgroupFile returns a cgroup file's content without the trailing newline.
func readCgroupFile(t *testing.T, dir, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func ptr[T any](v T) *T { return &v }
