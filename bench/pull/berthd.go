package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// berthDaemonPeer is `berth pull` against a private `berth daemon`: own
// root, exec root, socket, bridge and nftables table. With -wipe fresh the
// daemon (and its supervisor) restart on a new root for every run, as the
// private dockerd does.
type berthDaemonPeer struct {
	bin, dir, ref string
	mode          wipeMode
	sock          string
	cmd           *exec.Cmd
	waitDone      chan struct{}
	logf          *os.File
	root          string
	run           int
	cpu0          float64 // the daemon's CPU seconds when the pull began
	lastCPU       float64 // its CPU seconds for the last pull
}

const (
	benchBridge = "bpull0"
	benchTable  = "berth_bench_pull"
)

func newBerthDaemonPeer(ctx context.Context, bin, dir, ref string, mode wipeMode) (*berthDaemonPeer, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("needs the berth binary (-berth-bin): %w", err)
	}
	b := &berthDaemonPeer{bin: bin, dir: dir, ref: ref, mode: mode,
		sock: fmt.Sprintf("/run/berth-bench-pull-berth-%d.sock", os.Getpid())}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`{"bridge": %q, "bip": "10.234.0.1/24", "nft-table": %q, "log-level": "warn"}`, benchBridge, benchTable)
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	var err error
	if b.logf, err = os.Create(filepath.Join(dir, "berth.log")); err != nil {
		return nil, err
	}
	return b, b.start(ctx, filepath.Join(dir, "root-0"))
}

func (b *berthDaemonPeer) name() string { return "berth" }

func (b *berthDaemonPeer) execRoot() string { return filepath.Join(b.dir, "exec") }

func (b *berthDaemonPeer) start(ctx context.Context, root string) error {
	b.root = root
	b.cmd = exec.Command(b.bin, "daemon", "--root", root, "--exec-root", b.execRoot(),
		"--host", "unix://"+b.sock, "--config", filepath.Join(b.dir, "daemon.json"))
	b.cmd.Stdout, b.cmd.Stderr = b.logf, b.logf
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		return fmt.Errorf("start berth daemon: %w", err)
	}
	exited := make(chan struct{})
	b.waitDone = exited
	go func() { b.cmd.Wait(); close(exited) }()
	return waitPing(ctx, b.sock, exited, "berth daemon", b.logf.Name(), 30*time.Second)
}

func (b *berthDaemonPeer) env() []string {
	return []string{"DOCKER_HOST=unix://" + b.sock, "DOCKER_CONFIG=" + filepath.Join(b.dir, "cli")}
}

func (b *berthDaemonPeer) reset(ctx context.Context, run int) error {
	b.run = run
	if run == 0 {
		return nil // started empty
	}
	if b.mode == wipeFresh {
		if err := b.stop(); err != nil {
			return err
		}
		return b.start(ctx, filepath.Join(b.dir, fmt.Sprintf("root-%d", run)))
	}
	if err := runCmd(ctx, b.env(), b.bin, "rmi", "-f", b.ref); err != nil {
		return err
	}
	return runCmd(ctx, b.env(), b.bin, "image", "prune", "-af")
}

// pull runs `berth pull -q` and records the daemon's CPU time for it.
func (b *berthDaemonPeer) pull(ctx context.Context) error {
	b.cpu0 = procCPU(b.cmd.Process.Pid)
	err := runCmd(ctx, b.env(), b.bin, "pull", "-q", b.ref)
	b.lastCPU = procCPU(b.cmd.Process.Pid) - b.cpu0
	return err
}

// stop ends the daemon and its supervisor by PID.
func (b *berthDaemonPeer) stop() error {
	if b.cmd == nil || b.cmd.Process == nil {
		return nil
	}
	terminate(b.cmd.Process.Pid, b.waitDone)
	b.cmd = nil
	if data, err := os.ReadFile(filepath.Join(b.execRoot(), "supervisor.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// The daemon keeps its bridge and table for containers it may find
	// again; a daemon on a new root would take that bridge's route for
	// somebody else's.
	exec.Command("ip", "link", "del", benchBridge).Run()
	exec.Command("nft", "delete", "table", "ip", benchTable).Run()
	return nil
}

func (b *berthDaemonPeer) close() {
	b.stop()
	os.Remove(b.sock)
	if b.logf != nil {
		b.logf.Close()
	}
}

// procCPU is the user+system CPU seconds of pid (from /proc/PID/stat).
func procCPU(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" of the command name: utime and stime are the
	// 12th and 13th.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ)
}
