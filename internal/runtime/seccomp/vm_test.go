package seccomp

import (
	"fmt"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// seccompData mirrors struct seccomp_data, the input of a seccomp filter.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

// word returns the 32-bit word at offset, laid out as on a little-endian kernel.
func (d *seccompData) word(offset uint32) (uint32, error) {
	if offset%4 != 0 || offset >= 64 {
		return 0, fmt.Errorf("load from offset %d outside seccomp_data", offset)
	}
	var v uint64
	switch {
	case offset == 0:
		return d.nr, nil
	case offset == 4:
		return d.arch, nil
	case offset < 16:
		v = d.ip
	default:
		v = d.args[(offset-16)/8]
	}
	if offset%8 == 4 {
		return uint32(v >> 32), nil
	}
	return uint32(v), nil
}

// checkProgram applies the kernel's static checks to a seccomp filter: known
// instructions only, jumps inside the program, ends with a return.
func checkProgram(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return fmt.Errorf("program length %d", len(prog))
	}
	for pc, ins := range prog {
		rest := len(prog) - pc - 1 // instructions after this one
		switch ins.Code {
		case opLoad:
			if ins.K%4 != 0 || ins.K >= 64 {
				return fmt.Errorf("pc %d: load from offset %d", pc, ins.K)
			}
		case opAnd, opRet:
		case opJA:
			if int(ins.K) >= rest {
				return fmt.Errorf("pc %d: ja %d past the end", pc, ins.K)
			}
		case opJEQ, opJGT, opJGE:
			if int(ins.Jt) >= rest || int(ins.Jf) >= rest {
				return fmt.Errorf("pc %d: jump %d/%d past the end", pc, ins.Jt, ins.Jf)
			}
		default:
			return fmt.Errorf("pc %d: unexpected opcode %#x", pc, ins.Code)
		}
	}
	if prog[len(prog)-1].Code != opRet {
		return fmt.Errorf("last instruction is not a return")
	}
	return nil
}

// runFilter interprets a checked program for d and returns its verdict and
// the number of instructions executed.
func runFilter(prog []unix.SockFilter, d seccompData) (ret uint32, steps int, err error) {
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		ins := prog[pc]
		steps++
		switch ins.Code {
		case opLoad:
			if a, err = d.word(ins.K); err != nil {
				return 0, steps, err
			}
		case opAnd:
			a &= ins.K
		case opJA:
			pc += int(ins.K)
		case opJEQ, opJGT, opJGE:
			var taken bool
			switch ins.Code {
			case opJEQ:
				taken = a == ins.K
			case opJGT:
				taken = a > ins.K
			case opJGE:
				taken = a >= ins.K
			}
			if taken {
				pc += int(ins.Jt)
			} else {
				pc += int(ins.Jf)
			}
		case opRet:
			return ins.K, steps, nil
		default:
			return 0, steps, fmt.Errorf("pc %d: unexpected opcode %#x", pc, ins.Code)
		}
	}
	return 0, steps, fmt.Errorf("fell off the end of the program")
}

// reference decides syscalls the slow, obvious way, straight from the
// profile and the rules written in the package documentation. It shares no
// code with the compiler beyond the generated syscall tables.
type reference struct {
	s         *specs.LinuxSeccomp
	enabled   []specs.Arch
	def       uint32
	ruleNames []map[string]bool
	abis      map[specs.Arch]*referenceABI
}

type referenceABI struct {
	narrow  bool                // compare only the low 32 bits
	names   map[uint32][]string // syscall number to names
	highest uint32              // highest number the profile names
	named   bool
}

func newReference(s *specs.LinuxSeccomp, goarch string) *reference {
	runnable := kernelABIs(goarch)
	r := &reference{s: s, enabled: []specs.Arch{runnable[0]}, def: referenceAction(s.DefaultAction, s.DefaultErrnoRet),
		abis: map[specs.Arch]*referenceABI{}}
	for _, a := range s.Architectures {
		if slices.Contains(runnable, a) {
			r.enabled = append(r.enabled, a)
		}
	}
	for _, sc := range s.Syscalls {
		set := map[string]bool{}
		for _, n := range sc.Names {
			set[n] = true
		}
		r.ruleNames = append(r.ruleNames, set)
	}
	for _, arch := range runnable {
		a, _ := abiFor(arch)
		ra := &referenceABI{names: map[uint32][]string{},
			narrow: arch == specs.ArchX86 || arch == specs.ArchX32 || arch == specs.ArchARM}
		for _, e := range a.table {
			ra.names[e.nr] = append(ra.names[e.nr], e.name)
			for _, set := range r.ruleNames {
				if set[e.name] && (!ra.named || e.nr > ra.highest) {
					ra.highest, ra.named = e.nr, true
				}
			}
		}
		r.abis[arch] = ra
	}
	return r
}

func (r *reference) verdict(d seccompData) uint32 {
	var arch specs.Arch
	switch d.arch {
	case unix.AUDIT_ARCH_X86_64:
		// As in libseccomp, every number from the x32 bit up is x32's.
		arch = specs.ArchX86_64
		if d.nr >= x32SyscallBit {
			arch = specs.ArchX32
		}
	case unix.AUDIT_ARCH_I386:
		arch = specs.ArchX86
	case unix.AUDIT_ARCH_AARCH64:
		arch = specs.ArchAARCH64
	case unix.AUDIT_ARCH_ARM:
		arch = specs.ArchARM
	}
	if !slices.Contains(r.enabled, arch) {
		return unix.SECCOMP_RET_KILL_PROCESS
	}
	ra := r.abis[arch]
	names := ra.names[d.nr]

	var candidates []specs.LinuxSyscall
	for i, sc := range r.s.Syscalls {
		if referenceAction(sc.Action, sc.ErrnoRet) == r.def {
			continue
		}
		for _, n := range names {
			if r.ruleNames[i][n] {
				candidates = append(candidates, sc)
				break
			}
		}
	}
	for _, sc := range candidates {
		if len(sc.Args) == 0 {
			return referenceAction(sc.Action, sc.ErrnoRet)
		}
	}
	for _, sc := range candidates {
		all := true
		for _, arg := range sc.Args {
			all = all && referenceCondition(arg, d.args, ra.narrow)
		}
		if all {
			return referenceAction(sc.Action, sc.ErrnoRet)
		}
	}
	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	switch r.s.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
	default:
		if r.def != enosys && ra.named && d.nr > ra.highest {
			return enosys
		}
	}
	return r.def
}

func referenceAction(act specs.LinuxSeccompAction, errnoRet *uint) uint32 {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		data = uint32(*errnoRet)
	}
	switch act {
	case specs.ActKill, specs.ActKillThread:
		return 0
	case specs.ActKillProcess:
		return 0x80000000
	case specs.ActTrap:
		return 0x00030000
	case specs.ActErrno:
		return 0x00050000 | data
	case specs.ActTrace:
		return 0x7ff00000 | data
	case specs.ActLog:
		return 0x7ffc0000
	case specs.ActAllow:
		return 0x7fff0000
	}
	panic("test profile uses unknown action " + string(act))
}

func referenceCondition(arg specs.LinuxSeccompArg, args [6]uint64, narrow bool) bool {
	v, x, y := args[arg.Index], arg.Value, arg.ValueTwo
	if narrow {
		v, x, y = uint64(uint32(v)), uint64(uint32(x)), uint64(uint32(y))
	}
	switch arg.Op {
	case specs.OpEqualTo:
		return v == x
	case specs.OpNotEqual:
		return v != x
	case specs.OpLessThan:
		return v < x
	case specs.OpLessEqual:
		return v <= x
	case specs.OpGreaterThan:
		return v > x
	case specs.OpGreaterEqual:
		return v >= x
	case specs.OpMaskedEqual:
		return v&x == y&x
	}
	panic("test profile uses unknown operator " + string(arg.Op))
}
