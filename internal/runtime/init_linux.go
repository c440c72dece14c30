package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// IsInit reports whether this process was started as a container init (or
// exec helper) by the parent side, so that main can skip everything else.
func IsInit() bool { return os.Getenv(syncFdEnv) != "" }

// Init is the entry point of the process the parent spawned inside the new
// namespaces. The caller must have locked the main goroutine to its thread
// (runtime.LockOSThread in an init function): namespace, capability and
// seccomp changes are per thread, and the exec must happen on that thread.
// Init never returns.
func Init() {
	fd, err := strconv.Atoi(os.Getenv(syncFdEnv))
	if err != nil || fd < 3 {
		fmt.Fprintln(os.Stderr, "berth init: started without a sync socket; it is run by `berth runtime`, not by hand")
		os.Exit(2)
	}
	os.Unsetenv(syncFdEnv)
	// Close-on-exec, so the parent sees EOF the moment the container's
	// process replaces us.
	unix.CloseOnExec(fd)
	conn := newSyncConn(os.NewFile(uintptr(fd), "sync"))
	err = runInit(conn)
	_ = conn.sendError(err)
	os.Exit(1)
}

func runInit(conn *syncConn) error {
	m, err := conn.expect(msgConfig)
	if err != nil {
		return err
	}
	cfg, err := decodeInitConfig(m.Payload)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if cfg.Mode == "exec" {
		return runExecInit(conn, cfg)
	}
	tr := newPhaseTracer(cfg.Trace)
	tr.mark("init", "config read")
	if cfg.PidsLimit > 0 && cfg.PidsFile != "" {
		// Opened while the host's cgroup tree is still in view; written
		// just before exec (execFinal).
		f, err := os.OpenFile(cfg.PidsFile, os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", cfg.PidsFile, err)
		}
		cfg.pidsMax = f
	}
	cgroupDirs := false
	waitCgroupDirs := func() error {
		if cgroupDirs {
			return nil
		}
		cgroupDirs = true
		if _, err := conn.expect(msgCgroupDirs); err != nil {
			return err
		}
		if cfg.NewCgroupNS && !cfg.LateCgroupNS {
			// The parent has placed us in our cgroup: it becomes our root.
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return fmt.Errorf("new cgroup namespace: %w", err)
			}
		}
		return nil
	}
	var setup *rootfsSetup
	if cfg.NewMountNS || cfg.Rootfs != "" {
		setup = &rootfsSetup{cfg: cfg, rootfs: cfg.Rootfs, userns: cfg.UserNS, hostNS: !cfg.NewMountNS,
			cgroupPaths: cfg.CgroupPaths, newCgroupNS: cfg.NewCgroupNS, waitCgroupDirs: waitCgroupDirs}
		if err := setup.prepare(); err != nil {
			return fmt.Errorf("prepare rootfs: %w", err)
		}
	}
	tr.mark("init", "mounts done")
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	if cfg.Domainname != "" {
		if err := unix.Setdomainname([]byte(cfg.Domainname)); err != nil {
			return fmt.Errorf("set domainname: %w", err)
		}
	}
	// The parent runs prestart and createRuntime hooks, in the runtime's
	// namespaces, while we wait; then createContainer runs here.
	if err := waitCgroupDirs(); err != nil {
		return err
	}
	if cfg.RuntimeHooks {
		if err := conn.send(msgHooks, nil); err != nil {
			return err
		}
		if _, err := conn.expect(msgHooksDone); err != nil {
			return err
		}
	}
	if err := runHooks(context.Background(), "createContainer", cfg.CreateContainerHooks, cfg.StateJSON); err != nil {
		return err
	}
	if setup != nil {
		if err := setup.pivot(); err != nil {
			return err
		}
	}
	// Before the read-only paths, as runc does: /proc/sys is one of them.
	if err := writeSysctls(cfg.Sysctl); err != nil {
		return err
	}
	if setup != nil {
		if err := setup.finish(); err != nil {
			return err
		}
	}
	tr.mark("init", "pivoted")
	return execProcess(conn, cfg, func() error {
		if cfg.Mode == "run" {
			_, err := conn.expect(msgStart)
			return err
		}
		var b [1]byte
		for {
			_, err := unix.Read(cfg.FifoFd, b[:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("wait for start: %w", err)
			}
			unix.Close(cfg.FifoFd)
			return nil
		}
	})
}

// execProcess does what init and exec share after the namespaces and mounts
// are in place: console, executable lookup, "ready", wait, start hooks, exec.
func execProcess(conn *syncConn, cfg *initConfig, waitStart func() error) error {
	p := cfg.Process
	if p.Terminal {
		if cfg.ConsoleFd < 0 {
			return fmt.Errorf("process.terminal is true but no console socket was given")
		}
		sock := os.NewFile(uintptr(cfg.ConsoleFd), "console-socket")
		if err := setupConsole(sock, p.ConsoleSize); err != nil {
			return err
		}
		sock.Close()
	} else if _, err := unix.Setsid(); err != nil && err != unix.EPERM {
		return fmt.Errorf("setsid: %w", err)
	}
	name := p.Args[0]
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(p.Cwd, name)
	}
	path, err := lookPath(name, p.Env)
	if err != nil {
		return err
	}
	if cfg.LateCgroupNS {
		if err := conn.send(msgJoinQuery, nil); err != nil {
			return err
		}
		if _, err := conn.expect(msgJoined); err != nil {
			return err
		}
		// We are in our cgroup now: it becomes the root of our view.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("new cgroup namespace: %w", err)
		}
	}
	setgroups := true
	if cfg.UserNS {
		if b, err := os.ReadFile("/proc/self/setgroups"); err == nil && strings.TrimSpace(string(b)) == "deny" {
			setgroups = false
		}
	}
	// Credentials, capabilities and limits are applied before "ready", as
	// runc does, so that a configuration the kernel refuses fails create
	// instead of a container that silently exits at start.
	if err := cfg.Attrs.apply(); err != nil {
		return err
	}
	filter, err := prepareProcess(p, cfg.Seccomp, setgroups)
	if err != nil {
		return err
	}
	if err := conn.send(msgReady, nil); err != nil {
		return err
	}
	if err := waitStart(); err != nil {
		return err
	}
	if err := runHooks(context.Background(), "startContainer", cfg.StartContainerHooks, cfg.StateJSON); err != nil {
		return err
	}
	newPhaseTracer(cfg.Trace).mark("init", "started")
	if cfg.pidsMax != nil {
		// Our own threads exist already; from here on only the container's
		// process forks.
		if _, err := cfg.pidsMax.WriteString(strconv.FormatInt(cfg.PidsLimit, 10)); err != nil {
			return fmt.Errorf("set pids limit %d: %w", cfg.PidsLimit, err)
		}
		cfg.pidsMax.Close()
	}
	return execFinal(p, filter, path, cfg.PreserveFDs)
}

func writeSysctls(sysctl map[string]string) error {
	for k, v := range sysctl {
		if strings.Contains(k, "..") || strings.ContainsAny(k, " \x00") {
			return fmt.Errorf("invalid sysctl %q", k)
		}
		path := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
		if err := os.WriteFile(path, []byte(v), 0); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}
