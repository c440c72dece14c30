package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/seccomp"
)

var rlimitTypes = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// capNames lists the capabilities berth knows, as CAP_NAME.
func capNames() map[string]capability.Cap {
	m := make(map[string]capability.Cap, 41)
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
}

func capByName(name string) (capability.Cap, bool) {
	n := strings.ToLower(strings.TrimPrefix(strings.ToUpper(name), "CAP_"))
	for _, c := range capability.ListKnown() {
		if c.String() == n {
			return c, true
		}
	}
	return 0, false
}

// capList turns names into caps the running kernel knows; names it does not
// know are skipped, as runc does, so one config works on older kernels.
func capList(names []string, last capability.Cap) []capability.Cap {
	out := make([]capability.Cap, 0, len(names))
	for _, n := range names {
		if c, ok := capByName(n); ok && c <= last {
			out = append(out, c)
		}
	}
	return out
}

func setRlimits(rls []specs.POSIXRlimit) error {
	for _, rl := range rls {
		res, ok := rlimitTypes[rl.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		// syscall.Setrlimit (not unix.Prlimit) so that Go's exec does not
		// restore its saved RLIMIT_NOFILE over the container's.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("set %s to %d/%d: %w", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	return nil
}

// lookPath finds the executable of args[0] with the container's PATH. It
// runs after pivot_root, so it sees the container's files only.
func lookPath(name string, env []string) (string, error) {
	return lookPathWith(name, env, isExecutable)
}

// lookPathWith is lookPath with isExec telling whether a path can be run.
func lookPathWith(name string, env []string, isExec func(string) error) (string, error) {
	if strings.Contains(name, "/") {
		if err := isExec(name); err != nil {
			return "", fmt.Errorf("exec: %q: %w", name, err)
		}
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if isExec(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("no such file or directory")
		}
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return errors.New("permission denied")
	}
	return nil
}

// closeExtraFDs marks every descriptor above the ones the container keeps as
// close-on-exec, so no host file (a cgroup dir, the state dir, the berth
// binary) can leak into the container.
func closeExtraFDs(keep int) error {
	// One close_range(2) (Linux 5.11) marks them all; list them otherwise.
	if err := unix.CloseRange(uint(keep+1), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list fds: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	self := int(dir.Fd())
	if err != nil {
		dir.Close()
		return fmt.Errorf("list fds: %w", err)
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= keep || fd == self {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return dir.Close()
}

// The container's process is made in two steps, in an order the kernel
// allows (seccomp needs CAP_SYS_ADMIN unless no_new_privs is set):
//
//	prepareProcess: rlimits → NNP → [seccomp, when NNP is off] → bounding
//	  set → keepcaps → groups/gid/uid → capset → ambient → cwd → umask
//	execFinal:      close fds → signal mask → [seccomp, when NNP is on: as
//	  late as possible] → exec
//
// prepareProcess runs before the init reports "ready"; execFinal after start.

// prepareProcess applies the process's limits and identity to the current
// thread and returns the seccomp filter still to load, if any.
func prepareProcess(p *specs.Process, filter *seccomp.Program, setgroups bool) (*seccomp.Program, error) {
	if err := setRlimits(p.Rlimits); err != nil {
		return nil, err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("set no_new_privs: %w", err)
		}
	} else if filter != nil {
		if err := filter.Load(); err != nil {
			return nil, fmt.Errorf("load seccomp filter: %w", err)
		}
		filter = nil
	}
	if err := setIdentity(p, setgroups); err != nil {
		return nil, err
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return nil, fmt.Errorf("chdir to cwd %q set in config.json: %w", p.Cwd, err)
	}
	// A cwd that resolves outside the container (a leaked fd, an
	// "(unreachable)" path) must never reach the user process.
	if wd, err := os.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return nil, fmt.Errorf("current working directory is outside of container mount namespace root")
	}
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	return filter, nil
}

// execFinal replaces the init with the container's process.
func execFinal(p *specs.Process, filter *seccomp.Program, path string, keepFDs int) error {
	if err := closeExtraFDs(2 + keepFDs); err != nil {
		return err
	}
	// Default dispositions (an ignored SIGHUP or SIGPIPE of whoever ran
	// berth would survive the exec), with every signal blocked until the
	// mask is reset: a Go handler must not run after this.
	var all, empty unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, nil); err != nil {
		return fmt.Errorf("block signals: %w", err)
	}
	resetSignals()
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil); err != nil {
		return fmt.Errorf("reset signal mask: %w", err)
	}
	if filter != nil {
		if err := filter.Load(); err != nil {
			return fmt.Errorf("load seccomp filter: %w", err)
		}
	}
	if err := unix.Exec(path, p.Args, p.Env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

func setIdentity(p *specs.Process, setgroups bool) error {
	last, err := capability.LastCap()
	if err != nil {
		return fmt.Errorf("read last capability: %w", err)
	}
	caps, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if err := caps.Load(); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	pc := p.Capabilities
	if pc == nil {
		pc = &specs.LinuxCapabilities{}
	}
	// The bounding set can only shrink, and only while CAP_SETPCAP is held.
	caps.Clear(capability.BOUNDS)
	caps.Set(capability.BOUNDING, capList(pc.Bounding, last)...)
	if err := caps.Apply(capability.BOUNDS); err != nil {
		return fmt.Errorf("drop bounding capabilities: %w", err)
	}
	// Keep the permitted set across setuid to a non-root uid.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	// Go applies these to every thread (stopping the world to do so); skip
	// the calls that would change nothing.
	if setgroups {
		groups := make([]int, len(p.User.AdditionalGids))
		for i, g := range p.User.AdditionalGids {
			groups[i] = int(g)
		}
		if cur, err := unix.Getgroups(); err != nil || !sameInts(cur, groups) {
			if err := syscall.Setgroups(groups); err != nil {
				return fmt.Errorf("setgroups %v: %w", groups, err)
			}
		}
	}
	if r, e, s := unix.Getresgid(); r != int(p.User.GID) || e != r || s != r {
		if err := syscall.Setgid(int(p.User.GID)); err != nil {
			return fmt.Errorf("setgid %d: %w", p.User.GID, err)
		}
	}
	if r, e, s := unix.Getresuid(); r != int(p.User.UID) || e != r || s != r {
		if err := syscall.Setuid(int(p.User.UID)); err != nil {
			return fmt.Errorf("setuid %d: %w", p.User.UID, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	caps.Clear(capability.CAPS | capability.AMBS)
	caps.Set(capability.EFFECTIVE, capList(pc.Effective, last)...)
	caps.Set(capability.PERMITTED, capList(pc.Permitted, last)...)
	caps.Set(capability.INHERITABLE, capList(pc.Inheritable, last)...)
	if err := caps.Apply(capability.CAPS); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if amb := capList(pc.Ambient, last); len(amb) > 0 {
		// Ambient capabilities must be permitted and inheritable; the kernel
		// refuses others. runc ignores those failures; so do we.
		for _, c := range amb {
			_ = capability.SetAmbient(true, c)
		}
	}
	return nil
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
