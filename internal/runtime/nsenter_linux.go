package runtime

import (
	"encoding/binary"
	"fmt"
	goruntime "runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Joining a user namespace needs a single-threaded caller, and a Go process
// never is one. So berth forks without exec, the way Go's own forkExec does:
// the child is a copy of this one thread, runs only raw system calls from a
// nosplit function (no allocation, no stack growth, no scheduler), joins the
// namespaces in order, and forks a grandchild with CLONE_PARENT (so it is our
// child, and is born inside the joined pid namespace) that execs berth's exec
// stage from an fd. The middle child reports the grandchild's pid on a pipe.

const maxEnterFDs = 8

type enterArgs struct {
	nsfds    [maxEnterFDs]int32
	nstypes  [maxEnterFDs]int32 // CLONE_NEW* of each: setns refuses an fd of another type
	nns      int
	inherit  [4]int32 // fds whose close-on-exec flag the grandchild clears
	ninherit int
	exefd    int
	rootID   bool    // become uid/gid 0 after joining: needed after entering a user namespace
	unshare  uintptr // namespaces the middle child creates after joining (CLONE_NEW*)
	// files[i] becomes fd i of the grandchild (stdio and extra files), as
	// syscall.ForkExec's ProcAttr.Files; nextfd is above all of them.
	files  [16]int32
	nfiles int
	nextfd int32
	path   *byte // "" for execveat AT_EMPTY_PATH
	argv   **byte
	envv   **byte
	pipeW  int
	report [8]byte
	// direct, when set, makes the grandchild a direct child (its request
	// loop, directchild_linux.go) instead of exec'ing berth's exec stage.
	direct *directArgs
	// clone, when clone3 is set, is how the grandchild is made: clone3 with
	// CLONE_PARENT|CLONE_INTO_CGROUP, born in a cgroup2 directory.
	clone  cloneArgs
	clone3 bool
}

// forkEnter returns the middle child's pid in the parent. It must be called
// with signals blocked on a locked thread.
//
//go:norace
//go:nosplit
func forkEnter(a *enterArgs) (int, syscall.Errno) {
	r1, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 || r1 != 0 {
		return int(r1), e
	}
	// Middle child.
	for i := 0; i < a.nns; i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(a.nsfds[i]), uintptr(a.nstypes[i]), 0); e != 0 {
			enterFail(a, uint32(e)|uint32(i+1)<<16)
		}
	}
	if a.rootID {
		// Host root is unmapped in the container's user namespace; exec
		// as that uid would drop every capability.
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0); e != 0 {
			enterFail(a, uint32(e))
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0); e != 0 {
			enterFail(a, uint32(e))
		}
	}
	if a.unshare != 0 {
		// New namespaces, owned by the joined user namespace; a new pid
		// namespace takes effect for the grandchild, its pid 1.
		if _, _, e := syscall.RawSyscall(syscall.SYS_UNSHARE, a.unshare, 0, 0); e != 0 {
			enterFail(a, uint32(e))
		}
	}
	if a.clone3 {
		r1, _, e = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&a.clone)), unsafe.Sizeof(a.clone), 0)
	} else {
		r1, _, e = syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD|unix.CLONE_PARENT), 0, 0, 0, 0, 0)
	}
	if e != 0 {
		enterFail(a, uint32(e))
	}
	if r1 == 0 {
		// Grandchild.
		if a.direct != nil {
			directChild(a.direct) // never returns
		}
		for i := 0; i < a.ninherit; i++ {
			syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(a.inherit[i]), syscall.F_SETFD, 0)
		}
		rawPlaceFiles(&a.files, a.nfiles, a.nextfd)
		syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(a.exefd), uintptr(unsafe.Pointer(a.path)),
			uintptr(unsafe.Pointer(a.argv)), uintptr(unsafe.Pointer(a.envv)), unix.AT_EMPTY_PATH, 0)
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 127, 0, 0)
	}
	a.report[0] = byte(r1)
	a.report[1] = byte(r1 >> 8)
	a.report[2] = byte(r1 >> 16)
	a.report[3] = byte(r1 >> 24)
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(a.pipeW), uintptr(unsafe.Pointer(&a.report[0])), 8)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	return 0, 0
}

//go:norace
//go:nosplit
func enterFail(a *enterArgs, code uint32) {
	a.report[4] = byte(code)
	a.report[5] = byte(code >> 8)
	a.report[6] = byte(code >> 16)
	a.report[7] = byte(code >> 24)
	syscall.RawSyscall(syscall.SYS_WRITE, uintptr(a.pipeW), uintptr(unsafe.Pointer(&a.report[0])), 8)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
}

// enterSpec says what spawnEntered does.
type enterSpec struct {
	exe     string   // berth binary, exec'd from a read-only bind mount
	nsPaths []string // joined in this order
	userns  bool     // nsPaths includes a user namespace
	unshare uintptr  // CLONE_NEW* flags to create after joining
	files   []int    // fd i of the new process is files[i]; nil keeps fds as they are
	inherit []int    // fds the exec stage must inherit
	args    []string
	env     []string
	// direct makes the process a direct child instead of berth's exec
	// stage (exe, args, env, files and inherit are then unused).
	direct *directArgs
	// cgroupFD, for a direct child, is a cgroup2 directory it is born in
	// (-1: none). Its cgroup namespace is then joined by the grandchild
	// itself, once in its cgroup: a namespace that is a delegation boundary
	// (nsdelegate) would hide the target from a creator already inside it.
	cgroupFD int
}

// spawnEntered starts berth's exec stage inside the namespaces and returns
// its pid; the process is a child of the caller.
func spawnEntered(s enterSpec) (int, error) {
	if len(s.nsPaths) > maxEnterFDs || len(s.inherit) > 4 {
		return 0, fmt.Errorf("too many namespaces or fds to pass")
	}
	if s.direct != nil {
		// No berth to exec, so no private mount namespace for a read-only
		// view of it: the fork only needs a thread of its own while it
		// blocks signals, not a new one to throw away.
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		return spawnEnteredLocked(s)
	}
	// The thread gets a private mount namespace and is thrown away after.
	return onDisposableThread(func() (int, error) { return spawnEnteredLocked(s) })
}

func spawnEnteredLocked(s enterSpec) (int, error) {
	exefd := -1
	if s.direct == nil {
		var err error
		if exefd, err = protectedExe(s.exe); err != nil {
			return 0, err
		}
		defer unix.Close(exefd)
	}
	var a enterArgs
	a.direct = s.direct
	intoCgroup := s.direct != nil && s.cgroupFD >= 0
	var movedAside []int32
	var joined []string // the middle child's, in a.nsfds order
	for _, p := range s.nsPaths {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open namespace %s: %w", p, err)
		}
		defer unix.Close(fd)
		t, _ := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
		if intoCgroup && t == unix.CLONE_NEWCGROUP && s.direct.njoins < maxDirectJoins {
			d := s.direct
			d.joins[d.njoins], d.jtypes[d.njoins] = int32(fd), int32(t)
			d.njoins++
			d.nextfd = max(d.nextfd, int32(fd)+1)
			movedAside = append(movedAside, int32(fd))
			continue
		}
		a.nsfds[a.nns], a.nstypes[a.nns] = int32(fd), int32(t)
		a.nns++
		joined = append(joined, p)
	}
	if intoCgroup {
		a.clone3 = true
		a.clone.flags = unix.CLONE_PARENT | unix.CLONE_INTO_CGROUP
		a.clone.cgroup = uint64(s.cgroupFD)
		movedAside = append(movedAside, int32(s.cgroupFD))
	}
	for i, fd := range s.inherit {
		a.inherit[i] = int32(fd)
	}
	a.ninherit = len(s.inherit)
	a.exefd = exefd
	a.rootID = s.userns
	a.unshare = s.unshare
	if len(s.files) > len(a.files) {
		return 0, fmt.Errorf("too many files to pass: %d", len(s.files))
	}
	next := int32(len(s.files))
	for i, fd := range s.files {
		a.files[i] = int32(fd)
		if int32(fd) >= next {
			next = int32(fd) + 1
		}
	}
	a.nfiles = len(s.files)
	empty, _ := syscall.BytePtrFromString("")
	a.path = empty
	argv, err := syscall.SlicePtrFromStrings(s.args)
	if err != nil {
		return 0, err
	}
	envv, err := syscall.SlicePtrFromStrings(s.env)
	if err != nil {
		return 0, err
	}
	a.argv, a.envv = &argv[0], &envv[0]
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	defer unix.Close(p[0])
	a.pipeW = p[1]
	// Moved-aside fds must not land on one the grandchild still needs.
	for _, fd := range append(append([]int32{int32(exefd), int32(p[0]), int32(p[1])}, a.nsfds[:a.nns]...), movedAside...) {
		if fd >= next {
			next = fd + 1
		}
	}
	a.nextfd = next

	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
		unix.Close(p[1])
		return 0, fmt.Errorf("block signals: %w", err)
	}
	middle, errno := forkEnter(&a)
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	unix.Close(p[1])
	goruntime.KeepAlive(argv)
	goruntime.KeepAlive(envv)
	if errno != 0 {
		return 0, fmt.Errorf("fork: %w", errno)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(middle, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	var rep [8]byte
	n, err := unix.Read(p[0], rep[:])
	if err != nil || n != 8 {
		return 0, fmt.Errorf("join namespaces: helper exited (%v) without a report", ws)
	}
	if code := binary.LittleEndian.Uint32(rep[4:]); code != 0 {
		errno := syscall.Errno(code & 0xffff)
		if idx := int(code >> 16); idx > 0 && idx <= len(joined) {
			return 0, fmt.Errorf("join namespace %s: %w", joined[idx-1], errno)
		}
		return 0, fmt.Errorf("fork into namespaces: %w", errno)
	}
	return int(binary.LittleEndian.Uint32(rep[:4])), nil
}

// rawPlaceFiles makes fd i of a raw forked child a copy of files[i], in two
// passes as syscall.ForkExec does: first every source below its target is
// moved to next or above, out of the way, then each is dup'ed onto its
// target (without close-on-exec).
//
//go:norace
//go:nosplit
func rawPlaceFiles(files *[16]int32, n int, next int32) syscall.Errno {
	for i := 0; i < n; i++ {
		if files[i] >= 0 && int(files[i]) < i {
			r, _, e := syscall.RawSyscall(unix.SYS_FCNTL, uintptr(files[i]), unix.F_DUPFD_CLOEXEC, uintptr(next))
			if e != 0 {
				return e
			}
			files[i] = int32(r)
			next = int32(r) + 1
		}
	}
	for i := 0; i < n; i++ {
		if files[i] < 0 {
			continue
		}
		if int(files[i]) == i {
			syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(i), syscall.F_SETFD, 0)
			continue
		}
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(files[i]), uintptr(i), 0); e != 0 {
			return e
		}
	}
	return 0
}
