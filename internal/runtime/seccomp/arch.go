package seccomp

import (
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

//go:generate go run gen_syscalls.go

// x32SyscallBit marks x32 syscalls. x32 shares AUDIT_ARCH_X86_64 with x86_64,
// so this bit in the syscall number is the only way to tell the two apart.
const x32SyscallBit = 0x40000000

// syscallName is one entry of a syscall table.
type syscallName struct {
	name string
	nr   uint32
}

// abi is one syscall ABI: the unit that owns a syscall table. Usually one per
// audit architecture; x86_64 and x32 share one and split its number space.
type abi struct {
	arch  specs.Arch
	audit uint32
	// firstNr and lastNr bound the syscall numbers this ABI owns.
	firstNr, lastNr uint32
	// args32 compares only the low 32 bits of arguments and values, as
	// libseccomp does for its 32-bit ABIs (x86, arm and also x32): the
	// kernel reads 32-bit registers there, the upper half is noise.
	args32 bool
	table  []syscallName
}

// lookup returns the number of the named syscall in this ABI.
func (a *abi) lookup(name string) (uint32, bool) {
	i := sort.Search(len(a.table), func(i int) bool { return a.table[i].name >= name })
	if i < len(a.table) && a.table[i].name == name {
		return a.table[i].nr, true
	}
	return 0, false
}

// abiFor describes the ABIs we have syscall tables for.
func abiFor(arch specs.Arch) (abi, bool) {
	switch arch {
	case specs.ArchX86_64:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_X86_64, firstNr: 0, lastNr: x32SyscallBit - 1, table: syscallsX86_64}, true
	case specs.ArchX32:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_X86_64, firstNr: x32SyscallBit, lastNr: 0xffffffff, args32: true, table: syscallsX32}, true
	case specs.ArchX86:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_I386, lastNr: 0xffffffff, args32: true, table: syscallsI386}, true
	case specs.ArchAARCH64:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_AARCH64, lastNr: 0xffffffff, table: syscallsAARCH64}, true
	case specs.ArchARM:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_ARM, lastNr: 0xffffffff, args32: true, table: syscallsARM}, true
	}
	return abi{}, false
}

// kernelABIs lists the ABIs a kernel built for goarch can run, native first.
// Only these can ever show up in seccomp_data, so only these are compiled;
// others named in a profile would be dead code.
func kernelABIs(goarch string) []specs.Arch {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "386":
		return []specs.Arch{specs.ArchX86}
	case "arm":
		return []specs.Arch{specs.ArchARM}
	}
	return nil
}

// isSpecArch reports whether arch is one of the runtime-spec's SCMP_ARCH_*
// names, so that a typo is an error while a real but foreign arch is not.
func isSpecArch(arch specs.Arch) bool {
	switch arch {
	case specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
		specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
		specs.ArchSH, specs.ArchSHEB:
		return true
	}
	return false
}
