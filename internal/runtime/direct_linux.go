package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsroot"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
	"github.com/berth-dev/berth/internal/runtime/seccomp"
)

// DirectInitEnv set to 0 makes the runtime always start the container's init
// by exec'ing berth (the path that also serves terminals, user namespaces and
// container hooks); for comparison and for tests of that path.
const DirectInitEnv = "BERTH_DIRECT_INIT"

// directBufSize bounds the process configuration (argv, env, seccomp filter
// …) the direct init can take; a larger one falls back to the exec'd init.
const directBufSize = 1 << 20

var directJoinable = map[specs.LinuxNamespaceType]bool{
	specs.NetworkNamespace: true, specs.IPCNamespace: true, specs.UTSNamespace: true, specs.CgroupNamespace: true,
}

// directEligible reports whether the container can have a direct init: the
// cases it does not cover (user namespaces, hooks that run in the
// container's namespaces, joined mount or pid namespaces, no mount
// namespace, kernels before 5.11) keep the exec'd init.
func directEligible(peek *specPeek) bool {
	if os.Getenv(DirectInitEnv) == "0" || !kernelAtLeast(5, 11) {
		return false
	}
	if h := peek.Hooks; h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer) > 0 {
		return false
	}
	mountNS, joins := false, 0
	for _, ns := range peek.Linux.Namespaces {
		switch {
		case ns.Type == specs.UserNamespace:
			return false
		case ns.Path != "" && !directJoinable[ns.Type]:
			return false
		case ns.Path != "":
			joins++
		case ns.Type == specs.MountNamespace:
			mountNS = true
		}
	}
	return mountNS && joins <= maxDirectJoins
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, _ := strconv.Atoi(parts[0])
	mnr, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return maj > major || (maj == major && mnr >= minor)
}

// directSpawn is what the clone needs.
type directSpawn struct {
	cloneFlags uintptr
	joins      []nsJoin
	files      []int // stdio and preserved fds: files[i] becomes fd i
	keepFDs    int
	sock       int // the child's end of the sync socket
	fifo       int // -1 in run mode
	cgroupFD   int // -1, or the cgroup v2 directory to be born in
}

// directInit is a running direct init and the locked thread that set it up.
type directInit struct {
	pid    int
	pidfd  int
	jobc   chan *directJob
	resc   chan directResult
	region *directRegion // nil when the child was forked
}

type directResult struct {
	path  string
	slave *os.File // the pty slave, with a terminal
	err   error
}

// directJob is the set-up the thread does inside the child's namespaces.
type directJob struct {
	conn          *syncConn
	cfg           *initConfig
	cgw           *cgroupWork
	selfJoin      bool     // v1: the child moves itself into its cgroups once they are ready ('J')
	earlyCgroupNS bool     // v2: the child unshares its cgroup namespace before the mounts
	lateCgroupNS  bool     // the child unshares it on 'G', once in its cgroup
	console       *os.File // the console socket, with a terminal
	tr            phaseTracer
}

// startDirect clones the child on a locked thread of its own. That thread
// stays alive, waiting for the set-up job (run), so that it can join the
// child's namespaces: it is never unlocked and dies with its goroutine.
//
// Where the architecture has cloneVM the child shares berth's memory
// (CLONE_VM) instead of getting a copy of it: no page tables to copy, and
// none of the copy-on-write faults (each with a TLB shoot-down) that every
// write of berth's Go runtime took while a forked child waited for start;
// they were a tenth of a container's start. The child then only touches
// its directRegion, which the Go heap never reuses; it is released once the
// child has exec'd or died (d.region.release).
func startDirect(s directSpawn) (*directInit, error) {
	var a *directArgs
	var region *directRegion
	var buf []byte
	var err error
	if cloneVMSupported {
		region, err = newDirectRegion()
		if err == nil {
			a = region.args()
			err = initDirectArgs(a, region.buf(), s.sock, s.fifo, s.keepFDs, s.files)
		}
	} else {
		a, buf, err = newDirectArgs(s.sock, s.fifo, s.keepFDs, s.files)
	}
	if err != nil {
		region.release()
		return nil, err
	}
	a.clone.flags = uint64(s.cloneFlags) | unix.CLONE_PIDFD
	a.clone.pidfd = uint64(uintptr(unsafe.Pointer(&a.pidfd)))
	a.clone.exitSignal = uint64(syscall.SIGCHLD)
	if region != nil {
		a.clone.flags |= unix.CLONE_VM
		a.clone.stack, a.clone.stackSize = region.stack()
	}
	if s.cgroupFD >= 0 {
		a.clone.flags |= unix.CLONE_INTO_CGROUP
		a.clone.cgroup = uint64(s.cgroupFD)
	}
	next := a.nextfd
	for _, j := range s.joins {
		fd, err := unix.Open(j.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, fd := range a.joins[:a.njoins] {
				unix.Close(int(fd))
			}
			region.release()
			return nil, fmt.Errorf("join %s namespace %s: %w", j.typ, j.path, err)
		}
		a.joins[a.njoins], a.jtypes[a.njoins] = int32(fd), int32(j.flag)
		a.njoins++
		next = max(next, int32(fd)+1)
	}
	njoins := a.njoins
	joinFDs := a.joins
	defer func() {
		for _, fd := range joinFDs[:njoins] {
			unix.Close(int(fd))
		}
	}()
	a.nextfd = max(next, a.sock+1, a.fifo+1)

	d := &directInit{jobc: make(chan *directJob, 1), resc: make(chan directResult, 1), region: region}
	started := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		var all, old unix.Sigset_t
		for i := range all.Val {
			all.Val[i] = ^uint64(0)
		}
		if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
			started <- fmt.Errorf("block signals: %w", err)
			return
		}
		var pid int
		var errno syscall.Errno
		if region != nil {
			p, e := cloneVM(&a.clone, unsafe.Sizeof(a.clone), a)
			pid, errno = int(p), syscall.Errno(e)
		} else {
			pid, errno = directClone(a)
		}
		_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
		goruntime.KeepAlive(buf)
		if errno != 0 {
			started <- fmt.Errorf("clone: %w", errno)
			return
		}
		d.pid, d.pidfd = pid, int(a.pidfd)
		started <- nil
		job := <-d.jobc
		if job == nil {
			return
		}
		path, slave, err := job.run(d.pidfd)
		d.resc <- directResult{path, slave, err}
	}()
	if err := <-started; err != nil {
		region.release()
		return nil, err
	}
	return d, nil
}

// newDirectArgs allocates what a direct child needs before it is forked:
// its arguments and the buffer its requests land in (buf must stay alive
// until the fork).
func newDirectArgs(sock, fifo, keepFDs int, files []int) (*directArgs, []byte, error) {
	a := new(directArgs)
	buf := make([]byte, directBufSize)
	if err := initDirectArgs(a, buf, sock, fifo, keepFDs, files); err != nil {
		return nil, nil, err
	}
	return a, buf, nil
}

func initDirectArgs(a *directArgs, buf []byte, sock, fifo, keepFDs int, files []int) error {
	*a = directArgs{sock: int32(sock), fifo: int32(fifo), keepFDs: keepFDs}
	copy(a.proc[:], "proc\x00")
	copy(a.name[:], "berth-init\x00")
	a.buf, a.bufLen = unsafe.Pointer(&buf[0]), uintptr(len(buf))
	if len(files) > len(a.files) {
		return fmt.Errorf("too many files to pass: %d", len(files))
	}
	next := int32(len(files))
	for i, fd := range files {
		a.files[i] = int32(fd)
		next = max(next, int32(fd)+1)
	}
	a.nfiles = len(files)
	a.nextfd = max(next, a.sock+1, a.fifo+1)
	return nil
}

// directRegion is the memory of a child cloned with CLONE_VM, outside the
// Go heap: a guard page, the child's stack, its directArgs and its request
// buffer. Pages are only backed once touched.
type directRegion struct{ mem []byte }

const (
	directGuardSize = 4 << 10
	directStackSize = 64 << 10
	directArgsOff   = directGuardSize + directStackSize
	directBufOff    = directArgsOff + (unsafe.Sizeof(directArgs{})+4095)&^4095
)

func newDirectRegion() (*directRegion, error) {
	mem, err := unix.Mmap(-1, 0, int(directBufOff)+directBufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map direct init memory: %w", err)
	}
	if err := unix.Mprotect(mem[:directGuardSize], unix.PROT_NONE); err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("guard direct init stack: %w", err)
	}
	return &directRegion{mem: mem}, nil
}

func (r *directRegion) args() *directArgs {
	return (*directArgs)(unsafe.Pointer(&r.mem[directArgsOff]))
}

func (r *directRegion) buf() []byte { return r.mem[directBufOff:] }

// stack returns clone_args' stack and stack_size.
func (r *directRegion) stack() (uint64, uint64) {
	return uint64(uintptr(unsafe.Pointer(&r.mem[directGuardSize]))), directStackSize
}

// release unmaps the region; only once the child has exec'd or died.
func (r *directRegion) release() {
	if r == nil || r.mem == nil {
		return
	}
	_ = unix.Munmap(r.mem)
	r.mem = nil
}

// setup has the thread mount the rootfs, then sends the process
// configuration and waits for the child to be ready.
func (d *directInit) setup(job *directJob, p *specs.Process, filter *seccomp.Program) error {
	d.jobc <- job
	res := <-d.resc
	if res.err != nil {
		return res.err
	}
	err := job.cgw.wait()
	if err == nil && job.selfJoin {
		err = directJoin(job.conn, job.cgw.cg, d.pid)
	}
	if err != nil {
		if res.slave != nil {
			res.slave.Close()
		}
		return err
	}
	return directProcess(job.conn, res.slave, p, res.path, filter, job.lateCgroupNS, job.cfg.Attrs)
}

// directJoin has the child move itself into its v1 cgroups (see
// directJoinCgroups); too many hierarchies for one frame are joined by pid.
func directJoin(conn *syncConn, cg *cgroup.Manager, pid int) error {
	files, err := cg.TaskFiles()
	if err != nil {
		return fmt.Errorf("join cgroup: %w", err)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if len(files) == 0 {
		return nil
	}
	if len(files) > maxDirectPassed {
		if err := cg.Join(pid); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
		return nil
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if err := conn.sendFDs(msgDirectJoin, fds...); err != nil {
		return fmt.Errorf("send cgroups to init: %w", err)
	}
	if _, err := conn.expect(msgDirectAlive); err != nil {
		return err
	}
	return nil
}

// directProcess hands a direct child its terminal, if any, and its process,
// and waits until it is ready.
func directProcess(conn *syncConn, slave *os.File, p *specs.Process, path string, filter *seccomp.Program, lateCgroupNS bool, attrs procAttrs) error {
	if slave != nil {
		// The slave goes to the child as its stdio, with the frame that
		// carries it.
		err := conn.sendFDs(msgDirectTty, int(slave.Fd()))
		slave.Close()
		if err != nil {
			return fmt.Errorf("send the terminal to init: %w", err)
		}
		if _, err := conn.expect(msgDirectAlive); err != nil {
			return err
		}
	}
	blob, err := directBlob(p, path, filter, lateCgroupNS, attrs)
	if err != nil {
		return err
	}
	if err := conn.send(msgDirectGo, blob); err != nil {
		return fmt.Errorf("send process to init: %w", err)
	}
	if _, err := conn.expect(msgReady); err != nil {
		return err
	}
	return nil
}

// close releases the pidfd and, if setup never ran, the thread.
func (d *directInit) close() {
	select {
	case d.jobc <- nil:
	default:
	}
	unix.Close(d.pidfd)
}

// run is the thread's part: join the child's namespaces (its own fs
// attributes first, so that it may join a mount namespace) and do what the
// exec'd init does there, up to finding the executable.
func (j *directJob) run(pidfd int) (string, *os.File, error) {
	if _, err := j.conn.expect(msgDirectAlive); err != nil {
		return "", nil, err
	}
	if j.earlyCgroupNS {
		if err := j.conn.send(msgDirectCgNS, nil); err != nil {
			return "", nil, err
		}
		if _, err := j.conn.expect(msgDirectAlive); err != nil {
			return "", nil, err
		}
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return "", nil, fmt.Errorf("unshare fs attributes: %w", err)
	}
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	if err := unix.Setns(pidfd, flags); err != nil {
		return "", nil, fmt.Errorf("join the init's namespaces: %w", err)
	}
	cfg := j.cfg
	setup := &rootfsSetup{cfg: cfg, rootfs: cfg.Rootfs, cgroupPaths: cfg.CgroupPaths,
		newCgroupNS: cfg.NewCgroupNS && j.earlyCgroupNS, waitCgroupDirs: j.cgw.dirsReady,
		procMount: func(m *specs.Mount, opts mountOpts, target *os.File) error {
			return j.procMount(pidfd, m, opts, target)
		}}
	if err := setup.prepare(); err != nil {
		return "", nil, fmt.Errorf("prepare rootfs: %w", err)
	}
	j.tr.mark("thread", "mounts done")
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return "", nil, fmt.Errorf("set hostname: %w", err)
		}
	}
	if cfg.Domainname != "" {
		if err := unix.Setdomainname([]byte(cfg.Domainname)); err != nil {
			return "", nil, fmt.Errorf("set domainname: %w", err)
		}
	}
	if err := setup.pivot(); err != nil {
		return "", nil, err
	}
	// Before the read-only paths, as runc does: /proc/sys is one of them.
	if err := writeSysctls(cfg.Sysctl); err != nil {
		return "", nil, err
	}
	if err := setup.finish(); err != nil {
		return "", nil, err
	}
	j.tr.mark("thread", "pivoted")
	p := cfg.Process
	name := p.Args[0]
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(p.Cwd, name)
	}
	path, err := lookPath(name, p.Env)
	if err != nil {
		return "", nil, err
	}
	if !p.Terminal {
		return path, nil, nil
	}
	if j.console == nil {
		return "", nil, fmt.Errorf("process.terminal is true but no console socket was given")
	}
	// The pty of the container's own devpts: /dev/ptmx resolves in its root.
	slave, err := openConsole(j.console, p.ConsoleSize)
	return path, slave, err
}

// procMount has the child make a proc mount (it takes the pid namespace of
// the task that creates it) and attaches it at target.
func (j *directJob) procMount(pidfd int, m *specs.Mount, opts mountOpts, target *os.File) error {
	var attr uint64
	for ms, ma := range map[uintptr]uint64{
		unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC,
		unix.MS_NOATIME: unix.MOUNT_ATTR_NOATIME, unix.MS_NODIRATIME: unix.MOUNT_ATTR_NODIRATIME,
		unix.MS_STRICTATIME: unix.MOUNT_ATTR_STRICTATIME,
	} {
		if opts.flags&ms != 0 {
			attr |= ma
		}
	}
	// The source names the mount in mountinfo, as mount(2)'s would.
	kvs := opts.data
	if m.Source != "" {
		kvs = append([]string{"source=" + m.Source}, kvs...)
	}
	req := binary.LittleEndian.AppendUint64(nil, attr)
	req = binary.LittleEndian.AppendUint64(req, uint64(len(kvs)))
	for _, o := range kvs {
		k, v, _ := strings.Cut(o, "=")
		req = append(append(append(req, k...), 0), append([]byte(v), 0)...)
	}
	if err := j.conn.send(msgDirectProc, req); err != nil {
		return err
	}
	reply, err := j.conn.expect(msgDirectFd)
	if err != nil {
		return err
	}
	if len(reply.Payload) != 4 {
		return fmt.Errorf("container init sent a bad proc mount reply")
	}
	fd, err := unix.PidfdGetfd(pidfd, int(binary.LittleEndian.Uint32(reply.Payload)), 0)
	if err != nil {
		return fmt.Errorf("take the proc mount from the init: %w", err)
	}
	defer unix.Close(fd)
	return unix.MoveMount(fd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// directBlob lays out the process configuration for the child (see
// directHeader).
func directBlob(p *specs.Process, path string, filter *seccomp.Program, lateCgroupNS bool, attrs procAttrs) ([]byte, error) {
	last, err := capability.LastCap()
	if err != nil {
		return nil, fmt.Errorf("read last capability: %w", err)
	}
	var h directHeader
	b := make([]byte, unsafe.Sizeof(h), 4096)
	align := func() {
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	u64s := func(vs []uint64) (off, n uint64) {
		align()
		off = uint64(len(b))
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return off, uint64(len(vs))
	}
	str := func(s string) uint64 {
		off := uint64(len(b))
		b = append(append(b, s...), 0)
		return off
	}
	strs := func(ss []string) (off, n uint64) {
		offs := make([]uint64, 0, len(ss)+1)
		for _, s := range ss {
			if strings.IndexByte(s, 0) >= 0 {
				return 0, 0
			}
			offs = append(offs, str(s))
		}
		off, _ = u64s(append(offs, 0))
		return off, uint64(len(ss))
	}

	h.flags = directSetgroups
	if p.NoNewPrivileges {
		h.flags |= directNNP
	}
	if lateCgroupNS {
		h.flags |= directLateCgroupNS
	}
	if attrs.hasIOPrio {
		h.flags |= directIOPrio
		h.ioprio = attrs.ioprio
	}
	if attrs.hasSched {
		h.flags |= directSched
		h.sched = attrs.sched
	}
	if attrs.hasPersona {
		h.flags |= directPersona
		h.persona = attrs.persona
	}
	h.uid, h.gid = uint64(p.User.UID), uint64(p.User.GID)
	h.umask = 0o022
	if p.User.Umask != nil {
		h.umask = uint64(*p.User.Umask)
	}
	align()
	h.groupsOff, h.ngroups = uint64(len(b)), uint64(len(p.User.AdditionalGids))
	for _, g := range p.User.AdditionalGids {
		b = binary.LittleEndian.AppendUint32(b, g)
	}
	var rls []uint64
	for _, rl := range p.Rlimits {
		res, ok := rlimitTypes[rl.Type]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		rls = append(rls, uint64(res), rl.Soft, rl.Hard)
	}
	h.rlimitsOff, h.nrlimits = u64s(rls)
	h.nrlimits /= 3
	pc := p.Capabilities
	if pc == nil {
		pc = &specs.LinuxCapabilities{}
	}
	keep := map[capability.Cap]bool{}
	for _, c := range capList(pc.Bounding, last) {
		keep[c] = true
	}
	var drop []uint64
	for c := capability.Cap(0); c <= last; c++ {
		if !keep[c] {
			drop = append(drop, uint64(c))
		}
	}
	h.dropOff, h.ndrop = u64s(drop)
	for i, set := range [3][]string{pc.Effective, pc.Permitted, pc.Inheritable} {
		for _, c := range capList(set, last) {
			h.caps[3*(int(c)/32)+i] |= 1 << (uint(c) % 32)
		}
	}
	var amb []uint64
	for _, c := range capList(pc.Ambient, last) {
		amb = append(amb, uint64(c))
	}
	h.ambientOff, h.nambient = u64s(amb)
	h.cwdOff = str(p.Cwd)
	h.pathOff = str(path)
	if h.argvOff, h.nargv = strs(p.Args); h.argvOff == 0 {
		return nil, fmt.Errorf("process.args contains a NUL byte")
	}
	if h.envvOff, h.nenv = strs(p.Env); h.envvOff == 0 {
		return nil, fmt.Errorf("process.env contains a NUL byte")
	}
	if filter != nil {
		h.flags |= directSeccomp
		align()
		h.filterOff, h.filterLen = uint64(len(b)), uint64(len(filter.Filter))
		b = append(b, unsafe.Slice((*byte)(unsafe.Pointer(&filter.Filter[0])), len(filter.Filter)*int(unsafe.Sizeof(filter.Filter[0])))...)
		h.seccompFlags, h.seccompAlt = uint64(filter.Flags), uint64(filter.FallbackFlags())
	}
	if len(b) > directBufSize {
		return nil, fmt.Errorf("process configuration of %d bytes is too large (at most %d)", len(b), directBufSize)
	}
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h)))
	return b, nil
}

var directStepNames = map[uint32]string{
	stepJoin: "join namespace", stepStdio: "set up stdio", stepRequest: "read from the runtime",
	stepProc: "mount proc", stepCgroupNS: "new cgroup namespace", stepSetsid: "setsid",
	stepRlimit: "set rlimit", stepNoNewPrivs: "set no_new_privs", stepSeccomp: "load seccomp filter",
	stepBounding: "drop bounding capabilities", stepKeepCaps: "set keepcaps", stepSetgroups: "setgroups",
	stepSetgid: "setgid", stepSetuid: "setuid", stepCapset: "set capabilities", stepChdir: "chdir",
	stepWaitStart: "wait for start", stepCloseFDs: "close fds", stepExec: "exec", stepTty: "set up the terminal",
	stepCgroupJoin: "join cgroup", stepPersonality: "set personality", stepScheduler: "set scheduler",
	stepIOPrio: "set I/O priority",
}

// directErrorText turns the child's binary error report into a message.
func directErrorText(payload []byte) string {
	if len(payload) < 8 {
		return "container init failed"
	}
	step := binary.LittleEndian.Uint32(payload)
	errno := syscall.Errno(binary.LittleEndian.Uint32(payload[4:]))
	detail := string(payload[8:])
	switch step {
	case stepChdir:
		return fmt.Sprintf("chdir to cwd %q set in config.json: %v", detail, errno)
	case stepExec:
		return fmt.Sprintf("exec %s: %v", detail, errno)
	}
	name := directStepNames[step]
	if detail != "" {
		name += " " + detail
	}
	return fmt.Sprintf("container init: %s: %v", name, errno)
}

// directExecEligible: an exec can be a direct child unless the container
// has a user namespace (the child would need its ids mapped) or no mount
// namespace (the exec'd stage chroots into the rootfs).
func directExecEligible(spec *specs.Spec, userns bool) bool {
	return os.Getenv(DirectInitEnv) != "0" && kernelAtLeast(5, 11) && !userns &&
		hasNamespace(spec, specs.MountNamespace)
}

// directExecSetup readies an exec's direct child, already in the container's
// namespaces and cgroup: the executable is looked up and the terminal
// opened through /proc/PID/root, the container's root as the child sees it.
func directExecSetup(conn *syncConn, pid int, p *specs.Process, filter *seccomp.Program, console *os.File, cg *cgroup.Manager, attrs procAttrs) error {
	if _, err := conn.expect(msgDirectAlive); err != nil {
		return err
	}
	// Its cgroup2 directory it was born in; the v1 hierarchies it joins.
	if cg != nil {
		if err := directJoin(conn, cg, pid); err != nil {
			return err
		}
	}
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the container's root: %w", err)
	}
	defer unix.Close(root)
	name := p.Args[0]
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(p.Cwd, name)
	}
	path, err := lookPathWith(name, p.Env, func(f string) error { return isExecutableIn(root, f) })
	if err != nil {
		return err
	}
	var slave *os.File
	if p.Terminal {
		if console == nil {
			return fmt.Errorf("process.terminal is true but no console socket was given")
		}
		if slave, err = openConsoleIn(root, console, p.ConsoleSize); err != nil {
			return err
		}
	}
	return directProcess(conn, slave, p, path, filter, false, attrs)
}

// isExecutableIn is isExecutable for a path inside root.
func isExecutableIn(root int, p string) error {
	fd, err := unix.Openat2(root, fsroot.Rel(p), &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveFlags})
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return errors.New("no such file or directory")
		}
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return errors.New("is a directory")
	case st.Mode&0o111 == 0:
		return errors.New("permission denied")
	}
	return nil
}

// openConsoleIn opens a pty of the devpts that root's /dev/ptmx leads to,
// sends the master over the console socket and returns the slave.
func openConsoleIn(root int, socket *os.File, size *specs.Box) (*os.File, error) {
	fd, err := unix.Openat2(root, "dev/ptmx", &unix.OpenHow{
		Flags: unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC, Resolve: resolveFlags})
	if err != nil {
		return nil, fmt.Errorf("open the container's /dev/ptmx: %w", err)
	}
	master := os.NewFile(uintptr(fd), "ptmx")
	defer master.Close()
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return nil, fmt.Errorf("pty number: %w", err)
	}
	if size != nil {
		ws := &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)}
		if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws); err != nil {
			return nil, fmt.Errorf("set console size: %w", err)
		}
	}
	// The peer of this very master: no path to resolve.
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if e != 0 {
		return nil, fmt.Errorf("open pty slave: %w", e)
	}
	sfd := int(r)
	slave := os.NewFile(uintptr(sfd), "pts")
	if err := unix.Sendmsg(int(socket.Fd()), []byte("/dev/pts/"+strconv.Itoa(n)), unix.UnixRights(fd), nil, 0); err != nil {
		slave.Close()
		return nil, fmt.Errorf("send pty master over console socket: %w", err)
	}
	return slave, nil
}
