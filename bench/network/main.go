// Command network is bench/network/run.sh's driver: berth's daemon and a
// private dockerd (Debian docker.io, internal/testutil/dockerd) side by
// side on the same busybox image, measuring
//
//   - container start time with the default bridge network and with
//     --network none (`run --rm busybox true`, hyperfine -N, both systems
//     alternating in one invocation): the difference is what networking
//     costs a start;
//   - throughput through a published port on loopback: busybox httpd in a
//     container serves a -mib MiB file from a tmpfs (sendfile, so the
//     server is not the bottleneck) through `-p 127.0.0.1:PORT:5001`; the
//     driver GETs it on the host, -rounds times per system, alternating;
//     median.
//
// The private dockerd runs with "iptables": false (the helper's setting,
// which leaves the host's firewall alone): its published ports are then
// served by docker-proxy, the userland proxy, which is also what docker
// uses for 127.0.0.1 with iptables on (its DNAT rules skip loopback
// sources), so the loopback figure is docker's usual path.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
)

type system struct {
	name string
	env  []string
}

type bench struct {
	berth, docker, work, seed string
	runs, rounds, mib         int
	systems                   []system
	berthD, dockerD           *exec.Cmd
	dockerX                   chan struct{}
	peer                      *dockerd.Daemon
	bridge                    string
}

func main() {
	b := &bench{}
	flag.StringVar(&b.berth, "berth", "", "berth binary")
	flag.StringVar(&b.docker, "docker", "/usr/local/bin/docker", "docker CLI")
	flag.StringVar(&b.work, "work", "", "work directory")
	flag.StringVar(&b.seed, "seed", "", "berth root holding busybox:latest")
	flag.IntVar(&b.runs, "runs", 30, "hyperfine runs per command")
	flag.IntVar(&b.rounds, "rounds", 5, "throughput rounds per system")
	flag.IntVar(&b.mib, "mib", 512, "MiB per throughput round")
	flag.Parse()
	b.bridge = fmt.Sprintf("bbn%d", os.Getpid())
	err := b.run(context.Background())
	b.cleanup()
	if err != nil {
		log.Fatal(err)
	}
}

func (b *bench) run(ctx context.Context) error {
	if err := b.startBerth(ctx); err != nil {
		return err
	}
	if err := b.startDocker(ctx); err != nil {
		return err
	}
	// The same image in both: berth's save, docker's load.
	save := exec.Command(b.docker, "save", "busybox:latest")
	save.Env = append(os.Environ(), b.systems[0].env...)
	load := exec.Command(b.docker, "load", "-q")
	load.Env = append(os.Environ(), b.systems[1].env...)
	pipe, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	load.Stdin = pipe
	if err := save.Start(); err != nil {
		return err
	}
	if out, err := load.CombinedOutput(); err != nil {
		return fmt.Errorf("docker load: %v: %s", err, out)
	}
	if err := save.Wait(); err != nil {
		return fmt.Errorf("berth save: %w", err)
	}
	if err := b.startTimes(ctx); err != nil {
		return err
	}
	return b.throughput(ctx)
}

func (b *bench) startBerth(ctx context.Context) error {
	dir := filepath.Join(b.work, "berth")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, _ := json.Marshal(map[string]any{"bridge": b.bridge, "ip-forward": false})
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), cfg, 0o644); err != nil {
		return err
	}
	sock := filepath.Join(dir, "berth.sock")
	b.berthD = exec.Command(b.berth, "daemon", "--root", b.seed, "--exec-root", filepath.Join(dir, "exec"),
		"--host", "unix://"+sock, "--config", filepath.Join(dir, "daemon.json"))
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	b.berthD.Stdout, b.berthD.Stderr = logf, logf
	b.berthD.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.berthD.Start(); err != nil {
		return err
	}
	s := system{name: "berth", env: []string{"DOCKER_HOST=unix://" + sock, "DOCKER_CONFIG=" + filepath.Join(dir, "cli")}}
	b.systems = append(b.systems, s)
	return b.waitFor(ctx, s)
}

func (b *bench) startDocker(ctx context.Context) error {
	peer, err := dockerd.Prepare(dockerd.Options{Dir: filepath.Join(b.work, "docker")})
	if err != nil {
		return err
	}
	b.peer = peer
	b.dockerD = peer.Command()
	logf, err := os.Create(filepath.Join(b.work, "dockerd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	b.dockerD.Stdout, b.dockerD.Stderr = logf, logf
	if err := b.dockerD.Start(); err != nil {
		return err
	}
	b.dockerX = make(chan struct{})
	go func() { _ = b.dockerD.Wait(); close(b.dockerX) }()
	s := system{name: "docker", env: peer.Env()}
	b.systems = append(b.systems, s)
	return b.waitFor(ctx, s)
}

func (b *bench) waitFor(ctx context.Context, s system) error {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := b.cli(ctx, s, "version"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s daemon did not answer", s.name)
}

func (b *bench) cli(ctx context.Context, s system, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.docker, args...)
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", s.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// startTimes runs hyperfine over both systems' `run --rm` with and without
// a network, in one invocation.
func (b *bench) startTimes(ctx context.Context) error {
	out := filepath.Join(b.work, "start.json")
	args := []string{"-N", "--warmup", "5", "--runs", fmt.Sprint(b.runs), "--export-json", out}
	for _, s := range b.systems {
		for _, mode := range []string{"bridge", "none"} {
			// env(1) carries each system's DOCKER_HOST; hyperfine -N has no shell.
			cmd := append([]string{"/usr/bin/env"}, s.env...)
			cmd = append(cmd, b.docker, "run", "--rm", "--network", mode, "busybox:latest", "true")
			args = append(args, "-n", s.name+" "+mode, strings.Join(cmd, " "))
		}
	}
	h := exec.CommandContext(ctx, "hyperfine", args...)
	h.Stdout, h.Stderr = io.Discard, os.Stderr
	if err := h.Run(); err != nil {
		return fmt.Errorf("hyperfine: %w", err)
	}
	var res struct {
		Results []struct {
			Command string  `json:"command"`
			Median  float64 `json:"median"`
		} `json:"results"`
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	med := map[string]float64{}
	for _, r := range res.Results {
		med[r.Command] = r.Median * 1000
	}
	fmt.Printf("\n## run --rm busybox true (hyperfine -N, %d runs each, medians)\n", b.runs)
	fmt.Println("| system | --network bridge | --network none | networking overhead |")
	fmt.Println("|---|---|---|---|")
	over := map[string]float64{}
	for _, s := range b.systems {
		br, no := med[s.name+" bridge"], med[s.name+" none"]
		over[s.name] = br - no
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.1f ms |\n", s.name, br, no, br-no)
	}
	if d := over["docker"]; d > 0 {
		fmt.Printf("berth's networking overhead / docker's: %.2f (target ≤ 0.5)\n", over["berth"]/d)
	}
	return nil
}

// throughput: a container streams zeros through a published loopback port
// and the driver reads them, -rounds times per system, alternating.
func (b *bench) throughput(ctx context.Context) error {
	ports := map[string]int{}
	for _, s := range b.systems {
		port, err := freePort()
		if err != nil {
			return err
		}
		ports[s.name] = port
		script := fmt.Sprintf("dd if=/dev/zero of=/www/blob bs=1048576 count=%d 2>/dev/null && exec httpd -f -p 5001 -h /www", b.mib)
		if _, err := b.cli(ctx, s, "run", "-d", "--name", "bench-tput", "-p", fmt.Sprintf("127.0.0.1:%d:5001", port),
			"--tmpfs", fmt.Sprintf("/www:size=%dm", b.mib+16), "busybox:latest", "sh", "-c", script); err != nil {
			return err
		}
	}
	// A reference: berth's container straight at its address, no DNAT.
	ip, err := b.cli(ctx, b.systems[0], "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "bench-tput")
	if err != nil {
		return err
	}
	targets := []struct{ name, addr string }{
		{"berth", fmt.Sprintf("127.0.0.1:%d", ports["berth"])},
		{"docker", fmt.Sprintf("127.0.0.1:%d", ports["docker"])},
		{"berth, container address (no DNAT)", strings.TrimSpace(ip) + ":5001"},
	}
	rates := map[string][]float64{}
	for round := 0; round < b.rounds+1; round++ {
		for _, tg := range targets {
			mbps, err := pull(tg.addr, int64(b.mib)<<20)
			if err != nil {
				return fmt.Errorf("%s: %w", tg.name, err)
			}
			if round > 0 { // the first round warms up
				rates[tg.name] = append(rates[tg.name], mbps)
			}
		}
	}
	fmt.Printf("\n## throughput through a published port on 127.0.0.1 (%d MiB, %d rounds, median)\n", b.mib, b.rounds)
	fmt.Println("| system | MiB/s |")
	fmt.Println("|---|---|")
	med := map[string]float64{}
	for _, tg := range targets {
		r := slices.Clone(rates[tg.name])
		sort.Float64s(r)
		med[tg.name] = r[len(r)/2]
		fmt.Printf("| %s | %.0f |\n", tg.name, med[tg.name])
	}
	if d := med["docker"]; d > 0 {
		fmt.Printf("berth / docker: %.2f (target ≥ 1)\n", med["berth"]/d)
	}
	return nil
}

// pull GETs the file from the server at addr (retrying while the server
// starts) and returns MiB/s.
func pull(addr string, want int64) (float64, error) {
	var last error
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		start := time.Now()
		resp, err := c.Get("http://" + addr + "/blob")
		if err != nil {
			last = err
			continue
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		el := time.Since(start)
		if err == nil && n == want {
			return float64(n) / (1 << 20) / el.Seconds(), nil
		}
		last = fmt.Errorf("read %d of %d bytes: %v (%s)", n, want, err, resp.Status)
	}
	return 0, last
}

func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cleanup removes the containers, stops both daemons by PID and removes
// what they leave: dockerd's private state (the helper) and berth's
// bridge and nftables table.
func (b *bench) cleanup() {
	ctx := context.Background()
	for _, s := range b.systems {
		if out, err := b.cli(ctx, s, "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			_, _ = b.cli(ctx, s, append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
	}
	if b.dockerD != nil {
		b.peer.Stop(b.dockerD, b.dockerX)
	}
	if b.peer != nil {
		if err := b.peer.Cleanup(); err != nil {
			log.Printf("dockerd cleanup: %v", err)
		}
	}
	if b.berthD != nil {
		_ = b.berthD.Process.Signal(syscall.SIGTERM)
		_, _ = b.berthD.Process.Wait()
		if raw, err := os.ReadFile(filepath.Join(b.work, "berth", "exec", "supervisor.pid")); err == nil {
			var pid int
			if _, err := fmt.Sscan(string(raw), &pid); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		veths, err := network.Purge(filepath.Join(b.seed, "network"), "berth_"+b.bridge)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Printf("berth network cleanup: %v", err)
		}
		if len(veths) > 0 {
			log.Printf("warning: berth left veths %v", veths)
		}
	}
}
