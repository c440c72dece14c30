package seccomp

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Loading a filter is irreversible for the thread, so every loading test runs
// in a child: the test binary re-executed into TestHelperProcess, which locks
// its thread, sets no_new_privs, loads the scenario's filter and then either
// execs busybox with the given arguments or makes raw syscalls and prints
// what they returned.

const helperEnv = "BERTH_SECCOMP_HELPER"

// A scenario is a profile plus, optionally, a probe to run under it instead
// of exec'ing busybox.
type scenario struct {
	profile func(t testing.TB) *specs.LinuxSeccomp
	probe   func(w *bufio.Writer) // raw syscalls on the filtered thread
}

// getppid ignores its arguments, but the filter sees them, which makes it a
// harmless carrier for testing every operator on a real kernel: rule k fires
// when arg1 == k and arg0 <op k> the value below, returning errno 200+k.
var operatorProbes = []struct {
	op    specs.LinuxSeccompOperator
	value uint64
	mask  uint64 // ValueTwo, for MASKED_EQ
}{
	{specs.OpEqualTo, 0x1_00000005, 0},
	{specs.OpNotEqual, 0x1_00000005, 0},
	{specs.OpLessThan, 0x1_00000005, 0},
	{specs.OpLessEqual, 0x1_00000005, 0},
	{specs.OpGreaterThan, 0x1_00000005, 0},
	{specs.OpGreaterEqual, 0x1_00000005, 0},
	{specs.OpMaskedEqual, 0xff_000000f0, 0x01_00000050},
}

// operatorInputs are the arg0 values tried against each operator probe.
var operatorInputs = []uint64{0, 4, 5, 6, 0x1_00000000, 0x1_00000004, 0x1_00000005, 0x1_00000006,
	0x2_00000005, 0x0_ffffffff, 0xffffffff_ffffffff, 0x01_00000050, 0x01_0000005f, 0x02_00000050, 0x01_000000f0}

func allowAll(rules ...specs.LinuxSyscall) func(testing.TB) *specs.LinuxSeccomp {
	return func(testing.TB) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules}
	}
}

var mkdirNames = []string{"mkdir", "mkdirat"}

var mkdirDenied = allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActErrno})

var scenarios = map[string]scenario{
	"mkdir-eperm":        {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActErrno})},
	"mkdir-erofs":        {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EROFS))})},
	"mkdir-kill":         {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActKill})},
	"mkdir-kill-thread":  {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActKillThread})},
	"mkdir-kill-process": {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActKillProcess})},
	"mkdir-trap":         {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActTrap})},
	"mkdir-trace":        {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActTrace})},
	"mkdir-log":          {profile: allowAll(specs.LinuxSyscall{Names: mkdirNames, Action: specs.ActLog})},
	"flags": {profile: func(testing.TB) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Flags:    []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
			Syscalls: []specs.LinuxSyscall{{Names: mkdirNames, Action: specs.ActErrno}}}
	}},
	"docker": {profile: func(t testing.TB) *specs.LinuxSeccomp { return dockerProfile(t) }},
	"docker-exdev": {profile: func(t testing.TB) *specs.LinuxSeccomp {
		s := dockerProfile(t)
		s.DefaultErrnoRet = uintp(uint(unix.EXDEV))
		return s
	}},
	"args":      {profile: argsProfile, probe: argsProbe},
	"operators": {profile: operatorsProfile, probe: operatorsProbe},
	"no-alloc":  {profile: mkdirDenied, probe: noAllocProbe},
}

func argsProfile(testing.TB) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"personality"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 0xffffffff}}},
		{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EACCES)),
			Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: unix.AF_INET}}},
		{Names: []string{"inotify_init1"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpMaskedEqual, Value: unix.IN_NONBLOCK, ValueTwo: unix.IN_NONBLOCK}}},
	}}
}

// argsProbe prints "label errno" lines, errno 0 for success.
func argsProbe(w *bufio.Writer) {
	try := func(label string, nr uintptr, args ...uintptr) {
		var a [3]uintptr
		copy(a[:], args)
		r, _, errno := unix.Syscall(nr, a[0], a[1], a[2])
		if errno == 0 && (nr == unix.SYS_SOCKET || nr == unix.SYS_INOTIFY_INIT1) {
			unix.Close(int(r))
		}
		fmt.Fprintf(w, "%s %d\n", label, int(errno))
	}
	try("personality-query", unix.SYS_PERSONALITY, 0xffffffff)
	try("personality-query-high-bits", unix.SYS_PERSONALITY, 0x1_ffffffff)
	try("personality-linux", unix.SYS_PERSONALITY, 0) // PER_LINUX
	try("socket-inet", unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM)
	try("socket-unix", unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM)
	try("inotify-nonblock", unix.SYS_INOTIFY_INIT1, unix.IN_NONBLOCK)
	try("inotify-nonblock-cloexec", unix.SYS_INOTIFY_INIT1, unix.IN_NONBLOCK|unix.IN_CLOEXEC)
	try("inotify-cloexec", unix.SYS_INOTIFY_INIT1, unix.IN_CLOEXEC)
	try("inotify-plain", unix.SYS_INOTIFY_INIT1, 0)
}

func operatorsProfile(testing.TB) *specs.LinuxSeccomp {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for k, p := range operatorProbes {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
			Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(200 + k)),
			Args: []specs.LinuxSeccompArg{
				{Index: 1, Op: specs.OpEqualTo, Value: uint64(k)},
				{Index: 0, Op: p.op, Value: p.value, ValueTwo: p.mask},
			},
		})
	}
	return s
}

func operatorsProbe(w *bufio.Writer) {
	for k := range operatorProbes {
		for _, x := range operatorInputs {
			_, _, errno := unix.Syscall(unix.SYS_GETPPID, uintptr(x), uintptr(k), 0)
			fmt.Fprintf(w, "%d %#x %d\n", k, x, int(errno))
		}
	}
}

// noAllocProbe loads the scenario's filter a few more times and reports the
// allocations Load made.
func noAllocProbe(w *bufio.Writer) {
	p, err := Compile(mkdirDenied(nil))
	if err != nil {
		fmt.Fprintf(w, "compile: %v\n", err)
		return
	}
	var loadErr error
	allocs := testing.AllocsPerRun(5, func() {
		if err := p.Load(); err != nil {
			loadErr = err
		}
	})
	fmt.Fprintf(w, "allocs %v err %v\n", allocs, loadErr)
}

// TestHelperProcess is the child side of the loading tests; it does nothing
// unless started by runHelper.
func TestHelperProcess(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		return
	}
	os.Exit(helperMain(t, name, flag.Args()))
}

func helperMain(t *testing.T, name string, argv []string) int {
	sc, ok := scenarios[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "helper: unknown scenario %q\n", name)
		return 3
	}
	runtime.LockOSThread() // never unlocked: the thread dies with the process
	// The parent put us in a new mount namespace; keep mounts from
	// propagating back to the host in case a filter fails to stop one.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintf(os.Stderr, "helper: make / private: %v\n", err)
		return 3
	}
	p, err := Compile(sc.profile(t))
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: compile: %v\n", err)
		return 3
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "helper: no_new_privs: %v\n", err)
		return 3
	}
	if err := p.Load(); err != nil {
		fmt.Fprintf(os.Stderr, "helper: %v\n", err)
		return 3
	}
	if sc.probe != nil {
		w := bufio.NewWriter(os.Stdout)
		sc.probe(w)
		w.Flush()
		return 0
	}
	err = unix.Exec(testutil.BusyboxPath, append([]string{"busybox"}, argv...), os.Environ())
	fmt.Fprintf(os.Stderr, "helper: exec busybox: %v\n", err)
	return 3
}

// helperResult is what a child did.
type helperResult struct {
	output string
	status syscall.WaitStatus
}

// runHelper runs scenario name in a child, in a new mount namespace, with
// busybox arguments argv (ignored by probe scenarios).
func runHelper(t *testing.T, name string, argv ...string) helperResult {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, argv...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run helper %s: %v", name, err)
	}
	res := helperResult{output: string(out), status: cmd.ProcessState.Sys().(syscall.WaitStatus)}
	if res.status.Exited() && res.status.ExitStatus() == 3 {
		t.Fatalf("helper %s failed before its test: %s", name, out)
	}
	return res
}

func TestLoadMkdirActions(t *testing.T) {
	cases := []struct {
		scenario string
		signal   syscall.Signal // killed by; 0 if it exits
		output   string         // in the output
		created  bool
	}{
		{"mkdir-eperm", 0, "Operation not permitted", false},
		{"mkdir-erofs", 0, "Read-only file system", false},
		{"mkdir-kill", syscall.SIGSYS, "", false},
		{"mkdir-kill-thread", syscall.SIGSYS, "", false},
		{"mkdir-kill-process", syscall.SIGSYS, "", false},
		{"mkdir-trap", syscall.SIGSYS, "", false},
		{"mkdir-trace", 0, "Function not implemented", false}, // no tracer: ENOSYS
		{"mkdir-log", 0, "", true},
		{"flags", 0, "Operation not permitted", false},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "x")
			res := runHelper(t, tc.scenario, "mkdir", dir)
			if tc.signal != 0 {
				if !res.status.Signaled() || res.status.Signal() != tc.signal {
					t.Fatalf("want killed by %v, got %v; output %q", tc.signal, res.status, res.output)
				}
			} else if tc.created != (res.status.ExitStatus() == 0) {
				t.Fatalf("exit status %d; output %q", res.status.ExitStatus(), res.output)
			}
			if !strings.Contains(res.output, tc.output) {
				t.Errorf("output %q does not contain %q", res.output, tc.output)
			}
			if _, err := os.Stat(dir); (err == nil) != tc.created {
				t.Errorf("directory created: %v, want %v", err == nil, tc.created)
			}
		})
	}
}

func TestLoadArgumentConditions(t *testing.T) {
	res := runHelper(t, "args")
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(res.output), "\n") {
		var label string
		var errno int
		if _, err := fmt.Sscanf(line, "%s %d", &label, &errno); err != nil {
			t.Fatalf("bad helper output %q: %v", res.output, err)
		}
		got[label] = errno
	}
	want := map[string]syscall.Errno{
		"personality-query": unix.EPERM,
		// The kernel reads an unsigned int, but the filter compares all 64
		// bits, as libseccomp does: these are different values to it.
		"personality-query-high-bits": 0,
		"personality-linux":           0,
		"socket-inet":                 unix.EACCES,
		"socket-unix":                 0,
		"inotify-nonblock":            unix.EPERM,
		"inotify-nonblock-cloexec":    unix.EPERM,
		"inotify-cloexec":             0,
		"inotify-plain":               0,
	}
	for label, errno := range want {
		if g, ok := got[label]; !ok || syscall.Errno(g) != errno {
			t.Errorf("%s: got errno %d (%v), want %d (%v)", label, g, syscall.Errno(g), int(errno), errno)
		}
	}
}

// TestLoadOperators checks every operator on the kernel against the reference.
func TestLoadOperators(t *testing.T) {
	res := runHelper(t, "operators")
	ref := newReference(operatorsProfile(t), runtime.GOARCH)
	nr := uint32(unix.SYS_GETPPID)
	audit := uint32(unix.AUDIT_ARCH_X86_64)
	if runtime.GOARCH == "arm64" {
		audit = unix.AUDIT_ARCH_AARCH64
	}
	lines := strings.Split(strings.TrimSpace(res.output), "\n")
	if len(lines) != len(operatorProbes)*len(operatorInputs) {
		t.Fatalf("helper output: %q", res.output)
	}
	for _, line := range lines {
		var k int
		var x uint64
		var errno int
		if _, err := fmt.Sscanf(line, "%d %v %d", &k, &x, &errno); err != nil {
			t.Fatalf("bad helper output line %q: %v", line, err)
		}
		want := 0
		verdict := ref.verdict(seccompData{nr: nr, arch: audit, args: [6]uint64{x, uint64(k)}})
		if verdict&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO {
			want = int(verdict & unix.SECCOMP_RET_DATA)
		}
		if errno != want {
			t.Errorf("%s on %#x: kernel says errno %d, reference %d", operatorProbes[k].op, x, errno, want)
		}
	}
}

func TestLoadDockerDefault(t *testing.T) {
	res := runHelper(t, "docker", "sh", "-c", "echo ok; id -u; ls / >/dev/null && echo listed")
	if res.status.ExitStatus() != 0 || !strings.Contains(res.output, "ok\n0\nlisted\n") {
		t.Fatalf("sh under Docker's profile: %v, output %q", res.status, res.output)
	}
	refused := [][]string{
		{"unshare", "-n", "true"},
		{"unshare", "-m", "true"},
		{"mount", "-t", "tmpfs", "none", t.TempDir()},
		{"umount", "/proc"},
		{"hostname", "berth-test"},
	}
	for _, argv := range refused {
		res := runHelper(t, "docker", argv...)
		if res.status.ExitStatus() == 0 {
			t.Errorf("%v succeeded under Docker's profile: %q", argv, res.output)
		} else if !strings.Contains(res.output, "Operation not permitted") && !strings.Contains(res.output, "permission denied") {
			t.Errorf("%v: unexpected failure %q", argv, res.output)
		}
	}
}

// TestLoadDefaultErrno checks that defaultErrnoRet is what a syscall outside
// the profile gets.
func TestLoadDefaultErrno(t *testing.T) {
	res := runHelper(t, "docker-exdev", "unshare", "-n", "true")
	if res.status.ExitStatus() == 0 || !strings.Contains(res.output, "Invalid cross-device link") {
		t.Fatalf("unshare under Docker's profile with EXDEV default: %v, output %q", res.status, res.output)
	}
}

func TestLoadDoesNotAllocate(t *testing.T) {
	res := runHelper(t, "no-alloc")
	if strings.TrimSpace(res.output) != "allocs 0 err <nil>" {
		t.Fatalf("helper: %q", res.output)
	}
}

func TestLoadRejectsEmptyProgram(t *testing.T) {
	var p Program
	if err := p.Load(); err == nil || !strings.Contains(err.Error(), "filter of 0 instructions") {
		t.Fatalf("want an error for an empty program, got %v", err)
	}
	p.Filter = make([]unix.SockFilter, unix.BPF_MAXINSNS+1)
	if err := p.Load(); err == nil {
		t.Fatal("want an error for an oversized program")
	}
}
