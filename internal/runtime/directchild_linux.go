package runtime

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The direct init: the container's init is a raw fork of berth (clone3
// without exec, as nsenter_linux.go does for joining a user namespace), so
// no second Go runtime boots for every container. The child only ever runs
// the nosplit code of this file: no allocation, no stack growth, no
// scheduler, raw system calls. Everything that needs Go (the rootfs set-up,
// path resolution, the executable look-up) is done by berth itself on a
// disposable thread that joins the child's namespaces (direct_linux.go). The
// child answers requests on its sync socket, in the framing of sync.go:
//
//	child → parent  'a'                 namespaces joined, stdio in place
//	parent → child  'P' proc request    child: fsopen/fsconfig/fsmount a proc
//	child → parent  'p' fd              (proc takes the pid namespace of the
//	                                     task that creates it: only the child can)
//	parent → child  'G' process blob    child: identity, limits, cwd …
//	parent → child  'J' + tasks fds     child: writes "0" to each (cgroup v1)
//	child → parent  'r'                 ready; then it waits for start
//	                                    (exec fifo, or 's' on the socket) and execs
//
// A failure is reported as msgDirectError: step, errno and a detail string.

const (
	msgDirectAlive = 'a'
	msgDirectProc  = 'P'
	msgDirectFd    = 'p'
	msgDirectGo    = 'G'
	msgDirectCgNS  = 'C' // child: unshare the cgroup namespace now, answer 'a'
	msgDirectTty   = 'T' // carries the pty slave (SCM_RIGHTS): the child's stdio and controlling terminal
	msgDirectJoin  = 'J' // carries v1 cgroup tasks files (SCM_RIGHTS): the child moves itself in, answers 'a'
	msgDirectError = 'E'
)

// Steps of the child, named in error messages (directStepNames).
const (
	stepJoin = iota + 1
	stepStdio
	stepRequest
	stepProc
	stepCgroupNS
	stepSetsid
	stepRlimit
	stepNoNewPrivs
	stepSeccomp
	stepBounding
	stepKeepCaps
	stepSetgroups
	stepSetgid
	stepSetuid
	stepCapset
	stepChdir
	stepWaitStart
	stepCloseFDs
	stepExec
	stepTty
	stepCgroupJoin
	stepPersonality
	stepScheduler
	stepIOPrio
)

const maxDirectJoins = 4

// maxDirectPassed bounds the fds one request frame carries.
const maxDirectPassed = 16

// cloneArgs is struct clone_args of clone3(2).
type cloneArgs struct {
	flags      uint64
	pidfd      uint64
	childTid   uint64
	parentTid  uint64
	exitSignal uint64
	stack      uint64
	stackSize  uint64
	tls        uint64
	setTid     uint64
	setTidSize uint64
	cgroup     uint64
}

// directArgs is what the child knows when it is born; the rest comes in
// requests. The parent allocates it (and buf) before the clone, so the
// child's copy is valid without any Go runtime.
type directArgs struct {
	clone   cloneArgs
	pidfd   int32
	sock    int32
	fifo    int32 // create mode: the exec fifo; -1 in run mode
	joins   [maxDirectJoins]int32
	jtypes  [maxDirectJoins]int32
	njoins  int
	files   [16]int32 // files[i] becomes fd i (stdio and preserved fds)
	nfiles  int
	nextfd  int32
	keepFDs int // fds 0..2+keepFDs survive the exec
	buf     unsafe.Pointer
	bufLen  uintptr
	proc    [8]byte  // "proc\x00"
	name    [16]byte // "berth-init\x00", the child's comm
	frame   [5 + 8 + 256]byte
	cmsg    [16 + 4*maxDirectPassed]byte // SCM_RIGHTS fds (CmsgSpace)
	passed  [maxDirectPassed]int32       // the fds the last frame carried
	npassed int
	tty     bool // stdio is a pty: make it the controlling terminal
}

// directHeader starts the 'G' blob. Offsets are relative to the blob's start
// (8-byte aligned); the child turns them into pointers.
type directHeader struct {
	flags        uint64
	uid, gid     uint64
	umask        uint64
	ngroups      uint64
	groupsOff    uint64 // []uint32
	nrlimits     uint64
	rlimitsOff   uint64 // []{resource, cur, max uint64}
	ndrop        uint64
	dropOff      uint64 // []uint64: capabilities to drop from the bounding set
	caps         [6]uint32
	nambient     uint64
	ambientOff   uint64 // []uint64
	cwdOff       uint64 // NUL-terminated
	pathOff      uint64 // NUL-terminated
	argvOff      uint64 // []uint64 offsets, then a 0
	nargv        uint64
	envvOff      uint64
	nenv         uint64
	filterOff    uint64 // []unix.SockFilter
	filterLen    uint64
	seccompFlags uint64
	seccompAlt   uint64 // flags to retry with on EINVAL
	ioprio       uint64
	persona      uint64
	sched        schedAttr
}

const (
	directNNP          = 1 << iota // set no_new_privs (and load seccomp last)
	directLateCgroupNS             // unshare the cgroup namespace on 'G'
	directSetgroups
	directSeccomp
	directIOPrio
	directSched
	directPersona
)

// directClone clones the child and, in the child, runs it. It returns the
// child's pid in the parent. The caller must block all signals on its
// locked thread around the call.
//
//go:norace
//go:nosplit
func directClone(a *directArgs) (int, syscall.Errno) {
	r1, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&a.clone)), unsafe.Sizeof(a.clone), 0)
	if e != 0 || r1 != 0 {
		return int(r1), e
	}
	directChild(a)
	return 0, 0
}

// directChildVM is where cloneVM's child starts, on its own stack.
//
//go:norace
//go:nosplit
func directChildVM(a *directArgs) { directChild(a) }

//go:norace
//go:nosplit
func directChild(a *directArgs) {
	// Until it execs, the child is a copy of berth: not dumpable, so that
	// nothing in the container (an exec into a created container) may open
	// /proc/1/exe, the berth binary, or ptrace it. execve resets this.
	syscall.RawSyscall6(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0, 0, 0, 0)
	syscall.RawSyscall6(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&a.name[0])), 0, 0, 0, 0)
	resetSignals()
	for i := 0; i < a.njoins; i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(a.joins[i]), uintptr(a.jtypes[i]), 0); e != 0 {
			directFail(a, stepJoin, e, nil)
		}
	}
	directPlaceFiles(a)
	directSend(a, msgDirectAlive, 0, 0)
	for {
		typ, n := directRecv(a)
		if typ == msgDirectProc {
			directProcMount(a, n)
			continue
		}
		if typ == msgDirectGo {
			break
		}
		if typ == msgDirectTty {
			directTakeTty(a)
			directSend(a, msgDirectAlive, 0, 0)
			continue
		}
		if typ == msgDirectJoin {
			directJoinCgroups(a)
			directSend(a, msgDirectAlive, 0, 0)
			continue
		}
		if typ == msgDirectCgNS {
			if _, _, e := syscall.RawSyscall(syscall.SYS_UNSHARE, unix.CLONE_NEWCGROUP, 0, 0); e != 0 {
				directFail(a, stepCgroupNS, e, nil)
			}
			directSend(a, msgDirectAlive, 0, 0)
			continue
		}
		directFail(a, stepRequest, syscall.EPROTO, nil)
	}
	h := (*directHeader)(a.buf)
	directRelocate(a, h)
	directIdentity(a, h)
	directSend(a, msgReady, 0, 0)
	if a.fifo >= 0 {
		for {
			_, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(a.fifo), uintptr(unsafe.Pointer(&a.frame[0])), 1)
			if e == syscall.EINTR {
				continue
			}
			if e != 0 {
				directFail(a, stepWaitStart, e, nil)
			}
			break
		}
		syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(a.fifo), 0, 0)
	} else if typ, _ := directRecv(a); typ != msgStart {
		directFail(a, stepWaitStart, syscall.EPROTO, nil)
	}
	directExec(a, h)
}

// resetSignals gives every signal its default action. The direct child
// inherits berth's Go handlers (with every signal blocked), and one must
// never run in it once signals are unblocked for the exec; and a container's
// process starts with default dispositions whatever its runtime ignores
// (the supervisor ignores SIGHUP and SIGPIPE, which an exec would pass on).
//
//go:norace
//go:nosplit
func resetSignals() {
	var act [4]uintptr // struct kernel_sigaction: handler, flags, restorer, mask
	for sig := uintptr(1); sig <= 64; sig++ {
		if sig == uintptr(syscall.SIGKILL) || sig == uintptr(syscall.SIGSTOP) {
			continue
		}
		if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, 0, uintptr(unsafe.Pointer(&act[0])), 8, 0, 0); e != 0 {
			continue
		}
		if act[0] == 0 { // SIG_DFL already
			continue
		}
		act = [4]uintptr{}
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&act[0])), 0, 8, 0, 0)
	}
}

// directPlaceFiles puts files[i] at fd i in two passes, as syscall.ForkExec
// does, the sync socket and exec fifo right after them, and closes every
// other fd: the child is a copy of a process that may hold other
// containers' pipes, and must not keep them open while it waits for start.
//
//go:norace
//go:nosplit
func directPlaceFiles(a *directArgs) {
	next := max(a.nextfd, int32(a.nfiles)+2)
	a.sock = directDupAbove(a, a.sock, next)
	next = a.sock + 1
	if a.fifo >= 0 {
		a.fifo = directDupAbove(a, a.fifo, next)
		next = a.fifo + 1
	}
	if e := rawPlaceFiles(&a.files, a.nfiles, next); e != 0 {
		directFail(a, stepStdio, e, nil)
	}
	own := a.nfiles
	if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.sock), uintptr(own), unix.O_CLOEXEC); e != 0 {
		directFail(a, stepStdio, e, nil)
	}
	a.sock = int32(own)
	if a.fifo >= 0 {
		own++
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.fifo), uintptr(own), unix.O_CLOEXEC); e != 0 {
			directFail(a, stepStdio, e, nil)
		}
		a.fifo = int32(own)
	}
	syscall.RawSyscall(unix.SYS_CLOSE_RANGE, uintptr(own+1), ^uintptr(0), 0)
}

// directDupAbove returns a close-on-exec copy of fd numbered at least low.
//
//go:norace
//go:nosplit
func directDupAbove(a *directArgs, fd, low int32) int32 {
	r, _, e := syscall.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_DUPFD_CLOEXEC, uintptr(low))
	if e != 0 {
		directFail(a, stepStdio, e, nil)
	}
	return int32(r)
}

// directProcMount makes a detached proc mount from the request in buf:
// attr uint64, n uint64, then n "key\0value\0" pairs (an empty value is a
// flag). It replies with the mount's fd, which the parent takes with
// pidfd_getfd.
//
//go:norace
//go:nosplit
func directProcMount(a *directArgs, n uintptr) {
	if n < 16 {
		directFail(a, stepProc, syscall.EPROTO, nil)
	}
	attr := *(*uint64)(a.buf)
	pairs := *(*uint64)(unsafe.Add(a.buf, 8))
	fs, _, e := syscall.RawSyscall(unix.SYS_FSOPEN, uintptr(unsafe.Pointer(&a.proc[0])), unix.FSOPEN_CLOEXEC, 0)
	if e != 0 {
		directFail(a, stepProc, e, nil)
	}
	off := uintptr(16)
	for i := uint64(0); i < pairs; i++ {
		key := unsafe.Add(a.buf, off)
		off += directStrlen(key) + 1
		val := unsafe.Add(a.buf, off)
		vlen := directStrlen(val)
		off += vlen + 1
		if off > n {
			directFail(a, stepProc, syscall.EPROTO, nil)
		}
		cmd, vp := uintptr(unix.FSCONFIG_SET_STRING), uintptr(val)
		if vlen == 0 {
			cmd, vp = unix.FSCONFIG_SET_FLAG, 0
		}
		if _, _, e := syscall.RawSyscall6(unix.SYS_FSCONFIG, fs, cmd, uintptr(key), vp, 0, 0); e != 0 {
			directFail(a, stepProc, e, (*byte)(key))
		}
	}
	if _, _, e := syscall.RawSyscall6(unix.SYS_FSCONFIG, fs, unix.FSCONFIG_CMD_CREATE, 0, 0, 0, 0); e != 0 {
		directFail(a, stepProc, e, nil)
	}
	m, _, e := syscall.RawSyscall(unix.SYS_FSMOUNT, fs, unix.FSMOUNT_CLOEXEC, uintptr(attr))
	if e != 0 {
		directFail(a, stepProc, e, nil)
	}
	syscall.RawSyscall(syscall.SYS_CLOSE, fs, 0, 0)
	directSend(a, msgDirectFd, uint32(m), 4)
}

// directRelocate turns the blob's offsets into pointers.
//
//go:norace
//go:nosplit
func directRelocate(a *directArgs, h *directHeader) {
	base := uint64(uintptr(a.buf))
	for _, v := range [2][2]uint64{{h.argvOff, h.nargv}, {h.envvOff, h.nenv}} {
		for i := uint64(0); i < v[1]; i++ {
			p := (*uint64)(unsafe.Add(a.buf, v[0]+8*i))
			*p += base
		}
	}
}

// directIdentity applies, in the order prepareProcess does: cgroup
// namespace, session, rlimits, NNP or seccomp, bounding set, groups and ids
// (keeping capabilities), capabilities, ambient set, cwd, umask.
//
//go:norace
//go:nosplit
func directIdentity(a *directArgs, h *directHeader) {
	if h.flags&directLateCgroupNS != 0 {
		if _, _, e := syscall.RawSyscall(syscall.SYS_UNSHARE, unix.CLONE_NEWCGROUP, 0, 0); e != 0 {
			directFail(a, stepCgroupNS, e, nil)
		}
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETSID, 0, 0, 0); e != 0 && e != syscall.EPERM {
		directFail(a, stepSetsid, e, nil)
	}
	if a.tty {
		if _, _, e := syscall.RawSyscall(syscall.SYS_IOCTL, 0, syscall.TIOCSCTTY, 0); e != 0 {
			directFail(a, stepTty, e, nil)
		}
	}
	// runtime-spec 1.1/1.2 attributes, while CAP_SYS_NICE is still held.
	if h.flags&directPersona != 0 {
		if _, _, e := syscall.RawSyscall(syscall.SYS_PERSONALITY, uintptr(h.persona), 0, 0); e != 0 {
			directFail(a, stepPersonality, e, nil)
		}
	}
	if h.flags&directSched != 0 {
		if _, _, e := syscall.RawSyscall(unix.SYS_SCHED_SETATTR, 0, uintptr(unsafe.Pointer(&h.sched)), 0); e != 0 {
			directFail(a, stepScheduler, e, nil)
		}
	}
	if h.flags&directIOPrio != 0 {
		if _, _, e := syscall.RawSyscall(unix.SYS_IOPRIO_SET, 1, 0, uintptr(h.ioprio)); e != 0 {
			directFail(a, stepIOPrio, e, nil)
		}
	}
	for i := uint64(0); i < h.nrlimits; i++ {
		rl := unsafe.Add(a.buf, h.rlimitsOff+24*i)
		res := *(*uint64)(rl)
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(res), uintptr(unsafe.Add(rl, 8)), 0, 0, 0); e != 0 {
			directFail(a, stepRlimit, e, nil)
		}
	}
	if h.flags&directNNP != 0 {
		if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
			directFail(a, stepNoNewPrivs, e, nil)
		}
	} else if h.flags&directSeccomp != 0 {
		directSeccompLoad(a, h)
	}
	for i := uint64(0); i < h.ndrop; i++ {
		c := *(*uint64)(unsafe.Add(a.buf, h.dropOff+8*i))
		if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0, 0); e != 0 {
			directFail(a, stepBounding, e, nil)
		}
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0, 0, 0, 0); e != 0 {
		directFail(a, stepKeepCaps, e, nil)
	}
	if h.flags&directSetgroups != 0 {
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(h.ngroups), uintptr(unsafe.Add(a.buf, h.groupsOff)), 0); e != 0 {
			directFail(a, stepSetgroups, e, nil)
		}
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(h.gid), uintptr(h.gid), uintptr(h.gid)); e != 0 {
		directFail(a, stepSetgid, e, nil)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(h.uid), uintptr(h.uid), uintptr(h.uid)); e != 0 {
		directFail(a, stepSetuid, e, nil)
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0, 0, 0, 0); e != 0 {
		directFail(a, stepKeepCaps, e, nil)
	}
	hdr := [2]uint32{unix.LINUX_CAPABILITY_VERSION_3, 0}
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr[0])), uintptr(unsafe.Pointer(&h.caps[0])), 0); e != 0 {
		directFail(a, stepCapset, e, nil)
	}
	for i := uint64(0); i < h.nambient; i++ {
		// Ambient capabilities must be permitted and inheritable; the
		// kernel refuses others, and runc ignores that. So do we.
		c := *(*uint64)(unsafe.Add(a.buf, h.ambientOff+8*i))
		syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0, 0)
	}
	cwd := unsafe.Add(a.buf, h.cwdOff)
	if _, _, e := syscall.RawSyscall(syscall.SYS_CHDIR, uintptr(cwd), 0, 0); e != 0 {
		directFail(a, stepChdir, e, (*byte)(cwd))
	}
	syscall.RawSyscall(syscall.SYS_UMASK, uintptr(h.umask), 0, 0)
}

//go:norace
//go:nosplit
func directSeccompLoad(a *directArgs, h *directHeader) {
	prog := unix.SockFprog{Len: uint16(h.filterLen), Filter: (*unix.SockFilter)(unsafe.Add(a.buf, h.filterOff))}
	_, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(h.seccompFlags), uintptr(unsafe.Pointer(&prog)))
	if e == syscall.EINVAL && h.seccompAlt != h.seccompFlags {
		_, _, e = syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(h.seccompAlt), uintptr(unsafe.Pointer(&prog)))
	}
	if e != 0 {
		directFail(a, stepSeccomp, e, nil)
	}
}

// directExec is execFinal of the child: close fds, unblock signals,
// [seccomp when NNP is on: as late as possible], exec.
//
//go:norace
//go:nosplit
func directExec(a *directArgs, h *directHeader) {
	// Every fd above the kept ones was closed right after the clone
	// (directPlaceFiles) but the socket; this is insurance, and the
	// container's seccomp profile (loaded already without NNP) may refuse
	// close_range: then the few fds that can exist get FD_CLOEXEC.
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, uintptr(3+a.keepFDs), ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC); e != 0 {
		for fd := uintptr(3 + a.keepFDs); fd <= uintptr(a.nfiles)+2; fd++ {
			syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_SETFD, syscall.FD_CLOEXEC)
		}
	}
	var empty [2]uint32
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&empty[0])), 0, 8, 0, 0)
	if h.flags&directNNP != 0 && h.flags&directSeccomp != 0 {
		directSeccompLoad(a, h)
	}
	path := unsafe.Add(a.buf, h.pathOff)
	_, _, e := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(path),
		uintptr(unsafe.Add(a.buf, h.argvOff)), uintptr(unsafe.Add(a.buf, h.envvOff)))
	directFail(a, stepExec, e, (*byte)(path))
}

// directRecv reads one frame into buf and returns its type and length.
//
//go:norace
//go:nosplit
func directRecv(a *directArgs) (byte, uintptr) {
	// The header comes with recvmsg: a frame may carry an fd, attached to
	// its first bytes (read would drop it).
	iov := unix.Iovec{Base: &a.frame[0], Len: 5}
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &a.cmsg[0], Controllen: uint64(len(a.cmsg))}
	got := uintptr(0)
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, uintptr(a.sock), uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			directFail(a, stepRequest, e, nil)
		}
		if r == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
		}
		got = r
		break
	}
	a.npassed = 0
	if msg.Controllen >= 20 && *(*int32)(unsafe.Pointer(&a.cmsg[8])) == unix.SOL_SOCKET && *(*int32)(unsafe.Pointer(&a.cmsg[12])) == unix.SCM_RIGHTS {
		// cmsg_len covers the 16-byte header and the fds.
		n := int((*(*uint64)(unsafe.Pointer(&a.cmsg[0])) - 16) / 4)
		for i := 0; i < n && i < maxDirectPassed; i++ {
			a.passed[i] = *(*int32)(unsafe.Pointer(&a.cmsg[16+4*i]))
		}
		a.npassed = min(n, maxDirectPassed)
	}
	if got < 5 {
		directReadFull(a, unsafe.Pointer(&a.frame[got]), 5-got)
	}
	n := uintptr(a.frame[1]) | uintptr(a.frame[2])<<8 | uintptr(a.frame[3])<<16 | uintptr(a.frame[4])<<24
	if n > a.bufLen {
		directFail(a, stepRequest, syscall.E2BIG, nil)
	}
	typ := a.frame[0]
	directReadFull(a, a.buf, n)
	return typ, n
}

//go:norace
//go:nosplit
func directReadFull(a *directArgs, p unsafe.Pointer, n uintptr) {
	for n > 0 {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(a.sock), uintptr(p), n)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			directFail(a, stepRequest, e, nil)
		}
		if r == 0 {
			// The parent is gone: nothing left to do.
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
		}
		p = unsafe.Add(p, r)
		n -= r
	}
}

// directSend writes a frame with an optional 4-byte payload v.
//
//go:norace
//go:nosplit
func directSend(a *directArgs, typ byte, v uint32, n uintptr) {
	f := &a.frame
	f[0], f[1], f[2], f[3], f[4] = typ, byte(n), 0, 0, 0
	f[5], f[6], f[7], f[8] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	directWrite(a, 5+n)
}

//go:norace
//go:nosplit
func directWrite(a *directArgs, n uintptr) {
	off := uintptr(0)
	for off < n {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(a.sock), uintptr(unsafe.Add(unsafe.Pointer(&a.frame[0]), off)), n-off)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
		}
		off += r
	}
}

// directFail reports step, errno and a detail (a NUL-terminated string, up
// to 256 bytes of it) to the parent and exits.
//
//go:norace
//go:nosplit
func directFail(a *directArgs, step int, e syscall.Errno, detail *byte) {
	f := &a.frame
	f[5], f[6], f[7], f[8] = byte(step), byte(step>>8), 0, 0
	f[9], f[10], f[11], f[12] = byte(e), byte(e>>8), byte(e>>16), byte(e>>24)
	n := uintptr(8)
	if detail != nil {
		for d := unsafe.Pointer(detail); n < 8+256 && *(*byte)(d) != 0; d = unsafe.Add(d, 1) {
			f[5+n] = *(*byte)(d)
			n++
		}
	}
	f[0], f[1], f[2], f[3], f[4] = msgDirectError, byte(n), byte(n>>8), 0, 0
	// One write, straight to RawSyscall6: directFail ends the deepest
	// nosplit chains (forkEnter → directChild → … → here), whose frames
	// must stay within the linker's limit on arm64 too. A frame this small
	// goes out whole on a stream socket.
	syscall.RawSyscall6(syscall.SYS_WRITE, uintptr(a.sock), uintptr(unsafe.Pointer(&f[0])), 5+n, 0, 0, 0)
	syscall.RawSyscall6(syscall.SYS_EXIT_GROUP, 1, 0, 0, 0, 0, 0)
}

//go:norace
//go:nosplit
func directStrlen(p unsafe.Pointer) uintptr {
	n := uintptr(0)
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return n
}

// directTakeTty makes the pty slave the frame carried fds 0, 1 and 2; the
// controlling terminal comes after setsid (directIdentity).
//
//go:norace
//go:nosplit
func directTakeTty(a *directArgs) {
	if a.npassed != 1 {
		directFail(a, stepTty, syscall.EBADF, nil)
	}
	for fd := uintptr(0); fd < 3; fd++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(a.passed[0]), fd, 0); e != 0 {
			directFail(a, stepTty, e, nil)
		}
	}
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(a.passed[0]), 0, 0)
	a.npassed = 0
	a.tty = true
}

// directJoinCgroups moves the child into the cgroup v1 hierarchies whose
// tasks files the frame carried. Writing "0" to tasks moves the writing
// thread alone, which the kernel does without taking the global lock that
// a write of a pid to cgroup.procs takes for writing: that one waits for
// an RCU grace period, up to tens of milliseconds on an idle host, and the
// child is single-threaded, so the thread is the whole process.
//
//go:norace
//go:nosplit
func directJoinCgroups(a *directArgs) {
	zero := [1]byte{'0'}
	for i := 0; i < a.npassed; i++ {
		fd := uintptr(a.passed[i])
		_, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&zero[0])), 1)
		syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
		if e != 0 {
			directFail(a, stepCgroupJoin, e, nil)
		}
	}
	a.npassed = 0
}
