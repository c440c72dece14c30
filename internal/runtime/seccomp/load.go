package seccomp

import (
	"fmt"
	"unsafe"

	"github.com/berth-dev/berth/internal/errdefs"
	"golang.org/x/sys/unix"
)

// optionalFlags may be dropped when the kernel predates them: LOG (4.14) only
// adds audit records and SPEC_ALLOW (4.17) only skips a mitigation, so the
// filter without them is as strict.
const optionalFlags = unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW

// Load installs p on the calling thread only, with seccomp(2)
// SECCOMP_SET_MODE_FILTER and p.Flags; if the kernel rejects those flags as
// unknown it retries without the optional ones (LOG, SPEC_ALLOW).
//
// The caller must have locked the goroutine to its thread
// (runtime.LockOSThread) and have set no_new_privs or hold CAP_SYS_ADMIN.
// Load does not allocate on success and makes one or two syscalls, so it can
// run right before execve; the filter then applies to everything the thread
// does, including the rest of the Go runtime's work before execve.
func (p *Program) Load() error {
	if len(p.Filter) == 0 || len(p.Filter) > unix.BPF_MAXINSNS {
		return fmt.Errorf("seccomp: load: filter of %d instructions: %w", len(p.Filter), errdefs.ErrInvalidArgument)
	}
	prog := unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
	flags := p.Flags
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	if errno == unix.EINVAL && flags&optionalFlags != 0 {
		flags &^= optionalFlags
		_, _, errno = unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	}
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter (%d instructions, flags %#x): %w", len(p.Filter), flags, errno)
	}
	return nil
}

// FallbackFlags are the flags Load retries with when the kernel refuses
// p.Flags: for callers that load the filter themselves (a raw forked child).
func (p *Program) FallbackFlags() uint { return p.Flags &^ optionalFlags }
