package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	goruntime "runtime"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
	"github.com/berth-dev/berth/internal/runtime/seccomp"
)

// ExecOptions describe a process to run in an existing container.
type ExecOptions struct {
	// Process overrides; nil fields take the container's values.
	Args          []string
	Env           []string // appended to the container's env
	Cwd           string
	Tty           bool
	User          *specs.User
	Process       *specs.Process // a whole process spec (runc's --process); wins over the above
	ConsoleSocket string
	PidFile       string
	Detach        bool
	PreserveFDs   int
}

// nsOrder is the order namespaces are joined: the user namespace first, so
// that the others are joined with the capabilities it grants; mount last,
// since it changes root and cwd.
var nsOrder = []struct {
	typ  specs.LinuxNamespaceType
	proc string
}{
	{specs.UserNamespace, "user"}, {specs.IPCNamespace, "ipc"}, {specs.UTSNamespace, "uts"},
	{specs.NetworkNamespace, "net"}, {specs.PIDNamespace, "pid"}, {specs.CgroupNamespace, "cgroup"},
	{specs.MountNamespace, "mnt"},
}

// Exec runs a process inside a running container. Without Detach it waits
// and returns the process's exit code.
func (r *Runtime) Exec(ctx context.Context, id string, opts ExecOptions) (int, error) {
	rec, err := r.load(id)
	if err != nil {
		return -1, err
	}
	if st := r.status(rec); st != specs.StateRunning && st != specs.StateCreated {
		return -1, fmt.Errorf("cannot exec in a %s container: %w", st, errdefs.ErrFailedPrecondition)
	}
	spec, err := rec.spec()
	if err != nil {
		return -1, err
	}
	proc, err := execProcessSpec(spec.Process, opts)
	if err != nil {
		return -1, err
	}
	if proc.Terminal && opts.ConsoleSocket == "" && opts.Detach {
		return -1, invalid("a terminal was requested but no --console-socket was given")
	}
	attrs, err := newProcAttrs(proc, spec.Linux.Personality)
	if err != nil {
		return -1, err
	}
	var filter *seccomp.Program
	if sc := spec.Linux.Seccomp; sc != nil {
		if filter, err = seccomp.Compile(sc); err != nil {
			return -1, fmt.Errorf("seccomp profile: %w", err)
		}
	}
	var paths []string
	userns := false
	for _, ns := range nsOrder {
		if !hasNamespace(spec, ns.typ) {
			continue
		}
		p := fmt.Sprintf("/proc/%d/ns/%s", rec.Pid, ns.proc)
		if sameNamespace(p, "/proc/self/ns/"+ns.proc) {
			continue // setns into our own user namespace is refused
		}
		paths = append(paths, p)
		userns = userns || ns.typ == specs.UserNamespace
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("sync socketpair: %w", err)
	}
	parentSock, childSock := os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync")
	defer parentSock.Close()
	inherit := []int{int(childSock.Fd())}
	consoleFd := -1
	var console *consoleRelay
	if proc.Terminal {
		sockPath := opts.ConsoleSocket
		if sockPath == "" {
			console, err = newConsoleRelay(fmt.Sprintf("%s/.%s.exec-%d.sock", r.Root, id, os.Getpid()))
			if err != nil {
				childSock.Close()
				return -1, err
			}
			defer console.Close()
			sockPath = console.path
		}
		c, err := net.Dial("unix", sockPath)
		if err != nil {
			childSock.Close()
			return -1, fmt.Errorf("connect to console socket %s: %w", sockPath, err)
		}
		f, err := c.(*net.UnixConn).File()
		c.Close()
		if err != nil {
			childSock.Close()
			return -1, err
		}
		defer f.Close()
		consoleFd = int(f.Fd())
		inherit = append(inherit, consoleFd)
	}
	exe, err := r.exe()
	if err != nil {
		childSock.Close()
		return -1, err
	}
	es := enterSpec{
		exe: exe, nsPaths: paths, userns: userns, inherit: inherit, cgroupFD: -1,
		args: []string{"berth", "init"},
		env:  []string{syncFdEnv + "=" + strconv.Itoa(int(childSock.Fd()))},
	}
	// The direct path (see direct_linux.go): the process is a raw fork of
	// this one that never execs berth; the console is opened here.
	var directBuf []byte
	var consoleSock *os.File
	direct := directExecEligible(spec, userns)
	if direct {
		files := []int{0, 1, 2}
		for i := 0; i < opts.PreserveFDs; i++ {
			files = append(files, 3+i)
		}
		if es.direct, directBuf, err = newDirectArgs(int(childSock.Fd()), -1, opts.PreserveFDs, files); err != nil {
			childSock.Close()
			return -1, err
		}
		if consoleFd >= 0 {
			consoleSock = os.NewFile(uintptr(consoleFd), "console-socket")
		}
		// Born in the container's cgroup2 directory (v2, or a hybrid
		// host's unified tree), moved into v1 hierarchies by itself ('J'):
		// no pid written to cgroup.procs, no RCU grace period (see
		// directJoinCgroups).
		if dir := rec.CgroupPaths[""]; dir != "" {
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				childSock.Close()
				return -1, fmt.Errorf("join cgroup of %s: %w", id, err)
			}
			defer unix.Close(fd)
			es.cgroupFD = fd
		}
	}
	pid, err := spawnEntered(es)
	goruntime.KeepAlive(directBuf)
	childSock.Close()
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		return -1, err
	}
	var cg *cgroup.Manager
	if len(rec.CgroupPaths) > 0 {
		cg, err = cgroup.Load(rec.CgroupPaths)
		if err == nil && !direct {
			err = cg.Join(pid)
		}
		if err != nil {
			return fail(fmt.Errorf("join cgroup of %s: %w", id, err))
		}
	}
	conn := newSyncConn(parentSock)
	if direct {
		if err := directExecSetup(conn, pid, proc, filter, consoleSock, cg, attrs); err != nil {
			return fail(err)
		}
	} else {
		cfg := &initConfig{
			Mode: "exec", ID: id, Process: proc, FifoFd: -1, Seccomp: filter, Rootfs: rec.Rootfs,
			NewMountNS: hasNamespace(spec, specs.MountNamespace),
			ConsoleFd:  consoleFd, UserNS: hasNamespace(spec, specs.UserNamespace),
			PreserveFDs: opts.PreserveFDs, Attrs: attrs,
		}
		if err := conn.send(msgConfig, cfg.encode()); err != nil {
			return fail(fmt.Errorf("send exec config: %w", err))
		}
		if _, err := conn.expect(msgReady); err != nil {
			return fail(err)
		}
	}
	if console != nil {
		if err := console.accept(); err != nil {
			return fail(err)
		}
	}
	var sigc chan os.Signal
	if !opts.Detach {
		sigc = make(chan os.Signal, 16)
		signal.Notify(sigc)
		// Stop waits in a yield loop for the signal machinery to be idle,
		// milliseconds that a caller about to exit does not need.
		defer func() { go signal.Stop(sigc) }()
	}
	if err := conn.send(msgStart, nil); err != nil {
		return fail(fmt.Errorf("start exec: %w", err))
	}
	m, err := conn.recv()
	if err == nil && m.Type == msgError {
		return fail(errors.New(string(m.Payload)))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(fmt.Errorf("start exec: %w", err))
	}
	if opts.PidFile != "" {
		if err := writePidFile(opts.PidFile, pid); err != nil {
			return -1, err
		}
	}
	if opts.Detach {
		return 0, nil // the process outlives us; whoever inherits it reaps it
	}
	if console != nil {
		go console.relay()
	}
	return waitForwarding(pid, sigc, console), nil
}

func sameNamespace(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func execProcessSpec(base *specs.Process, o ExecOptions) (*specs.Process, error) {
	if o.Process != nil {
		p := *o.Process
		if err := validateProcess(&p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	if len(o.Args) == 0 {
		return nil, invalid("exec needs a command")
	}
	p := *base
	p.Args = o.Args
	p.Env = append(append([]string{}, base.Env...), o.Env...)
	p.Terminal = o.Tty
	p.ConsoleSize = nil
	if o.Cwd != "" {
		p.Cwd = o.Cwd
	}
	if o.User != nil {
		p.User = *o.User
	}
	if err := validateProcess(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// runExecInit is the exec stage: already inside every namespace of the
// container and in its cgroup.
func runExecInit(conn *syncConn, cfg *initConfig) error {
	if !cfg.NewMountNS && cfg.Rootfs != "" {
		// A container without a mount namespace lives in a chroot.
		if err := unix.Chroot(cfg.Rootfs); err != nil {
			return fmt.Errorf("chroot to %s: %w", cfg.Rootfs, err)
		}
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return execProcess(conn, cfg, func() error {
		_, err := conn.expect(msgStart)
		return err
	})
}
