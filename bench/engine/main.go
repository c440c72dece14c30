// Command engine measures berth's daemon side by side with a private
// dockerd (Debian docker.io) and podman in one run, all three running the
// same busybox image pulled from one loopback registry (`berth registry
// serve`): `run --rm busybox true` latency (hyperfine), 50 containers run
// and removed sequentially and 4-way parallel, the daemons' idle memory,
// and the memory each running container adds. Each system is driven with
// its own CLI: berth's, the docker CLI (/usr/local/bin/docker) for dockerd,
// podman's; berth is also timed through the docker CLI (berth-dockercli).
//
// bench/engine/run.sh builds berth, seeds the image, and runs this inside
// a private mount namespace where /sys/fs/cgroup/unified is unmounted
// (crun, podman's runtime, refuses this host's hybrid cgroup layout); the
// daemons are started in the host's mount namespace through nsenter
// (-hostns), so only podman sees the pure cgroup v1 view.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/podman"
)

type config struct {
	berth, work, hostNS, seedRoot string
	docker                        string
	runs, rounds, n, par, mem     int
	podmanRuntime, podmanNet      string
	peers                         map[string]bool
}

func main() {
	var c config
	var peers string
	flag.StringVar(&c.berth, "berth", "", "the berth binary")
	flag.StringVar(&c.work, "work", "", "a private directory for every store, socket and log")
	flag.StringVar(&c.seedRoot, "seed", "", "a berth root holding busybox:latest (bench/cli/seed)")
	flag.StringVar(&c.hostNS, "hostns", "", "mount namespace (a /proc/PID/ns/mnt path) to start the daemons in")
	flag.StringVar(&c.docker, "docker", "/usr/local/bin/docker", "the docker CLI")
	flag.IntVar(&c.runs, "runs", 30, "hyperfine runs per command")
	flag.IntVar(&c.rounds, "rounds", 5, "hyperfine invocations the runs are split into, interleaving the systems")
	flag.IntVar(&c.n, "n", 50, "containers run and removed sequentially and in parallel")
	flag.IntVar(&c.par, "par", 4, "parallel workers")
	flag.IntVar(&c.mem, "mem", 20, "running containers for the per-container memory")
	flag.StringVar(&c.podmanRuntime, "podman-runtime", "crun", "podman's OCI runtime")
	flag.StringVar(&c.podmanNet, "podman-network", "none", "podman's --network (its default bridge would add firewall rules to the host)")
	flag.StringVar(&peers, "peers", "docker,podman", "peers to run beside berth")
	flag.Parse()
	if c.berth == "" || c.work == "" || c.seedRoot == "" {
		log.Fatal("need -berth, -work and -seed")
	}
	c.peers = map[string]bool{}
	for _, p := range strings.Split(peers, ",") {
		if p != "" {
			c.peers[p] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{config: c}
	err := b.run(ctx)
	b.cleanup()
	if err != nil {
		log.Fatal(err)
	}
}

// system is one container system under test.
type system struct {
	name string
	// cli is the command line prefix that talks to it (docker -H … or
	// podman --root …); env is added to the caller's environment.
	cli []string
	env []string
	// runArgs go between "run" and the image (podman's runtime, network).
	runArgs []string
	// daemonPids returns the daemon processes (none for podman).
	daemonPids func() []int
}

func (s *system) command(args ...string) *exec.Cmd {
	all := append(slices.Clone(s.cli), args...)
	cmd := exec.Command(all[0], all[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	return cmd
}

func (s *system) do(args ...string) (string, error) {
	cmd := s.command(args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", s.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// runTrue is `run --rm busybox true` for this system.
func (s *system) runTrue() []string {
	return append(append(append(slices.Clone(s.cli), "run", "--rm"), s.runArgs...), "busybox", "true")
}

type bench struct {
	config
	registry  *exec.Cmd
	berthD    *exec.Cmd
	berthSock string
	dockerD   *exec.Cmd
	dockerX   chan struct{}
	peer      *dockerd.Daemon
	podmanDir string
	systems   []*system
	// variants are timed like systems but share one's daemon: berth
	// through the docker CLI.
	variants []*system
}

func (b *bench) wrap(args ...string) *exec.Cmd {
	if b.hostNS != "" {
		args = append([]string{"nsenter", "--mount=" + b.hostNS, "--"}, args...)
	}
	return exec.Command(args[0], args[1:]...)
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitFor(what string, ok func() bool) error {
	for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
	}
	return nil
}

func (b *bench) run(ctx context.Context) error {
	reg, err := freePort()
	if err != nil {
		return err
	}
	b.registry = exec.Command(b.berth, "registry", "serve", "--addr", reg, "--root", filepath.Join(b.work, "registry"))
	if err := startLogged(b.registry, filepath.Join(b.work, "registry.log")); err != nil {
		return err
	}
	if err := waitFor("the registry", func() bool {
		c, err := net.Dial("tcp", reg)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return err
	}
	if err := b.startBerth(reg); err != nil {
		return err
	}
	berth := b.systems[0]
	// The image goes from berth's seeded store to the registry, and every
	// system (berth too) pulls it from there.
	remote := reg + "/library/busybox:latest"
	for _, args := range [][]string{{"tag", "busybox:latest", remote}, {"push", remote}, {"rmi", "busybox:latest", remote}} {
		if _, err := berth.do(args...); err != nil {
			return err
		}
	}
	if b.peers["docker"] {
		if err := b.startDocker(reg); err != nil {
			return err
		}
	}
	if b.peers["podman"] {
		if err := b.setupPodman(reg); err != nil {
			return err
		}
	}
	for _, s := range b.systems {
		local := "busybox:latest"
		if s.name == "podman" {
			local = "docker.io/library/busybox:latest"
		}
		for _, args := range [][]string{{"pull", "-q", remote}, {"tag", remote, local}, {"rmi", remote}} {
			if _, err := s.do(args...); err != nil {
				return err
			}
		}
		if _, err := s.do(append(append([]string{"run", "--rm"}, s.runArgs...), "busybox", "true")...); err != nil {
			return err
		}
	}
	time.Sleep(3 * time.Second)
	idleFresh := b.idle()

	fmt.Printf("\n## run --rm busybox true (hyperfine -N, %d runs each in %d rounds)\n", b.runs, b.rounds)
	lat, err := b.latency(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\n## %d containers run --rm busybox true, sequential and %d-way parallel\n", b.n, b.par)
	seq, par := map[string]time.Duration{}, map[string]time.Duration{}
	timed := append(slices.Clone(b.systems), b.variants...)
	// podman runs with --network none: berth runs so too, for a like-for-like
	// ratio (docker's stays against berth's default network).
	if b.peers["podman"] {
		none := *b.systems[0]
		none.name, none.runArgs = "berth-none", append(slices.Clone(none.runArgs), "--network", "none")
		timed = append(timed, &none)
	}
	for _, s := range timed {
		if seq[s.name], err = b.many(ctx, s, 1); err != nil {
			return err
		}
		fmt.Printf("%-8s sequential %6.2f s\n", s.name, seq[s.name].Seconds())
	}
	for _, s := range timed {
		if par[s.name], err = b.many(ctx, s, b.par); err != nil {
			return err
		}
		fmt.Printf("%-8s parallel   %6.2f s\n", s.name, par[s.name].Seconds())
	}
	time.Sleep(5 * time.Second)
	idleAfter := b.idle()

	fmt.Printf("\n## memory per running container (%d × run -d busybox sleep 1000)\n", b.mem)
	per := map[string]perContainer{}
	for _, s := range b.systems {
		p, err := b.perContainer(s)
		if err != nil {
			return err
		}
		per[s.name] = p
	}
	b.report(lat, seq, par, idleFresh, idleAfter, per)
	return nil
}

func startLogged(cmd *exec.Cmd, logPath string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

func (b *bench) startBerth(reg string) error {
	dir := filepath.Join(b.work, "berth")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Its own bridge and nftables table, removed in cleanup.
	cfg, _ := json.Marshal(map[string]any{"registry-mirrors": []string{"http://" + reg}, "insecure-registries": []string{reg},
		"bridge": berthBridge(), "ip-forward": false})
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), cfg, 0o644); err != nil {
		return err
	}
	b.berthSock = filepath.Join(dir, "berth.sock")
	b.berthD = b.wrap(b.berth, "daemon", "--root", b.seedRoot, "--exec-root", filepath.Join(dir, "exec"),
		"--host", "unix://"+b.berthSock, "--config", filepath.Join(dir, "daemon.json"))
	if err := startLogged(b.berthD, filepath.Join(dir, "daemon.log")); err != nil {
		return err
	}
	s := &system{name: "berth", cli: []string{b.berth}, env: []string{"DOCKER_HOST=unix://" + b.berthSock}}
	b.variants = append(b.variants, &system{name: "berth-dockercli", cli: []string{b.docker, "-H", "unix://" + b.berthSock},
		env: []string{"DOCKER_CONFIG=" + filepath.Join(dir, "cli")}})
	s.daemonPids = func() []int {
		return []int{b.berthD.Process.Pid, readPid(filepath.Join(dir, "exec", "supervisor.pid"))}
	}
	b.systems = append(b.systems, s)
	return waitFor("berth daemon", func() bool { _, err := s.do("version"); return err == nil })
}

func (b *bench) startDocker(reg string) error {
	peer, err := dockerd.Prepare(dockerd.Options{Dir: filepath.Join(b.work, "docker"), Mirror: reg, Wrapper: b.wrapper()})
	if err != nil {
		return err
	}
	b.peer = peer
	// This process sees the cgroup hierarchies of its private mount
	// namespace only (no unified one): run.sh removes these in the host's.
	b.noteCgroup(peer.CgroupParent)
	b.dockerD = peer.Command()
	if err := startLogged(b.dockerD, filepath.Join(b.work, "dockerd.log")); err != nil {
		return err
	}
	b.dockerX = make(chan struct{})
	go func() { _ = b.dockerD.Wait(); close(b.dockerX) }()
	s := &system{name: "docker", cli: []string{b.docker, "-H", "unix://" + peer.Sock},
		env: []string{"DOCKER_CONFIG=" + filepath.Join(b.work, "docker-cli")}}
	s.daemonPids = func() []int { return []int{b.dockerD.Process.Pid, peer.ContainerdPid()} }
	b.systems = append(b.systems, s)
	return waitFor("dockerd", func() bool { return peer.Ping(context.Background()) })
}

func (b *bench) wrapper() []string {
	if b.hostNS == "" {
		return nil
	}
	return []string{"nsenter", "--mount=" + b.hostNS, "--"}
}

func (b *bench) setupPodman(reg string) error {
	if _, err := exec.LookPath("podman"); err != nil {
		return errors.New("needs podman (bench/engine/run.sh installs it)")
	}
	dir := filepath.Join(b.work, "podman")
	// podman wants its runroot short: /run, like its default.
	run := fmt.Sprintf("/run/berth-bench-engine-%d", os.Getpid())
	b.podmanDir = run
	env, err := podman.WriteConfig(dir, filepath.Join(dir, "graph"), filepath.Join(run, "run"), reg)
	if err != nil {
		return err
	}
	s := &system{name: "podman",
		cli: []string{"podman", "--root", filepath.Join(dir, "graph"), "--runroot", filepath.Join(run, "run"),
			"--runtime", b.podmanRuntime, "--cgroup-manager", "cgroupfs"},
		// podman has no mirror setting that cannot fall back: any registry
		// but loopback is sent to a closed port.
		env:        append(env, "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.0/8,localhost"),
		runArgs:    []string{"--pull=never", "--network", b.podmanNet, "--cgroup-parent", podmanCgroup()},
		daemonPids: func() []int { return nil },
	}
	b.systems = append(b.systems, s)
	b.noteCgroup(podmanCgroup())
	return nil
}

// noteCgroup adds a cgroup parent to <work>/cgroups, which run.sh removes
// in the host's mount namespace at the end.
func (b *bench) noteCgroup(name string) {
	f, err := os.OpenFile(filepath.Join(b.work, "cgroups"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Printf("note cgroup %s: %v", name, err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, name)
}

// latency runs hyperfine over every system's `run --rm busybox true` in
// b.rounds rounds of b.runs/b.rounds runs each (hyperfine times one
// command's runs back to back; rounds interleave the systems, so load that
// changes during the run hits all of them) and returns each system's
// median over all runs.
func (b *bench) latency(ctx context.Context) (map[string]time.Duration, error) {
	// berth and docker also without a network (a netns with lo only),
	// which is what podman runs with here.
	systems := append(slices.Clone(b.systems), b.variants...)
	for _, s := range b.systems {
		if s.name != "podman" {
			v := *s
			v.name, v.runArgs = s.name+"-none", append(slices.Clone(s.runArgs), "--network", "none")
			systems = append(systems, &v)
		}
	}
	times := map[string][]float64{}
	per := max(1, b.runs/max(1, b.rounds))
	for round := 0; round < max(1, b.rounds); round++ {
		out := filepath.Join(b.work, fmt.Sprintf("latency-%d.json", round))
		args := []string{"-N", "--style", "none", "--warmup", "2", "--runs", strconv.Itoa(per), "--export-json", out}
		var env []string
		for _, s := range systems {
			args = append(args, "-n", s.name, strings.Join(s.runTrue(), " "))
			env = append(env, s.env...)
		}
		cmd := exec.CommandContext(ctx, "hyperfine", args...)
		// The systems' variables do not collide (DOCKER_CONFIG is the
		// only shared name; both docker CLIs may use either).
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("hyperfine: %w", err)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		var res struct {
			Results []struct {
				Command string    `json:"command"`
				Times   []float64 `json:"times"`
			} `json:"results"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, err
		}
		for _, r := range res.Results {
			times[r.Command] = append(times[r.Command], r.Times...)
		}
	}
	med := map[string]time.Duration{}
	for _, sys := range systems {
		name, t := sys.name, times[sys.name]
		sort.Float64s(t)
		med[name] = time.Duration(t[len(t)/2] * float64(time.Second))
		fmt.Printf("%-8s median %6.1f ms (min %.1f, max %.1f, %d runs)\n", name, t[len(t)/2]*1000, t[0]*1000, t[len(t)-1]*1000, len(t))
	}
	return med, nil
}

// many runs b.n `run --rm busybox true` with par workers and returns the
// wall time.
func (b *bench) many(ctx context.Context, s *system, par int) (time.Duration, error) {
	jobs := make(chan int)
	errs := make(chan error, b.n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				argv := s.runTrue()
				cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
				cmd.Env = append(os.Environ(), s.env...)
				if out, err := cmd.CombinedOutput(); err != nil {
					errs <- fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
				}
			}
		}()
	}
	for i := 0; i < b.n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

// mem is VmRSS and Pss in KiB.
type mem struct{ rss, pss int }

func (m mem) add(o mem) mem { return mem{m.rss + o.rss, m.pss + o.pss} }

func (m mem) String() string {
	return fmt.Sprintf("RSS %.1f MiB, Pss %.1f MiB", float64(m.rss)/1024, float64(m.pss)/1024)
}

func memOf(pid int) mem {
	rss, pss := testutil.ProcMem(pid)
	return mem{rss, pss}
}

func sumMem(pids []int) (m mem) {
	for _, p := range pids {
		m = m.add(memOf(p))
	}
	return m
}

func (b *bench) idle() map[string]mem {
	out := map[string]mem{}
	for _, s := range b.systems {
		out[s.name] = sumMem(s.daemonPids())
	}
	return out
}

func readPid(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid
}

func ppid(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	p, _ := strconv.Atoi(f[1])
	return p
}

// perContainer is what running containers add, per container.
type perContainer struct {
	// keeper: the per-container process (shim, conmon) or, for berth, the
	// supervisor's growth; daemon: the daemons' growth; ctr: the
	// container's own process.
	keeper, daemon, ctr mem
}

func (b *bench) perContainer(s *system) (perContainer, error) {
	daemons := s.daemonPids()
	before := make([]mem, len(daemons))
	for i, pid := range daemons {
		before[i] = memOf(pid)
	}
	var ids []string
	for i := 0; i < b.mem; i++ {
		out, err := s.do(append(append([]string{"run", "-d"}, s.runArgs...), "busybox", "sleep", "1000")...)
		if err != nil {
			return perContainer{}, err
		}
		f := strings.Fields(out)
		ids = append(ids, f[len(f)-1])
	}
	defer s.do(append([]string{"rm", "-f"}, ids...)...)
	time.Sleep(2 * time.Second)
	var keepers, ctrs []int
	for _, id := range ids {
		out, err := s.do("inspect", "-f", "{{.State.Pid}}", id)
		if err != nil {
			return perContainer{}, err
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(out))
		ctrs = append(ctrs, pid)
		if p := ppid(pid); !slices.Contains(daemons, p) && !slices.Contains(keepers, p) {
			keepers = append(keepers, p)
		}
	}
	n := len(ids)
	div := func(m mem) mem { return mem{m.rss / n, m.pss / n} }
	var p perContainer
	p.ctr = div(sumMem(ctrs))
	p.keeper = div(sumMem(keepers))
	for i, pid := range daemons {
		now := memOf(pid)
		growth := div(mem{now.rss - before[i].rss, now.pss - before[i].pss})
		if s.name == "berth" && i == 1 {
			// The supervisor (berth's second process) keeps every
			// container: its growth is berth's per-container keeper.
			p.keeper = p.keeper.add(growth)
			continue
		}
		p.daemon = p.daemon.add(growth)
	}
	fmt.Printf("%-8s per container: keeper %s; daemon growth %s; container process %s (%d separate keeper processes)\n",
		s.name, p.keeper, p.daemon, p.ctr, len(keepers))
	return p, nil
}

func ratio(peer, berth time.Duration) string {
	if berth <= 0 || peer <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1fx", float64(peer)/float64(berth))
}

func (b *bench) report(lat, seq, par map[string]time.Duration, idleFresh, idleAfter map[string]mem, per map[string]perContainer) {
	names := make([]string, 0, len(b.systems))
	for _, s := range b.systems {
		names = append(names, s.name)
	}
	sort.SliceStable(names, func(i, j int) bool { return names[i] == "berth" })
	fmt.Println("\n## summary (berth's advantage = peer / berth)")
	row := func(label string, f func(string) string) {
		fmt.Printf("| %s |", label)
		for _, n := range names {
			fmt.Printf(" %s |", f(n))
		}
		fmt.Println()
	}
	fmt.Printf("| measure | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
	secs := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	row("`run --rm busybox true`, median (default network; podman: none)", func(n string) string {
		if n == "berth" {
			return ms(lat[n])
		}
		return ms(lat[n]) + " (" + ratio(lat[n], lat["berth"]) + ")"
	})
	row("`run --rm --network none busybox true`, median", func(n string) string {
		switch n {
		case "berth":
			return ms(lat["berth-none"])
		case "podman":
			return ms(lat[n]) + " (" + ratio(lat[n], lat["berth-none"]) + ")"
		}
		return ms(lat[n+"-none"]) + " (" + ratio(lat[n+"-none"], lat["berth-none"]) + ")"
	})
	for _, x := range []struct {
		label string
		m     map[string]time.Duration
	}{{fmt.Sprintf("%d × run --rm, sequential (default network; podman: none, against berth's none)", b.n), seq},
		{fmt.Sprintf("%d × run --rm, %d-way parallel (default network; podman: none, against berth's none)", b.n, b.par), par}} {
		row(x.label, func(n string) string {
			s := fmt.Sprintf("%.2f s", x.m[n].Seconds())
			none, hasNone := x.m["berth-none"]
			switch {
			case n == "berth" && hasNone:
				s += fmt.Sprintf(" (--network none: %.2f s)", none.Seconds())
			case n == "berth":
			case n == "podman" && hasNone:
				s += " (" + ratio(x.m[n], none) + ")"
			default:
				s += " (" + ratio(x.m[n], x.m["berth"]) + ")"
			}
			return s
		})
	}
	// berth through the docker CLI, against the same peer figures.
	const via = "berth-dockercli"
	for _, x := range []struct {
		label string
		m     map[string]time.Duration
		f     func(time.Duration) string
	}{{"berth through the docker CLI: `run --rm busybox true`, median", lat, ms},
		{fmt.Sprintf("berth through the docker CLI: %d × run --rm, sequential", b.n), seq, secs},
		{fmt.Sprintf("berth through the docker CLI: %d × run --rm, %d-way parallel", b.n, b.par), par, secs}} {
		if _, ok := x.m[via]; !ok {
			continue
		}
		row(x.label, func(n string) string {
			if n == "berth" {
				return x.f(x.m[via])
			}
			return x.f(x.m[n]) + " (" + ratio(x.m[n], x.m[via]) + ")"
		})
	}
	mib := func(kb int) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }
	for _, x := range []struct {
		label string
		m     map[string]mem
	}{{"daemon idle RSS / Pss MiB (after pull + 1 run)", idleFresh}, {"daemon idle RSS / Pss MiB (after the runs)", idleAfter}} {
		row(x.label, func(n string) string {
			if n == "podman" {
				return "n/a (no daemon)"
			}
			return mib(x.m[n].rss) + " / " + mib(x.m[n].pss)
		})
	}
	row("per running container: keeper (shim / conmon / supervisor growth) RSS / Pss MiB", func(n string) string {
		return mib(per[n].keeper.rss) + " / " + mib(per[n].keeper.pss)
	})
	row("per running container: daemons' growth RSS / Pss MiB", func(n string) string {
		return mib(per[n].daemon.rss) + " / " + mib(per[n].daemon.pss)
	})
	row("per running container: the container's process RSS / Pss MiB", func(n string) string {
		return mib(per[n].ctr.rss) + " / " + mib(per[n].ctr.pss)
	})
	row("per running container: all added RSS / Pss MiB", func(n string) string {
		t := per[n].keeper.add(per[n].daemon).add(per[n].ctr)
		return mib(t.rss) + " / " + mib(t.pss)
	})
}

// cleanup removes every container, stops the daemons by PID, and removes
// the peers' state (run.sh removes the work directory afterwards).
func (b *bench) cleanup() {
	for _, s := range b.systems {
		if out, err := s.do("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			_, _ = s.do(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
	}
	if b.dockerD != nil {
		b.peer.Stop(b.dockerD, b.dockerX)
		if err := b.peer.Cleanup(); err != nil {
			log.Printf("dockerd cleanup: %v", err)
		}
	}
	if b.berthD != nil {
		stopPid(b.berthD)
		if pid := readPid(filepath.Join(b.work, "berth", "exec", "supervisor.pid")); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		if _, err := network.Purge(filepath.Join(b.seedRoot, "network"), "berth_"+berthBridge()); err != nil {
			log.Printf("berth network cleanup: %v", err)
		}
	}
	if b.registry != nil {
		stopPid(b.registry)
	}
	if b.podmanDir != "" {
		_ = testutil.UnmountUnder(b.podmanDir)
		_ = testutil.UnmountUnder(filepath.Join(b.work, "podman"))
		_ = os.RemoveAll(b.podmanDir)
	}
}

// berthBridge is the bench daemon's default bridge (its nftables table is
// berth_ + that name).
func berthBridge() string { return fmt.Sprintf("bbe%d", os.Getpid()) }

// podmanCgroup is the cgroup parent of podman's containers in this run.
func podmanCgroup() string { return fmt.Sprintf("/berth-bench-podman-%d", os.Getpid()) }

func stopPid(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
