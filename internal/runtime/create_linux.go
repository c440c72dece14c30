package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
	"github.com/berth-dev/berth/internal/runtime/seccomp"
)

// CreateOptions are the knobs of `create` and `run` besides the bundle.
type CreateOptions struct {
	Bundle        string
	ConsoleSocket string
	PidFile       string
	// PreserveFDs passes the caller's fds 3..3+N-1 to the container at the
	// same numbers (runc's --preserve-fds).
	PreserveFDs int
	// Stdio of the container process; nil means the caller's own.
	Stdin, Stdout, Stderr *os.File
}

// syncFdEnv tells the init which fd is its sync socket: preserved fds come
// first, so the number varies.
const syncFdEnv = "_BERTH_SYNC_FD"

var nsCloneFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
}

// nsJoin is a namespace entered by path before the init is cloned.
type nsJoin struct {
	typ  specs.LinuxNamespaceType
	path string
	flag int
}

var nsSetnsFlags = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace: unix.CLONE_NEWNS, specs.IPCNamespace: unix.CLONE_NEWIPC,
	specs.UTSNamespace: unix.CLONE_NEWUTS, specs.UserNamespace: unix.CLONE_NEWUSER,
	specs.CgroupNamespace: unix.CLONE_NEWCGROUP, specs.TimeNamespace: unix.CLONE_NEWTIME,
}

// launch is a container whose init is running and waiting for start.
type launch struct {
	rec    *record
	pid    int // the init, a child of this process
	conn   *syncConn
	cg     *cgroup.Manager
	region *directRegion // the direct init's memory until it execs; nil otherwise
}

func (r *Runtime) exe() (string, error) {
	if r.Exe != "" {
		return r.Exe, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find berth executable: %w", err)
	}
	return p, nil
}

// Create sets a container up and leaves its init waiting for Start.
func (r *Runtime) Create(ctx context.Context, id string, opts CreateOptions) error {
	l, err := r.create(ctx, id, opts, "create")
	if err != nil {
		return err
	}
	// The init outlives us; it is reaped by whoever inherits it.
	if l.region == nil {
		return l.conn.f.Close()
	}
	// A direct init runs in memory of ours until it execs (or dies); its
	// end of the sync socket closes then, and the memory can go.
	go func() {
		for {
			if _, err := l.conn.recv(); err != nil {
				break
			}
		}
		l.conn.f.Close()
		l.region.release()
	}()
	return nil
}

func (r *Runtime) create(ctx context.Context, id string, opts CreateOptions, mode string) (l *launch, retErr error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	tr := newPhaseTracer(os.Getenv(TraceEnv) == "1")
	tr.mark("parent", "start")
	bundle, err := filepath.Abs(opts.Bundle)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", opts.Bundle, err)
	}
	data, err := readSpec(bundle)
	if err != nil {
		return nil, err
	}
	peek := peekSpec(data)
	if peek == nil {
		// Not even the peek decodes: let the full parse say what is wrong.
		if _, err := parseSpec(data, bundle); err != nil {
			return nil, err
		}
		return nil, invalid("invalid config.json")
	}
	if peek.Process.Terminal && opts.ConsoleSocket == "" && mode == "create" {
		return nil, invalid("process.terminal is true but no --console-socket was given")
	}
	direct := directEligible(peek)
	var joins []nsJoin
	var cloneFlags uintptr
	joinUserNS, hostMountNS := false, true
	for _, ns := range peek.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			hostMountNS = false
		}
		if ns.Path != "" {
			joins = append(joins, nsJoin{ns.Type, ns.Path, nsSetnsFlags[ns.Type]})
			joinUserNS = joinUserNS || ns.Type == specs.UserNamespace
			continue
		}
		if ns.Type == specs.TimeNamespace {
			return nil, fmt.Errorf("time namespaces are not supported yet: %w", errdefs.ErrNotImplemented)
		}
		cloneFlags |= nsCloneFlags[ns.Type]
	}

	dir := r.dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container with id %q already exists: %w", id, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	// The full spec is decoded and checked, the cgroup made with its limits
	// and the seccomp profile compiled on another goroutine while the init
	// is spawned and does its mounts. The init only has to be in its cgroup
	// before its process is let go: the exec'd init is moved in by pid
	// meanwhile (on v1 that waits for an RCU grace period, milliseconds), a
	// direct one moves itself in once the cgroup is ready or is born in it.
	mounts, err := cgroup.DetectMounts()
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	prepc := make(chan *prepared, 1)
	go func() { pp := prepare(data, bundle, id, !direct, mounts); tr.mark("parent", "prepared"); prepc <- pp }()
	var prep *prepared
	waitPrep := func() *prepared {
		if prep == nil {
			prep = <-prepc
		}
		return prep
	}
	pid := 0
	var d *directInit
	// A direct init on v1 moves itself into its v1 hierarchies ('J', see
	// directJoinCgroups) and on a hybrid host is born in its cgroup2
	// directory: no pid is written to any cgroup.procs.
	selfJoin, hybridFD, hybridDir := false, -1, ""
	defer func() {
		if retErr == nil {
			return
		}
		if pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, 0, nil)
			if d != nil {
				d.region.release()
			}
		}
		if p := waitPrep(); p.cgw != nil {
			p.cgw.abort()
			if p.cgw.cg != nil {
				_ = p.cgw.cg.Destroy()
			}
		}
		if hybridDir != "" && (prep.cgw == nil || prep.cgw.cg == nil) {
			_ = os.Remove(hybridDir)
		}
		if hostMountNS && prep.rootfs != "" {
			_ = unmountUnder(prep.rootfs)
		}
		_ = os.RemoveAll(dir)
	}()

	var extra []*os.File
	for i := 0; i < opts.PreserveFDs; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved"))
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sync socketpair: %w", err)
	}
	// Our end is non-blocking, so that waiting on it parks a goroutine,
	// not a thread.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("sync socketpair: %w", err)
	}
	parentSock, childSock := os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync")
	defer childSock.Close()
	conn := newSyncConn(parentSock)
	defer func() {
		if retErr != nil {
			parentSock.Close()
		}
	}()
	syncFd := 3 + len(extra)
	if !direct {
		extra = append(extra, childSock)
	}

	fifoFd, directFifo := -1, -1
	if mode == "create" {
		fifo := filepath.Join(dir, fifoFile)
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			return nil, fmt.Errorf("create exec fifo: %w", err)
		}
		// O_RDWR opens a fifo without waiting for a peer; the init blocks
		// reading it until `start` writes a byte.
		f, err := os.OpenFile(fifo, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open exec fifo: %w", err)
		}
		defer f.Close()
		if direct {
			directFifo = int(f.Fd())
		} else {
			fifoFd = 3 + len(extra)
			extra = append(extra, f)
		}
	}
	consoleFd := -1
	var consoleSock *os.File // the direct init's: the thread sends the master
	if peek.Process.Terminal && opts.ConsoleSocket != "" {
		c, err := net.Dial("unix", opts.ConsoleSocket)
		if err != nil {
			return nil, fmt.Errorf("connect to console socket %s: %w", opts.ConsoleSocket, err)
		}
		f, err := c.(*net.UnixConn).File()
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
		defer f.Close()
		if direct {
			consoleSock = f
		} else {
			consoleFd = 3 + len(extra)
			extra = append(extra, f)
		}
	}

	exe, err := r.exe()
	if err != nil {
		return nil, err
	}
	files := []uintptr{fdOf(opts.Stdin, os.Stdin), fdOf(opts.Stdout, os.Stdout), fdOf(opts.Stderr, os.Stderr)}
	for _, f := range extra {
		files = append(files, f.Fd())
	}
	attr := &syscall.ProcAttr{
		// One P and no GC: the init lives for milliseconds, and a fixed
		// GOMAXPROCS spares the Go runtime its cgroup quota look-up.
		Env:   []string{syncFdEnv + "=" + strconv.Itoa(syncFd), "GOMAXPROCS=1", "GOGC=off"},
		Files: files,
		Sys:   &syscall.SysProcAttr{Cloneflags: cloneFlags},
	}
	if cloneFlags&unix.CLONE_NEWUSER != 0 {
		attr.Sys.UidMappings = idMap(peek.Linux.UIDMappings)
		attr.Sys.GidMappings = idMap(peek.Linux.GIDMappings)
		attr.Sys.GidMappingsEnableSetgroups = true
		// Become root of the new namespace before exec; otherwise the init
		// runs as the overflow uid and execve drops every capability.
		attr.Sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	// On cgroup v2 the init is born inside its cgroup (clone3 with
	// CLONE_INTO_CGROUP): no migration, no RCU grace period. That needs the
	// spec before the spawn.
	bornInside := false
	if isCgroup2Root("/sys/fs/cgroup") {
		if p := waitPrep(); p.err != nil {
			return nil, p.err
		}
		cgw := prep.cgw
		if err := cgw.dirsReady(); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		if dirf, err := cgw.cg.OpenDir(); err == nil {
			defer dirf.Close()
			attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, int(dirf.Fd())
			bornInside = true
		}
	} else if direct {
		selfJoin = true
		dirf, err := mounts.MakeHybridDir(peek.Linux.CgroupsPath, id)
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		if dirf != nil {
			defer dirf.Close()
			hybridFD, hybridDir = int(dirf.Fd()), dirf.Name()
		}
	}
	tr.mark("parent", "spawn init")
	switch {
	case direct:
		files := make([]int, len(attr.Files))
		for i, f := range attr.Files {
			files[i] = int(f)
		}
		cgroupFD := hybridFD
		if bornInside {
			cgroupFD = attr.Sys.CgroupFD
		}
		d, err = startDirect(directSpawn{cloneFlags: cloneFlags, joins: joins, files: files,
			keepFDs: opts.PreserveFDs, sock: int(childSock.Fd()), fifo: directFifo, cgroupFD: cgroupFD})
		if err == nil {
			pid = d.pid
			defer d.close()
		}
	case joinUserNS:
		pid, err = spawnInUserNS(attr, exe, joins, cloneFlags)
	default:
		pid, err = startProtected(attr, exe, joins, hostMountNS)
	}
	// Our copy of the init's end goes now: if the init dies, reads on ours
	// must see EOF instead of waiting forever.
	childSock.Close()
	tr.mark("parent", "cloned")
	if err != nil {
		return nil, fmt.Errorf("start container init: %w", err)
	}
	if p := waitPrep(); p.err != nil {
		return nil, p.err
	}
	spec, rootfs, cgw, filter := prep.spec, prep.rootfs, prep.cgw, prep.filter
	tr.mark("parent", "init spawned")
	start, _, _ := procStart(pid)
	rec := &record{
		ID: id, Pid: pid, PidStart: start, Bundle: bundle, Rootfs: rootfs,
		Created: time.Now().UTC(), Annotations: spec.Annotations, Creating: true,
		HostMountNS: hostMountNS, decoded: spec, dir: dir,
		Owner: "root",
	}
	joinPid := pid
	if bornInside || selfJoin {
		joinPid = -1
	}
	cg, err := cgw.manager(joinPid)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	rec.CgroupPaths = cg.Paths()
	if spec.Process.OOMScoreAdj != nil {
		adj := strconv.Itoa(*spec.Process.OOMScoreAdj)
		if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte(adj), 0); err != nil {
			return nil, fmt.Errorf("set oom_score_adj %s: %w", adj, err)
		}
	}
	if spec.Hooks != nil {
		if rec.Hooks, err = json.Marshal(spec.Hooks); err != nil {
			return nil, fmt.Errorf("encode hooks: %w", err)
		}
	}
	// The config first: a record names a container whose config exists.
	if err := os.WriteFile(filepath.Join(dir, configFile), data, 0o600); err != nil {
		return nil, fmt.Errorf("write config of %s: %w", id, err)
	}
	if err := r.save(rec); err != nil {
		return nil, err
	}
	var state []byte // what hooks get on stdin; encoded only for them
	if spec.Hooks != nil {
		state = stateJSON(r.ociState(rec))
	}
	newCgroupNS := hasNamespace(spec, specs.CgroupNamespace) && pathOf(spec, specs.CgroupNamespace) == ""
	cfg := &initConfig{
		Mode: mode, ID: id, Rootfs: rootfs, Process: spec.Process, Attrs: prep.attrs,
		StateJSON: state, FifoFd: fifoFd, ConsoleFd: consoleFd, CgroupPaths: cg.Paths(),
		Hostname: spec.Hostname, Domainname: spec.Domainname, Mounts: spec.Mounts,
		Devices: spec.Linux.Devices, MaskedPaths: spec.Linux.MaskedPaths,
		ReadonlyPaths: spec.Linux.ReadonlyPaths, RootfsPropagation: spec.Linux.RootfsPropagation,
		ReadonlyRoot: spec.Root.Readonly, Sysctl: spec.Linux.Sysctl, Seccomp: filter,
		PidsLimit: prep.pidsLimit, PidsFile: pidsMaxFile(cg.Paths()),
		NewCgroupNS: newCgroupNS,
		// On v1 the cgroup mount binds host paths, so the namespace can wait
		// until the start; on v2 the cgroup2 mount needs it first.
		LateCgroupNS: newCgroupNS && !isCgroup2Root("/sys/fs/cgroup"),
		// A joined mount namespace gets the rootfs set up too, as runc does.
		NewMountNS:  hasNamespace(spec, specs.MountNamespace),
		UserNS:      hasNamespace(spec, specs.UserNamespace),
		PreserveFDs: opts.PreserveFDs,
		Trace:       tr.on,
	}
	if spec.Hooks != nil {
		cfg.CreateContainerHooks = spec.Hooks.CreateContainer
		cfg.StartContainerHooks = spec.Hooks.StartContainer
		cfg.RuntimeHooks = len(spec.Hooks.Prestart)+len(spec.Hooks.CreateRuntime) > 0
	}
	if d != nil {
		// On v2 the init is born in its cgroup and makes its cgroup
		// namespace before the cgroup2 mount; elsewhere right before exec.
		early := cfg.NewCgroupNS && bornInside
		job := &directJob{conn: conn, cfg: cfg, cgw: cgw, selfJoin: selfJoin, earlyCgroupNS: early,
			lateCgroupNS: cfg.NewCgroupNS && !early, console: consoleSock, tr: tr}
		if err := d.setup(job, spec.Process, filter); err != nil {
			return nil, err
		}
	} else if err := driveInit(ctx, conn, cfg, cgw, pid, spec, state); err != nil {
		return nil, err
	}
	tr.mark("parent", "init ready")
	rec.Creating = false
	if err := r.save(rec); err != nil {
		return nil, err
	}
	if opts.PidFile != "" {
		if err := writePidFile(opts.PidFile, pid); err != nil {
			return nil, err
		}
	}
	l = &launch{rec: rec, pid: pid, conn: conn, cg: cg}
	if d != nil {
		l.region = d.region
	}
	return l, nil
}

// driveInit sends the exec'd init its configuration and serves it until it
// is ready: cgroup steps, prestart and createRuntime hooks.
func driveInit(ctx context.Context, conn *syncConn, cfg *initConfig, cgw *cgroupWork, pid int, spec *specs.Spec, state []byte) error {
	tr := newPhaseTracer(cfg.Trace)
	if err := conn.send(msgConfig, cfg.encode()); err != nil {
		return fmt.Errorf("send config to init: %w", err)
	}
	// The init mounts everything but the cgroup view while the directories
	// are being made. On v2 its cgroup namespace comes before the cgroup2
	// mount, so there it must be in its cgroup first.
	if cfg.NewCgroupNS && !cfg.LateCgroupNS {
		if err := cgw.wait(); err != nil {
			return err
		}
	} else if err := cgw.dirsReady(); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	if err := conn.send(msgCgroupDirs, nil); err != nil {
		return fmt.Errorf("send to init: %w", err)
	}
	tr.mark("parent", "config sent")
	for {
		m, err := conn.recv()
		if err != nil {
			return fmt.Errorf("container init exited during setup: %w", waitErr(pid, err))
		}
		if m.Type == msgError {
			return errors.New(string(m.Payload))
		}
		if err := cgw.wait(); err != nil {
			return err
		}
		tr.mark("parent", "cgroup joined")
		if m.Type == msgReady {
			break
		}
		if m.Type == msgJoinQuery {
			// cgw.wait above made sure the init is in its cgroup.
			if err := conn.send(msgJoined, nil); err != nil {
				return fmt.Errorf("send to init: %w", err)
			}
			continue
		}
		if m.Type != msgHooks {
			return fmt.Errorf("container init sent unexpected %q", msgNames[m.Type])
		}
		if spec.Hooks != nil {
			if err := runHooks(ctx, "prestart", spec.Hooks.Prestart, state); err != nil {
				return err
			}
			if err := runHooks(ctx, "createRuntime", spec.Hooks.CreateRuntime, state); err != nil {
				return err
			}
		}
		if err := conn.send(msgHooksDone, nil); err != nil {
			return fmt.Errorf("resume init after hooks: %w", err)
		}
	}
	return nil
}

func waitErr(pid int, err error) error {
	var ws unix.WaitStatus
	if _, werr := unix.Wait4(pid, &ws, 0, nil); werr == nil {
		if ws.Signaled() {
			return fmt.Errorf("killed by %v", ws.Signal())
		}
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	}
	return err
}

func fdOf(f, def *os.File) uintptr {
	if f != nil {
		return f.Fd()
	}
	return def.Fd()
}

func idMap(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

func writePidFile(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// startProtected starts cmd from a dedicated OS thread that first moves into
// a private mount namespace where the berth binary is bind-mounted read-only
// onto itself. The init is exec'd from that read-only mount, so a container
// process that reaches /proc/<init>/exe cannot open the binary for writing
// (the CVE-2019-5736 class). The same thread then joins the namespaces given
// by path, so the init is cloned inside them; the thread is never unlocked
// and so dies with the goroutine, taking its namespace changes with it.
func startProtected(attr *syscall.ProcAttr, exe string, joins []nsJoin, hostMountNS bool) (int, error) {
	return onDisposableThread(func() (int, error) {
		protect := protectedExe
		if hostMountNS {
			// The init must stay in the host's mount namespace, so the
			// read-only view comes from a sealed in-memory copy instead.
			protect = sealedExeCopy
		}
		exefd, err := protect(exe)
		if err != nil {
			return 0, err
		}
		defer unix.Close(exefd)
		for _, j := range joins {
			if err := setnsPath(j.path, j.flag); err != nil {
				return 0, fmt.Errorf("join %s namespace %s: %w", j.typ, j.path, err)
			}
		}
		// Exec through the fd: the init may be root of a user namespace
		// that cannot search the directories leading to the binary.
		return syscall.ForkExec("/proc/self/fd/"+strconv.Itoa(exefd), []string{"berth", "init"}, attr)
	})
}

// spawnInUserNS starts the init inside an existing user namespace. A Go
// process cannot join one (setns refuses multi-threaded callers), so this
// takes the raw fork of nsenter_linux.go: join every namespace given by path,
// user first, create the new ones, become root of the joined namespace and
// exec the init with the stdio and extra files at their numbers.
func spawnInUserNS(attr *syscall.ProcAttr, exe string, joins []nsJoin, cloneFlags uintptr) (int, error) {
	var paths []string
	for _, o := range nsOrder {
		for _, j := range joins {
			if j.typ == o.typ {
				paths = append(paths, j.path)
			}
		}
	}
	files := make([]int, len(attr.Files))
	for i, f := range attr.Files {
		files[i] = int(f)
	}
	return spawnEntered(enterSpec{
		exe: exe, nsPaths: paths, userns: true, unshare: cloneFlags &^ unix.CLONE_NEWUSER,
		files: files, args: []string{"berth", "init"}, env: attr.Env,
	})
}

// onDisposableThread runs fn on an OS thread of its own that is never
// unlocked, so the thread exits with the goroutine and takes whatever
// namespace changes fn made to it along.
func onDisposableThread(fn func() (int, error)) (int, error) {
	type result struct {
		pid int
		err error
	}
	resc := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		pid, err := fn()
		resc <- result{pid, err}
	}()
	res := <-resc
	return res.pid, res.err
}

// sealedExeCopy copies the berth binary into a sealed memfd: a file nobody
// can write to, whatever reaches it through /proc/<pid>/exe.
func sealedExeCopy(exe string) (int, error) {
	src, err := os.Open(exe)
	if err != nil {
		return -1, fmt.Errorf("open berth binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "berth-memfd")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return -1, fmt.Errorf("copy berth binary: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return -1, fmt.Errorf("seal berth binary copy: %w", err)
	}
	nfd, err := unix.Dup(fd) // an fd the caller owns; dst's finalizer closes the other
	dst.Close()
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(nfd)
	return nfd, nil
}

// protectedExe moves the calling (locked) thread into a private mount
// namespace, bind-mounts the berth binary read-only onto itself there and
// returns an O_PATH fd of that read-only view.
func protectedExe(exe string) (int, error) {
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return -1, fmt.Errorf("private mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return -1, fmt.Errorf("make / slave: %w", err)
	}
	if err := unix.Mount(exe, exe, "", unix.MS_BIND, ""); err != nil {
		return -1, fmt.Errorf("bind berth binary: %w", err)
	}
	if err := unix.Mount("", exe, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		return -1, fmt.Errorf("make berth binary read-only: %w", err)
	}
	fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open berth binary: %w", err)
	}
	return fd, nil
}

func setnsPath(path string, flag int) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Setns(fd, flag)
}

// prepared is the work done beside the spawn: the full spec, decoded and
// checked, its rootfs resolved, the cgroup being made, the seccomp filter.
type prepared struct {
	spec   *specs.Spec
	rootfs string
	cgw    *cgroupWork
	filter *seccomp.Program
	// pidsLimit is left out of the cgroup's limits and written by the
	// init right before exec (see prepare).
	pidsLimit int64
	attrs     procAttrs // the process's I/O priority, scheduler, personality
	err       error
}

func prepare(data []byte, bundle, id string, deferPids bool, mounts cgroup.Mounts) *prepared {
	p := &prepared{}
	p.spec, p.err = parseSpec(data, bundle)
	if p.err != nil {
		return p
	}
	if p.attrs, p.err = newProcAttrs(p.spec.Process, p.spec.Linux.Personality); p.err != nil {
		return p
	}
	spec := p.spec
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if p.rootfs, p.err = filepath.EvalSymlinks(rootfs); p.err != nil {
		p.err = fmt.Errorf("resolve rootfs: %w", p.err)
		return p
	}
	// Relative bind sources are relative to the bundle. Resolve them here:
	// the init may not be allowed to enter the bundle directory.
	for i := range spec.Mounts {
		if m := &spec.Mounts[i]; isBind(m) && !filepath.IsAbs(m.Source) {
			m.Source = filepath.Join(bundle, m.Source)
		}
	}
	// The pids limit is written by the init itself just before it execs:
	// the init is a Go program whose runtime threads count against
	// pids.max, and a small limit would otherwise kill it before the
	// container's process even runs.
	res := spec.Linux.Resources
	if deferPids && res != nil && res.Pids != nil && res.Pids.Limit != nil && *res.Pids.Limit > 0 {
		p.pidsLimit = *res.Pids.Limit
		trimmed := *res
		trimmed.Pids = nil
		res = &trimmed
	}
	p.cgw = startCgroupWork(mounts, spec.Linux.CgroupsPath, id, res)
	if spec.Linux.Seccomp != nil {
		if p.filter, p.err = seccomp.Compile(spec.Linux.Seccomp); p.err != nil {
			p.err = fmt.Errorf("seccomp profile: %w", p.err)
		}
	}
	return p
}

// cgroupWork creates a container's cgroup and writes its limits on another
// goroutine, then moves the init in once its pid is known.
type cgroupWork struct {
	cg      *cgroup.Manager
	newc    chan error // New's result; cg is set before it is sent
	mgrc    chan error // the directories exist
	pidc    chan int
	donec   chan error // Apply, Set and Join
	done    bool
	err     error
	dirs    bool
	dirsErr error
}

func startCgroupWork(mounts cgroup.Mounts, path, id string, res *specs.LinuxResources) *cgroupWork {
	w := &cgroupWork{newc: make(chan error, 1), mgrc: make(chan error, 1), pidc: make(chan int, 1), donec: make(chan error, 1)}
	go func() {
		cg, err := mounts.New(path, id, res)
		w.cg = cg
		w.newc <- err
		if err == nil {
			err = cg.Apply(-1)
		}
		w.mgrc <- err
		if err != nil {
			w.donec <- err
			return
		}
		if res != nil {
			if err = cg.Set(res); err != nil {
				err = fmt.Errorf("set cgroup limits: %w", err)
			}
		}
		pid := <-w.pidc
		if err == nil && pid > 0 {
			if err = cg.Join(pid); err != nil {
				err = fmt.Errorf("join cgroup: %w", err)
			}
		}
		w.donec <- err
	}()
	return w
}

// manager hands the init's pid over and returns the manager as soon as its
// paths are known; the directories may still be being created.
func (w *cgroupWork) manager(pid int) (*cgroup.Manager, error) {
	w.pidc <- pid
	if err := <-w.newc; err != nil {
		w.done, w.err = true, err
		return nil, err
	}
	return w.cg, nil
}

// dirsReady returns once the cgroup directories exist.
func (w *cgroupWork) dirsReady() error {
	if !w.dirs {
		w.dirs, w.dirsErr = true, <-w.mgrc
		if w.dirsErr != nil {
			w.done, w.err = true, w.dirsErr
		}
	}
	return w.dirsErr
}

// wait returns once the init is in its cgroup with its limits set.
func (w *cgroupWork) wait() error {
	if !w.done {
		w.done, w.err = true, <-w.donec
	}
	return w.err
}

// abort ends the work on an error path; the caller then destroys w.cg.
func (w *cgroupWork) abort() {
	select {
	case w.pidc <- -1:
	default:
	}
	if !w.done {
		w.done, w.err = true, <-w.donec
	}
}

// pidsMaxFile is the pids.max file of a container's cgroup (v1 or v2).
func pidsMaxFile(paths map[string]string) string {
	if p, ok := paths["pids"]; ok {
		return filepath.Join(p, "pids.max")
	}
	if p, ok := paths[""]; ok {
		return filepath.Join(p, "pids.max")
	}
	return ""
}
