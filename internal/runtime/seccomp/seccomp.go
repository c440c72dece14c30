// Package seccomp compiles the seccomp section of an OCI runtime spec into a
// classic BPF program and installs it on the calling thread. Pure Go: no
// libseccomp, no cgo.
//
// The meaning of a profile follows runc with libseccomp wherever they define
// it, and is pinned down here where they do not:
//
//   - Syscall names are resolved per ABI; names an ABI does not know are
//     skipped (as runc does). A rule whose action equals the default action is
//     dropped (as runc does), also when it has conditions.
//   - For one syscall, an unconditional rule wins over conditional ones (as in
//     libseccomp, where it absorbs them; the first unconditional rule in
//     profile order wins). Otherwise conditional rules are tried in profile
//     order and the first whose conditions all hold decides: several rules for
//     one syscall are ORed, and with one action that is exactly libseccomp's
//     union. If none holds, the default action applies.
//   - Conditions within one rule are ANDed, also several on the same argument.
//     (runc splits such a rule into one rule per condition, ORing them, see
//     opencontainers/runc#2735; Docker's profile avoids relying on either.)
//   - On 64-bit ABIs (x86_64, aarch64) arguments are compared as 64-bit
//     unsigned values. On 32-bit ABIs (x86, arm, x32) only the low 32 bits of
//     the argument and of the value are compared, as libseccomp does.
//   - SCMP_CMP_MASKED_EQ matches when arg&value == valueTwo&value.
//   - Like runc, syscalls numbered above the highest syscall the profile names
//     for an ABI return ENOSYS instead of the default action (unless that is
//     ALLOW, LOG or TRACE, or already ENOSYS): they are newer than the
//     profile, and ENOSYS makes libc fall back to older syscalls.
//   - The filter covers the native ABI plus the ABIs in Architectures that the
//     kernel can run (on amd64: x86 and x32; on arm64: arm). Listed ABIs the
//     kernel can never run are ignored; names that are not SCMP_ARCH_* are
//     errors. A syscall from any other ABI - including x86 or x32 when not
//     listed - kills the process. libseccomp's default here is KILL (the
//     thread); killing the whole process avoids leaving a multi-threaded
//     process with one thread silently gone.
//
// SCMP_ACT_NOTIFY is not supported (Compile returns ErrNotImplemented).
//
// Loading: compile early (in the parent, or before entering the container's
// namespaces) and call Load in the init process on a thread locked with
// runtime.LockOSThread, then execve from that same thread: a filter binds
// the thread that loads it and the threads it creates later, and execve keeps
// it for the new program while discarding the Go runtime's other threads, so
// no TSYNC is needed. Everything the thread does between Load and execve is
// filtered, so load as late as the privileges allow:
//
//   - with noNewPrivileges: set no_new_privs, change uid/gid and
//     capabilities, then Load, then execve;
//   - without it: Load needs CAP_SYS_ADMIN, so Load before dropping it (before
//     setuid to a non-root user and capset), as runc does; setgroups,
//     setresuid, capset and prctl then run under the filter, and the profile
//     must allow them (Docker's does).
//
// Either way the profile must allow execve and what the Go runtime does on
// that thread in the meantime (futex, rt_sigprocmask, sigaltstack, mmap,
// write...), or init dies before the container's program starts.
package seccomp

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Program is a compiled filter ready to load. Its fields are plain data so the
// runtime can compile in the parent and hand the program to the container's
// init process.
type Program struct {
	// Filter is the classic BPF program, in execution order.
	Filter []unix.SockFilter
	// Flags are the SECCOMP_FILTER_FLAG_* bits to pass to seccomp(2).
	Flags uint
}

// maxErrno is the largest errno the kernel returns for SECCOMP_RET_ERRNO; it
// clamps larger values, so a larger errnoRet is a profile mistake.
const maxErrno = 4095

// badArchAction is returned for syscalls from an ABI the filter does not cover.
const badArchAction = unix.SECCOMP_RET_KILL_PROCESS

// profile is a validated seccomp section, ready for code generation.
type profile struct {
	defaultAction uint32
	// enosysAbove gives ENOSYS to syscalls newer than any the profile names.
	enosysAbove bool
	abis        []abi // native first
	rules       []rule
	flags       uint
}

// rule is one entry of the spec's syscalls list.
type rule struct {
	names  []string
	action uint32
	conds  []cond
}

// cond is one argument condition in a normalized form. The test is either
// (arg & mask) == value (EQ, NE and MASKED_EQ), or arg > value (arg >= value
// if orEqual; GT, GE, LE and LT). The condition holds when the test passes,
// or when it fails if negate is set.
type cond struct {
	arg     uint
	masked  bool
	mask    uint64
	value   uint64
	orEqual bool
	negate  bool
}

// Compile validates s and compiles it for the native architecture and the
// extra architectures s lists that this kernel can run.
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	return compile(s, runtime.GOARCH)
}

// compile is Compile for a kernel of the given GOARCH, so tests can check the
// arm64 code on an amd64 machine.
func compile(s *specs.LinuxSeccomp, goarch string) (*Program, error) {
	p, err := parseProfile(s, goarch)
	if err != nil {
		return nil, err
	}
	filter, err := (&compiler{profile: p}).generate()
	if err != nil {
		return nil, err
	}
	return &Program{Filter: filter, Flags: p.flags}, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("seccomp: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

func parseProfile(s *specs.LinuxSeccomp, goarch string) (*profile, error) {
	if s == nil {
		return nil, invalid("no seccomp section")
	}
	p := &profile{}
	var err error
	if p.defaultAction, err = actionValue(s.DefaultAction, s.DefaultErrnoRet); err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	switch p.defaultAction & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_LOG, unix.SECCOMP_RET_TRACE:
		// A permissive default already lets new syscalls reach the kernel.
	default:
		p.enosysAbove = p.defaultAction != unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS)
	}

	if p.abis, err = selectABIs(s.Architectures, goarch); err != nil {
		return nil, err
	}

	for _, f := range s.Flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			p.flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			p.flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case "SECCOMP_FILTER_FLAG_TSYNC":
			// Ignored, as runc does: the filter goes on the thread that
			// execs the container process, and exec leaves no other thread.
		case specs.LinuxSeccompFlagWaitKillableRecv:
			// Only changes how a notify listener waits; there is none.
		default:
			return nil, invalid("unknown flag %q", f)
		}
	}

	p.rules = make([]rule, 0, len(s.Syscalls))
	for i, sc := range s.Syscalls {
		r, err := parseRule(sc)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d] %v: %w", i, sc.Names, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// selectABIs returns the ABIs to compile: the native one plus those listed
// that the kernel can run, in the kernel's order, native first.
func selectABIs(listed []specs.Arch, goarch string) ([]abi, error) {
	runnable := kernelABIs(goarch)
	if len(runnable) == 0 {
		return nil, fmt.Errorf("seccomp: native architecture %s: %w", goarch, errdefs.ErrNotImplemented)
	}
	want := map[specs.Arch]bool{runnable[0]: true}
	for _, arch := range listed {
		if !isSpecArch(arch) {
			return nil, invalid("unknown architecture %q", arch)
		}
		want[arch] = true
	}
	var abis []abi
	for _, arch := range runnable {
		if !want[arch] {
			continue
		}
		a, ok := abiFor(arch)
		if !ok {
			return nil, fmt.Errorf("seccomp: no syscall table for %s: %w", arch, errdefs.ErrNotImplemented)
		}
		abis = append(abis, a)
	}
	return abis, nil
}

func parseRule(sc specs.LinuxSyscall) (rule, error) {
	action, err := actionValue(sc.Action, sc.ErrnoRet)
	if err != nil {
		return rule{}, err
	}
	if len(sc.Names) == 0 {
		return rule{}, invalid("rule names no syscall")
	}
	if slices.Contains(sc.Names, "") {
		return rule{}, invalid("empty syscall name")
	}
	r := rule{names: sc.Names, action: action, conds: make([]cond, 0, len(sc.Args))}
	for _, arg := range sc.Args {
		c, err := parseCondition(arg)
		if err != nil {
			return rule{}, err
		}
		r.conds = append(r.conds, c)
	}
	return r, nil
}

func parseCondition(arg specs.LinuxSeccompArg) (cond, error) {
	if arg.Index > 5 {
		return cond{}, invalid("argument index %d out of range 0-5", arg.Index)
	}
	c := cond{arg: arg.Index, value: arg.Value}
	switch arg.Op {
	case specs.OpEqualTo:
		c.masked, c.mask = true, ^uint64(0)
	case specs.OpNotEqual:
		c.masked, c.mask, c.negate = true, ^uint64(0), true
	case specs.OpMaskedEqual:
		c.masked, c.mask, c.value = true, arg.Value, arg.ValueTwo
	case specs.OpGreaterThan:
	case specs.OpGreaterEqual:
		c.orEqual = true
	case specs.OpLessThan: // not >=
		c.orEqual, c.negate = true, true
	case specs.OpLessEqual: // not >
		c.negate = true
	default:
		return cond{}, invalid("unknown operator %q", arg.Op)
	}
	return c, nil
}

// actionValue returns the SECCOMP_RET_* value for a spec action.
func actionValue(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	switch act {
	case specs.ActErrno:
		errno := uint(unix.EPERM)
		if errnoRet != nil {
			errno = *errnoRet
		}
		if errno > maxErrno {
			return 0, invalid("errnoRet %d out of range 0-%d", errno, maxErrno)
		}
		return unix.SECCOMP_RET_ERRNO | uint32(errno), nil
	case specs.ActTrace:
		// The value is handed to the tracer; EPERM is runc's default.
		data := uint(unix.EPERM)
		if errnoRet != nil {
			data = *errnoRet
		}
		if data > unix.SECCOMP_RET_DATA {
			return 0, invalid("errnoRet %d out of range for %s", data, act)
		}
		return unix.SECCOMP_RET_TRACE | uint32(data), nil
	}
	var value uint32
	switch act {
	case specs.ActKill, specs.ActKillThread:
		value = unix.SECCOMP_RET_KILL_THREAD
	case specs.ActKillProcess:
		value = unix.SECCOMP_RET_KILL_PROCESS
	case specs.ActTrap:
		value = unix.SECCOMP_RET_TRAP
	case specs.ActAllow:
		value = unix.SECCOMP_RET_ALLOW
	case specs.ActLog:
		value = unix.SECCOMP_RET_LOG
	case specs.ActNotify:
		return 0, fmt.Errorf("seccomp: action %s (user-space notification) is not supported: %w", act, errdefs.ErrNotImplemented)
	case "":
		return 0, invalid("missing action")
	default:
		return 0, invalid("unknown action %q", act)
	}
	if errnoRet != nil {
		// The runtime spec requires an error here.
		return 0, invalid("errnoRet is only valid with %s and %s, not %s", specs.ActErrno, specs.ActTrace, act)
	}
	return value, nil
}

// compiler turns a validated profile into a BPF program.
type compiler struct {
	*profile
}

// numRange is a run of syscall numbers with one decision: from first up to
// the next range's first.
type numRange struct {
	first  uint32
	action uint32  // the decision, or the fallback if rules is not empty
	rules  []*rule // conditional rules, tried in profile order
}

// generate emits: check the architecture, load the syscall number, binary
// search it per ABI, and test arguments where rules have conditions.
func (c *compiler) generate() ([]unix.SockFilter, error) {
	b := newBuilder()

	// One section per audit architecture, native first; x86_64 and x32
	// share one.
	type section struct {
		audit uint32
		abis  []*abi
	}
	var sections []section
	for i := range c.abis {
		a := &c.abis[i]
		j := slices.IndexFunc(sections, func(s section) bool { return s.audit == a.audit })
		if j < 0 {
			sections = append(sections, section{audit: a.audit})
			j = len(sections) - 1
		}
		sections[j].abis = append(sections[j].abis, a)
	}

	entries := make([]label, len(sections))
	for i := len(sections) - 1; i >= 0; i-- {
		entries[i] = c.section(b, sections[i].audit, sections[i].abis)
	}
	next := b.ret(badArchAction)
	for i := len(sections) - 1; i >= 0; i-- {
		next = b.jump(opJEQ, sections[i].audit, entries[i], next)
	}
	b.load(offArch, next)

	if len(b.rev) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: filter needs %d instructions, the kernel takes at most %d: %w",
			len(b.rev), unix.BPF_MAXINSNS, errdefs.ErrInvalidArgument)
	}
	return b.program(), nil
}

// section emits the code for one audit architecture, entered with any A.
func (c *compiler) section(b *builder, audit uint32, abis []*abi) label {
	if audit != unix.AUDIT_ARCH_X86_64 {
		return b.load(offNr, c.searchTree(b, abis[0], c.ranges(abis[0])))
	}
	// x86_64 and x32 split the number space on the x32 bit; a half whose
	// ABI is not covered is a foreign architecture.
	x86_64, x32 := b.ret(badArchAction), b.ret(badArchAction)
	for _, a := range abis {
		tree := c.searchTree(b, a, c.ranges(a))
		if a.arch == specs.ArchX32 {
			x32 = tree
		} else {
			x86_64 = tree
		}
	}
	split := b.jump(opJGE, x32SyscallBit, x32, x86_64)
	return b.load(offNr, split)
}

// ranges partitions a's syscall numbers into runs with one decision each.
func (c *compiler) ranges(a *abi) []numRange {
	// A hit is a (syscall number, rule index) pair packed into one word, so
	// that sorting orders by number, then profile order, and is cheap.
	hits := make([]uint64, 0, 512)
	var highest uint32
	named := false
	for i := range c.rules {
		r := &c.rules[i]
		for _, name := range r.names {
			nr, ok := a.lookup(name)
			if !ok {
				continue
			}
			if !named || nr > highest {
				highest, named = nr, true
			}
			if r.action != c.defaultAction {
				hits = append(hits, uint64(nr)<<32|uint64(i))
			}
		}
	}
	slices.Sort(hits)

	var out []numRange
	add := func(first uint32, action uint32, rules []*rule) {
		if n := len(out); n > 0 && len(rules) == 0 && len(out[n-1].rules) == 0 && out[n-1].action == action {
			return // same decision as the range before: extend it
		}
		out = append(out, numRange{first: first, action: action, rules: rules})
	}

	next := uint64(a.firstNr) // first number not yet covered
	for i := 0; i < len(hits); {
		nr := uint32(hits[i] >> 32)
		j := i
		for j < len(hits) && uint32(hits[j]>>32) == nr {
			j++
		}
		group := hits[i:j]
		i = j

		if uint64(nr) > next {
			add(uint32(next), c.defaultAction, nil)
		}
		next = uint64(nr) + 1
		unconditional := slices.IndexFunc(group, func(h uint64) bool { return len(c.rules[uint32(h)].conds) == 0 })
		if unconditional >= 0 {
			add(nr, c.rules[uint32(group[unconditional])].action, nil)
			continue
		}
		rules := make([]*rule, 0, len(group))
		for _, h := range group {
			// One rule may name the same number twice (aliases).
			if r := &c.rules[uint32(h)]; len(rules) == 0 || rules[len(rules)-1] != r {
				rules = append(rules, r)
			}
		}
		add(nr, c.defaultAction, rules)
	}

	newer := uint64(a.lastNr) + 1 // first number that gets ENOSYS
	if c.enosysAbove && named {
		newer = uint64(highest) + 1
	}
	if next < newer {
		add(uint32(next), c.defaultAction, nil)
	}
	if newer <= uint64(a.lastNr) {
		add(uint32(newer), unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS), nil)
	}
	return out
}
