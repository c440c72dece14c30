package seccomp

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	elasticarch "github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// dockerCaps is Docker's default capability set, which decides which
// conditional parts of its seccomp profile apply.
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// dockerProfile returns Docker's default seccomp profile for a container with
// Docker's default capabilities.
func dockerProfile(t testing.TB) *specs.LinuxSeccomp {
	t.Helper()
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: dockerCaps}}}
	s, err := mobyseccomp.GetDefaultProfile(spec)
	if err != nil {
		t.Fatalf("docker default profile: %v", err)
	}
	return s
}

func uintp(v uint) *uint { return &v }

// checkAgainstReference runs the compiled program over many syscalls and
// compares every verdict with referenceVerdict.
func checkAgainstReference(t *testing.T, s *specs.LinuxSeccomp, goarch string, rng *rand.Rand) {
	t.Helper()
	p, err := compile(s, goarch)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if err := checkProgram(p.Filter); err != nil {
		t.Fatalf("invalid program: %v", err)
	}

	// Argument values near every value the profile compares with, in both
	// halves, plus a few random ones.
	interesting := []uint64{0, 1, 0xffffffff, 1 << 32, 0xffffffff_ffffffff, 0x7fffffff, 0x80000000}
	for _, sc := range s.Syscalls {
		for _, a := range sc.Args {
			for _, v := range []uint64{a.Value, a.ValueTwo, a.Value & a.ValueTwo} {
				interesting = append(interesting, v, v-1, v+1, v^(1<<32), v^1, uint64(uint32(v)), v|0xffffffff_00000000)
			}
		}
	}
	argVectors := func(n int) [][6]uint64 {
		out := make([][6]uint64, n)
		for i := range out {
			for j := range out[i] {
				if rng.IntN(4) == 0 {
					out[i][j] = rng.Uint64()
				} else {
					out[i][j] = interesting[rng.IntN(len(interesting))]
				}
			}
		}
		return out
	}

	// Numbers with conditional rules get many argument vectors.
	conditional := map[string]bool{}
	for _, sc := range s.Syscalls {
		if len(sc.Args) > 0 {
			for _, n := range sc.Names {
				conditional[n] = true
			}
		}
	}

	ref := newReference(s, goarch)
	checked, maxSteps := 0, 0
	check := func(d seccompData) {
		got, steps, err := runFilter(p.Filter, d)
		if err != nil {
			t.Fatalf("run %+v: %v", d, err)
		}
		if want := ref.verdict(d); got != want {
			t.Fatalf("arch %#x nr %#x args %#x: filter says %#x, reference %#x", d.arch, d.nr, d.args, got, want)
		}
		checked++
		maxSteps = max(maxSteps, steps)
	}

	// Every syscall of every ABI and its neighbours, boundaries, random
	// numbers; under the ABI's own audit arch and a few others.
	specials := []uint32{0, 0x3fffffff, 0x40000000, 0x7fffffff, 0x80000000, 0xffffffff, 0xf0000, 0xf0007}
	for range 100 {
		specials = append(specials, rng.Uint32())
	}
	for _, arch := range kernelABIs(goarch) {
		a, _ := abiFor(arch)
		numbers := slices.Clone(specials)
		numbers = append(numbers, a.firstNr, a.lastNr)
		for _, e := range a.table {
			numbers = append(numbers, e.nr, e.nr+1, e.nr-1)
		}
		slices.Sort(numbers)
		for _, nr := range slices.Compact(numbers) {
			vectors := 2
			for _, e := range a.table {
				if e.nr == nr && conditional[e.name] {
					vectors = 300
				}
			}
			for _, args := range argVectors(vectors) {
				check(seccompData{nr: nr, arch: a.audit, args: args})
			}
		}
	}
	for _, audit := range []uint32{unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_ARM, 0, 0xffffffff} {
		for _, nr := range specials {
			check(seccompData{nr: nr, arch: audit, args: argVectors(1)[0]})
		}
	}
	t.Logf("%d instructions, %d decisions checked, at most %d instructions executed", len(p.Filter), checked, maxSteps)
}

func TestDockerProfileMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	docker := dockerProfile(t)
	t.Run("amd64", func(t *testing.T) { checkAgainstReference(t, docker, "amd64", rng) })

	arm := *docker
	arm.Architectures = []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	t.Run("arm64", func(t *testing.T) { checkAgainstReference(t, &arm, "arm64", rng) })

	only64 := *docker
	only64.Architectures = nil
	t.Run("amd64 native only", func(t *testing.T) { checkAgainstReference(t, &only64, "amd64", rng) })

	x32 := *docker
	x32.Architectures = []specs.Arch{specs.ArchX32}
	t.Run("amd64 and x32", func(t *testing.T) { checkAgainstReference(t, &x32, "amd64", rng) })

	withCaps := dockerProfileWithAllCaps(t)
	t.Run("all capabilities", func(t *testing.T) { checkAgainstReference(t, withCaps, "amd64", rng) })
}

func dockerProfileWithAllCaps(t *testing.T) *specs.LinuxSeccomp {
	caps := append(slices.Clone(dockerCaps), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME", "CAP_BPF", "CAP_PERFMON")
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	s, err := mobyseccomp.GetDefaultProfile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randomProfile builds a profile that mixes everything the compiler handles:
// every action, overlapping rules, conditions on both argument halves, names
// unknown to some ABIs.
func randomProfile(rng *rand.Rand, rules int) *specs.LinuxSeccomp {
	var names []string
	for _, e := range syscallsX86_64 {
		names = append(names, e.name)
	}
	for _, e := range syscallsARM {
		names = append(names, e.name)
	}
	names = append(names, "no_such_syscall")
	type act struct {
		a     specs.LinuxSeccompAction
		errno *uint
	}
	actions := []act{
		{specs.ActAllow, nil}, {specs.ActErrno, nil}, {specs.ActErrno, uintp(uint(unix.ENOSYS))},
		{specs.ActErrno, uintp(1234)}, {specs.ActKillProcess, nil}, {specs.ActKill, nil},
		{specs.ActTrap, nil}, {specs.ActLog, nil}, {specs.ActTrace, uintp(7)},
	}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan,
		specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual}
	values := []uint64{0, 1, 2, 0xff, 0xffffffff, 1 << 32, 1<<32 | 5, 0xffffffff_ffffffff, 0x80000000_00000000}
	value := func() uint64 {
		if rng.IntN(3) == 0 {
			return rng.Uint64()
		}
		return values[rng.IntN(len(values))]
	}

	def := actions[rng.IntN(len(actions))]
	s := &specs.LinuxSeccomp{DefaultAction: def.a, DefaultErrnoRet: def.errno,
		Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32, specs.ArchARM}}
	// Concentrate on a few syscalls so that rules overlap.
	hot := make([]string, 8)
	for i := range hot {
		hot[i] = names[rng.IntN(len(names))]
	}
	for range rules {
		sc := specs.LinuxSyscall{}
		for range 1 + rng.IntN(4) {
			if rng.IntN(2) == 0 {
				sc.Names = append(sc.Names, hot[rng.IntN(len(hot))])
			} else {
				sc.Names = append(sc.Names, names[rng.IntN(len(names))])
			}
		}
		a := actions[rng.IntN(len(actions))]
		sc.Action, sc.ErrnoRet = a.a, a.errno
		for range rng.IntN(4) {
			sc.Args = append(sc.Args, specs.LinuxSeccompArg{
				Index: uint(rng.IntN(6)), Op: ops[rng.IntN(len(ops))], Value: value(), ValueTwo: value(),
			})
		}
		s.Syscalls = append(s.Syscalls, sc)
	}
	return s
}

func TestRandomProfilesMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 40 {
		s := randomProfile(rng, 1+rng.IntN(60))
		for _, goarch := range []string{"amd64", "arm64"} {
			t.Run(goarch, func(t *testing.T) {
				defer func() {
					if t.Failed() {
						t.Logf("profile %d: %+v", i, s)
					}
				}()
				checkAgainstReference(t, s, goarch, rng)
			})
		}
	}
}

// TestFarJumps makes a program much longer than a conditional jump reaches,
// so that trampolines and copied returns are exercised.
func TestFarJumps(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32}}
	for i, e := range syscallsX86_64 {
		if i%2 == 0 {
			continue
		}
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
			Names: []string{e.name}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: uint(i % 6), Op: specs.OpGreaterThan, Value: uint64(i) << 31}},
		})
	}
	s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"read", "write"}, Action: specs.ActAllow})
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Filter) < 1000 {
		t.Fatalf("want a long program, got %d instructions", len(p.Filter))
	}
	trampolines := 0
	for _, ins := range p.Filter {
		if ins.Code == opJA {
			trampolines++
		}
	}
	if trampolines == 0 {
		t.Fatal("no far jumps needed: make the test program longer")
	}
	t.Logf("%d trampolines", trampolines)
	checkAgainstReference(t, s, "amd64", rand.New(rand.NewPCG(5, 6)))
}

func TestTooLarge(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for _, e := range syscallsX86_64 {
		for j := range 4 {
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{
				Names: []string{e.name}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: uint(j), Op: specs.OpLessThan, Value: uint64(j) << 40}},
			})
		}
	}
	_, err := Compile(s)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "at most 4096") {
		t.Fatalf("want a too-large error, got %v", err)
	}
}

func TestBadInput(t *testing.T) {
	allow := specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow}
	cases := []struct {
		name string
		s    *specs.LinuxSeccomp
		want string // in the error
		not  bool   // ErrNotImplemented rather than ErrInvalidArgument
	}{
		{"nil", nil, "no seccomp section", false},
		{"missing default", &specs.LinuxSeccomp{}, "missing action", false},
		{"unknown default", &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_FOO"}, `unknown action "SCMP_ACT_FOO"`, false},
		{"unknown action", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno,
			Syscalls: []specs.LinuxSyscall{allow, {Names: []string{"mkdir"}, Action: "SCMP_ACT_DENY"}}},
			`syscalls[1] [mkdir]: seccomp: unknown action "SCMP_ACT_DENY"`, false},
		{"notify", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}},
			"SCMP_ACT_NOTIFY (user-space notification) is not supported", true},
		{"unknown operator", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"socket"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_BETWEEN", Value: 2}}}}},
			`unknown operator "SCMP_CMP_BETWEEN"`, false},
		{"argument index", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"socket"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
			"argument index 6 out of range", false},
		{"unknown arch", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86, "SCMP_ARCH_Z80"}}, `unknown architecture "SCMP_ARCH_Z80"`, false},
		{"unknown flag", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FAST"}}, `unknown flag "SECCOMP_FILTER_FLAG_FAST"`, false},
		{"errno too large", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(5000)},
			"errnoRet 5000 out of range", false},
		{"errnoRet with allow", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, ErrnoRet: uintp(1)}}},
			"errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not SCMP_ACT_ALLOW", false},
		{"no names", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno,
			Syscalls: []specs.LinuxSyscall{{Action: specs.ActAllow}}}, "rule names no syscall", false},
		{"empty name", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read", ""}, Action: specs.ActAllow}}}, "empty syscall name", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.s)
			if err == nil {
				t.Fatalf("compiled to %d instructions, want an error", len(p.Filter))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			class := errdefs.ErrInvalidArgument
			if tc.not {
				class = errdefs.ErrNotImplemented
			}
			if !errors.Is(err, class) {
				t.Errorf("error %q is not %v", err, class)
			}
		})
	}
}

func TestLenientInput(t *testing.T) {
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		// Foreign but valid architectures are not errors.
		Architectures: []specs.Arch{specs.ArchS390X, specs.ArchPPC64LE, specs.ArchX86, specs.ArchX86},
		Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow,
			"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"no_such_syscall", "mkdir"}, Action: specs.ActErrno}},
	}
	p, err := compile(s, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if want := uint(unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW); p.Flags != want {
		t.Errorf("flags %#x, want %#x", p.Flags, want)
	}
	checkAgainstReference(t, s, "amd64", rand.New(rand.NewPCG(7, 8)))
	if _, err := compile(s, "riscv64"); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("riscv64: want not implemented, got %v", err)
	}
}

// TestSpecificDecisions pins down a few decisions by hand, so the reference
// evaluator itself is checked against something.
func TestSpecificDecisions(t *testing.T) {
	p, err := compile(dockerProfile(t), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosy = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		kill  = unix.SECCOMP_RET_KILL_PROCESS
		x64   = unix.AUDIT_ARCH_X86_64
		i386  = unix.AUDIT_ARCH_I386
	)
	cases := []struct {
		name string
		d    seccompData
		want uint32
	}{
		{"read", seccompData{nr: unix.SYS_READ, arch: x64}, allow},
		{"mount", seccompData{nr: unix.SYS_MOUNT, arch: x64}, eperm},
		{"unshare", seccompData{nr: unix.SYS_UNSHARE, arch: x64}, eperm},
		{"clone3 without CAP_SYS_ADMIN", seccompData{nr: unix.SYS_CLONE3, arch: x64}, enosy},
		{"clone thread", seccompData{nr: unix.SYS_CLONE, arch: x64, args: [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD}}, allow},
		{"clone new netns", seccompData{nr: unix.SYS_CLONE, arch: x64, args: [6]uint64{unix.CLONE_NEWNET}}, eperm},
		{"socket inet", seccompData{nr: unix.SYS_SOCKET, arch: x64, args: [6]uint64{unix.AF_INET}}, allow},
		{"socket vsock", seccompData{nr: unix.SYS_SOCKET, arch: x64, args: [6]uint64{unix.AF_VSOCK}}, eperm},
		{"socket alg", seccompData{nr: unix.SYS_SOCKET, arch: x64, args: [6]uint64{unix.AF_ALG}}, eperm},
		{"personality query", seccompData{nr: unix.SYS_PERSONALITY, arch: x64, args: [6]uint64{0xffffffff}}, allow},
		{"personality query, high bits set", seccompData{nr: unix.SYS_PERSONALITY, arch: x64, args: [6]uint64{0x1_ffffffff}}, eperm},
		{"personality other", seccompData{nr: unix.SYS_PERSONALITY, arch: x64, args: [6]uint64{0x0400000}}, eperm},
		{"i386 personality query, high bits ignored", seccompData{nr: 136, arch: i386, args: [6]uint64{0x1_ffffffff}}, allow},
		{"i386 read", seccompData{nr: 3, arch: i386}, allow},
		{"x32 read", seccompData{nr: x32SyscallBit | unix.SYS_READ, arch: x64}, allow},
		{"x32 64-bit-only ioctl number", seccompData{nr: x32SyscallBit | unix.SYS_IOCTL, arch: x64}, eperm},
		{"x32 ioctl", seccompData{nr: x32SyscallBit | 514, arch: x64}, allow},
		{"newer than the profile", seccompData{nr: 1000, arch: x64}, enosy},
		{"aarch64", seccompData{nr: 63, arch: unix.AUDIT_ARCH_AARCH64}, kill},
	}
	for _, tc := range cases {
		got, _, err := runFilter(p.Filter, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

// TestTablesAgreeWithElastic cross-checks the generated tables with
// go-seccomp-bpf's, generated independently from the kernel sources (Linux
// 6.15). Where they differ, go-seccomp-bpf is wrong: its aarch64 table has
// the 32-bit-only *_time64 syscalls and the fstatat alias, its x32 table the
// 64-bit-only syscalls (and some names twice, so those are skipped).
func TestTablesAgreeWithElastic(t *testing.T) {
	time64 := []string{"clock_getres_time64", "clock_gettime64", "clock_adjtime64", "clock_settime64",
		"clock_nanosleep_time64", "futex_time64", "io_pgetevents_time64", "mq_timedreceive_time64",
		"mq_timedsend_time64", "ppoll_time64", "pselect6_time64", "recvmmsg_time64",
		"rt_sigtimedwait_time64", "sched_rr_get_interval_time64", "semtimedop_time64",
		"timer_gettime64", "timer_settime64", "timerfd_gettime64", "timerfd_settime64", "utimensat_time64"}
	pairs := []struct {
		ours    specs.Arch
		elastic string
		base    uint32
		wrong   []string // names go-seccomp-bpf has and this ABI does not
	}{
		{specs.ArchX86_64, "x86_64", 0, nil},
		{specs.ArchX86, "i386", 0, nil},
		{specs.ArchAARCH64, "aarch64", 0, append(time64, "fstatat")},
		{specs.ArchARM, "arm", 0, nil},
		{specs.ArchX32, "x32", x32SyscallBit, []string{"uselib", "create_module", "query_module", "_sysctl",
			"set_thread_area", "get_thread_area", "epoll_ctl_old", "epoll_wait_old", "vserver",
			"nfsservctl", "get_kernel_syms"}},
	}
	for _, pair := range pairs {
		a, _ := abiFor(pair.ours)
		info, err := elasticarch.GetInfo(pair.elastic)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, name := range info.SyscallNumbers {
			count[name]++
		}
		missing := 0
		for nr, name := range info.SyscallNumbers {
			if count[name] > 1 {
				continue
			}
			got, ok := a.lookup(name)
			if !ok {
				if !slices.Contains(pair.wrong, name) {
					missing++
					t.Logf("%s: %s (%d) missing", pair.ours, name, nr)
				}
				continue
			}
			if got != uint32(nr)|pair.base {
				t.Errorf("%s: %s is %#x here, %#x in go-seccomp-bpf", pair.ours, name, got, uint32(nr)|pair.base)
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d syscalls missing", pair.ours, missing)
		}
		if !slices.IsSortedFunc(a.table, func(x, y syscallName) int { return strings.Compare(x.name, y.name) }) {
			t.Errorf("%s: table not sorted by name", pair.ours)
		}
	}
}

// TestDockerNamesResolve lists the names in Docker's profile that no table
// knows, so a stale table shows up here rather than as EPERM in a container.
func TestDockerNamesResolve(t *testing.T) {
	s := dockerProfileWithAllCaps(t)
	arches := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM}
	for _, sc := range s.Syscalls {
		for _, name := range sc.Names {
			found := false
			for _, arch := range arches {
				a, _ := abiFor(arch)
				if _, ok := a.lookup(name); ok {
					found = true
				}
			}
			// riscv_hwprobe is RISC-V's only, which berth has no table for.
			if !found && name != "riscv_hwprobe" {
				t.Errorf("%s: in Docker's profile, in no syscall table", name)
			}
		}
	}
}

func TestCompileTime(t *testing.T) {
	s := dockerProfile(t)
	if _, err := Compile(s); err != nil { // warm up
		t.Fatal(err)
	}
	const runs = 50
	start := time.Now()
	for range runs {
		if _, err := Compile(s); err != nil {
			t.Fatal(err)
		}
	}
	per := time.Since(start) / runs
	t.Logf("Compile(Docker default profile): %v", per)
	if per > 2*time.Millisecond {
		t.Errorf("Compile takes %v, budget 2ms", per)
	}
}

func BenchmarkCompileDockerDefault(b *testing.B) {
	s := dockerProfile(b)
	p, err := Compile(s)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(p.Filter)), "insns")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterDockerDefault measures the instructions a syscall executes
// in the generated filter (interpreted, so the ns/op is not the kernel's).
func BenchmarkFilterDockerDefault(b *testing.B) {
	p, err := Compile(dockerProfile(b))
	if err != nil {
		b.Fatal(err)
	}
	d := seccompData{nr: unix.SYS_FUTEX, arch: unix.AUDIT_ARCH_X86_64}
	for b.Loop() {
		if _, _, err := runFilter(p.Filter, d); err != nil {
			b.Fatal(err)
		}
	}
	var total, worst, n int
	for _, e := range syscallsX86_64 {
		_, steps, err := runFilter(p.Filter, seccompData{nr: e.nr, arch: unix.AUDIT_ARCH_X86_64})
		if err != nil {
			b.Fatal(err)
		}
		total, worst, n = total+steps, max(worst, steps), n+1
	}
	b.ReportMetric(float64(total)/float64(n), "avg-insns/syscall")
	b.ReportMetric(float64(worst), "max-insns/syscall")
}
