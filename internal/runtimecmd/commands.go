package runtimecmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime"
)

type runtimeFlags struct {
	root      string
	log       string
	logFormat string
	debug     bool
	systemd   bool
}

// New is `berth runtime`: an OCI runtime driven like runc, so that tools
// written for runc (containerd, conformance suites) can drive it.
func New() *cobra.Command {
	f := &runtimeFlags{}
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "OCI runtime (runtime-spec 1.2) with runc's verbs",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.root, "root", "/run/berth/runtime", "directory for container state")
	pf.StringVar(&f.log, "log", "", "log file (default stderr)")
	pf.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	pf.BoolVar(&f.debug, "debug", false, "debug logging")
	pf.BoolVar(&f.systemd, "systemd-cgroup", false, "use systemd for cgroups (not supported)")
	pf.Bool("rootless", false, "ignored; kept for runc compatibility")
	pf.String("criu", "", "ignored; kept for runc compatibility")
	_ = pf.MarkHidden("rootless")
	_ = pf.MarkHidden("criu")

	open := func() (*runtime.Runtime, error) {
		if f.systemd {
			return nil, fmt.Errorf("--systemd-cgroup is not supported: berth uses the cgroupfs driver")
		}
		log, err := newLogger(f)
		if err != nil {
			return nil, err
		}
		return runtime.New(f.root, log)
	}
	cmd.AddCommand(
		specCmd(), createCmd(open), startCmd(open), runCmd(open), stateCmd(open), killCmd(open),
		deleteCmd(open), listCmd(open), psCmd(open), execCmd(open),
		pauseCmd(open), resumeCmd(open), updateCmd(open), eventsCmd(open), featuresCmd(),
	)
	return cmd
}

func newLogger(f *runtimeFlags) (*slog.Logger, error) {
	var w io.Writer = os.Stderr
	if f.log != "" {
		file, err := os.OpenFile(f.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log %s: %w", f.log, err)
		}
		w = file
	}
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown --log-format %q: use text or json", f.logFormat)
}

type opener func() (*runtime.Runtime, error)

// logged wraps a verb so that its error also reaches --log, where runc
// callers such as containerd look for it.
func logged(open opener, fn func(ctx context.Context, r *runtime.Runtime, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		r, err := open()
		if err != nil {
			return err
		}
		err = fn(cmd.Context(), r, args)
		if err != nil {
			if _, ok := err.(ExitCode); !ok {
				r.Log.Error(err.Error())
			}
		}
		return err
	}
}

func specCmd() *cobra.Command {
	var bundle string
	c := &cobra.Command{
		Use:   "spec",
		Short: "write a default config.json into the bundle",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "config.json"
			if bundle != "" {
				path = bundle + "/config.json"
			}
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("file %s exists: remove it first", path)
			}
			data, err := json.MarshalIndent(runtime.DefaultSpec(), "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(data, '\n'), 0o644)
		},
	}
	c.Flags().StringVarP(&bundle, "bundle", "b", "", "bundle directory")
	c.Flags().Bool("rootless", false, "ignored")
	return c
}

func createFlags(c *cobra.Command, o *runtime.CreateOptions) {
	c.Flags().StringVarP(&o.Bundle, "bundle", "b", ".", "bundle directory")
	c.Flags().StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master")
	c.Flags().StringVar(&o.PidFile, "pid-file", "", "file to write the init's pid to")
	c.Flags().IntVar(&o.PreserveFDs, "preserve-fds", 0, "pass N extra fds (3..3+N-1) to the container")
	c.Flags().Bool("no-pivot", false, "ignored: berth always uses pivot_root")
	c.Flags().Bool("no-new-keyring", false, "ignored")
}

func createCmd(open opener) *cobra.Command {
	var o runtime.CreateOptions
	c := &cobra.Command{
		Use:   "create [flags] ID",
		Short: "create a container; its process waits for start",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			return r.Create(ctx, args[0], o)
		}),
	}
	createFlags(c, &o)
	return c
}

func startCmd(open opener) *cobra.Command {
	return &cobra.Command{
		Use:   "start ID",
		Short: "run the process of a created container",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			return r.Start(ctx, args[0])
		}),
	}
}

func runCmd(open opener) *cobra.Command {
	var o runtime.CreateOptions
	var detach bool
	c := &cobra.Command{
		Use:   "run [flags] ID",
		Short: "create and start a container, wait for it, delete it and exit with its code",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			if detach {
				if err := r.Create(ctx, args[0], o); err != nil {
					return err
				}
				return r.Start(ctx, args[0])
			}
			code, err := r.Run(ctx, args[0], o)
			if err != nil {
				return err
			}
			if code != 0 {
				return ExitCode(code)
			}
			return nil
		}),
	}
	createFlags(c, &o)
	c.Flags().BoolVarP(&detach, "detach", "d", false, "do not wait for the container")
	return c
}

func stateCmd(open opener) *cobra.Command {
	return &cobra.Command{
		Use:   "state ID",
		Short: "print the runtime-spec state of a container",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			st, err := r.State(ctx, args[0])
			if err != nil {
				return err
			}
			return printJSON(st)
		}),
	}
}

func printJSON(v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(data, '\n'))
	return err
}

// parseSignal accepts "KILL", "SIGKILL" and "9".
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func killCmd(open opener) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "kill [flags] ID [SIGNAL]",
		Short: "send a signal (default SIGTERM) to a container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				s, err := parseSignal(args[1])
				if err != nil {
					return err
				}
				sig = s
			}
			return r.Kill(ctx, args[0], sig, all)
		}),
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "signal every process in the container")
	return c
}

func deleteCmd(open opener) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "delete [flags] ID",
		Short: "delete a stopped container (or any, with --force)",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			return r.Delete(ctx, args[0], force)
		}),
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return c
}

func listCmd(open opener) *cobra.Command {
	var format string
	var quiet bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "list containers",
		Args:    cobra.NoArgs,
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			list, err := r.List(ctx)
			if err != nil {
				return err
			}
			if quiet {
				for _, c := range list {
					fmt.Println(c.ID)
				}
				return nil
			}
			if format == "json" {
				if list == nil {
					list = []runtime.ContainerInfo{}
				}
				return printJSON(list)
			}
			w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
			fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
			for _, c := range list {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", c.ID, c.Pid, c.Status, c.Bundle, c.Created, c.Owner)
			}
			return w.Flush()
		}),
	}
	c.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print IDs only")
	return c
}

func psCmd(open opener) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "ps [flags] ID [ps options]",
		Short: "list the processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			pids, err := r.Ps(ctx, args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				if pids == nil {
					pids = []int{}
				}
				return printJSON(pids)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			return psTable(pids, psArgs)
		}),
	}
	c.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return c
}

// psTable runs the host's ps and keeps the header and the container's rows,
// as runc does.
func psTable(pids []int, psArgs []string) error {
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		// No ps on the host: print what we know.
		fmt.Println("PID")
		for _, p := range pids {
			fmt.Println(p)
		}
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	header := strings.Fields(lines[0])
	col := -1
	for i, h := range header {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > col {
			if p, err := strconv.Atoi(f[col]); err == nil && in[p] {
				fmt.Println(l)
			}
		}
	}
	return nil
}

func execCmd(open opener) *cobra.Command {
	var o runtime.ExecOptions
	var user, processFile string
	c := &cobra.Command{
		Use:   "exec [flags] ID COMMAND [ARG...]",
		Short: "run a process in a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			o.Args = args[1:]
			if processFile != "" {
				data, err := os.ReadFile(processFile)
				if err != nil {
					return fmt.Errorf("read --process: %w", err)
				}
				var p specs.Process
				if err := json.Unmarshal(data, &p); err != nil {
					return fmt.Errorf("parse --process %s: %w", processFile, err)
				}
				o.Process = &p
			} else if len(o.Args) == 0 {
				return fmt.Errorf("exec needs a command")
			}
			if user != "" {
				u, err := parseUser(user)
				if err != nil {
					return err
				}
				o.User = u
			}
			code, err := r.Exec(ctx, args[0], o)
			if err != nil {
				return err
			}
			if code != 0 {
				return ExitCode(code)
			}
			return nil
		}),
	}
	fl := c.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-TTY")
	fl.StringVar(&o.Cwd, "cwd", "", "working directory in the container")
	fl.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable")
	fl.StringVarP(&user, "user", "u", "", "UID[:GID]")
	fl.StringVarP(&processFile, "process", "p", "", "path to a process.json")
	fl.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master")
	fl.StringVar(&o.PidFile, "pid-file", "", "file to write the process's pid to")
	fl.BoolVarP(&o.Detach, "detach", "d", false, "do not wait for the process")
	fl.IntVar(&o.PreserveFDs, "preserve-fds", 0, "pass N extra fds to the process")
	return c
}

func parseUser(s string) (*specs.User, error) {
	uidS, gidS, _ := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(uidS, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--user %q: want UID[:GID]", s)
	}
	u := &specs.User{UID: uint32(uid)}
	if gidS != "" {
		gid, err := strconv.ParseUint(gidS, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: want UID[:GID]", s)
		}
		u.GID = uint32(gid)
	}
	return u, nil
}

func pauseCmd(open opener) *cobra.Command {
	return &cobra.Command{
		Use:   "pause ID",
		Short: "freeze every process of a container",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			return r.Pause(ctx, args[0])
		}),
	}
}

func resumeCmd(open opener) *cobra.Command {
	return &cobra.Command{
		Use:   "resume ID",
		Short: "thaw a paused container",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			return r.Resume(ctx, args[0])
		}),
	}
}

func updateCmd(open opener) *cobra.Command {
	var resources string
	var memory, memSwap, pids, cpuQuota int64
	var cpuShares, cpuPeriod uint64
	var cpus string
	c := &cobra.Command{
		Use:   "update [flags] ID",
		Short: "change the resource limits of a container",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			res := &specs.LinuxResources{}
			if resources != "" {
				var data []byte
				var err error
				if resources == "-" {
					data, err = io.ReadAll(os.Stdin)
				} else {
					data, err = os.ReadFile(resources)
				}
				if err != nil {
					return fmt.Errorf("read --resources: %w", err)
				}
				if err := json.Unmarshal(data, res); err != nil {
					return fmt.Errorf("parse --resources: %w", err)
				}
			}
			if memory != 0 || memSwap != 0 {
				if res.Memory == nil {
					res.Memory = &specs.LinuxMemory{}
				}
				if memory != 0 {
					res.Memory.Limit = &memory
				}
				if memSwap != 0 {
					res.Memory.Swap = &memSwap
				}
			}
			if cpuShares != 0 || cpuQuota != 0 || cpuPeriod != 0 || cpus != "" {
				if res.CPU == nil {
					res.CPU = &specs.LinuxCPU{}
				}
				if cpuShares != 0 {
					res.CPU.Shares = &cpuShares
				}
				if cpuQuota != 0 {
					res.CPU.Quota = &cpuQuota
				}
				if cpuPeriod != 0 {
					res.CPU.Period = &cpuPeriod
				}
				res.CPU.Cpus = cpus
			}
			if pids != 0 {
				res.Pids = &specs.LinuxPids{Limit: &pids}
			}
			return r.Update(ctx, args[0], res)
		}),
	}
	f := c.Flags()
	f.StringVarP(&resources, "resources", "r", "", "a JSON file of linux.resources (- for stdin)")
	f.Int64Var(&memory, "memory", 0, "memory limit in bytes")
	f.Int64Var(&memSwap, "memory-swap", 0, "memory+swap limit in bytes")
	f.Int64Var(&pids, "pids-limit", 0, "maximum number of processes")
	f.Uint64Var(&cpuShares, "cpu-shares", 0, "CPU shares")
	f.Int64Var(&cpuQuota, "cpu-quota", 0, "CPU CFS quota in microseconds")
	f.Uint64Var(&cpuPeriod, "cpu-period", 0, "CPU CFS period in microseconds")
	f.StringVar(&cpus, "cpuset-cpus", "", "CPUs the container may use")
	return c
}

func eventsCmd(open opener) *cobra.Command {
	var stats bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "events [flags] ID",
		Short: "print resource usage of a container as JSON (with --stats once, else every --interval)",
		Args:  cobra.ExactArgs(1),
		RunE: logged(open, func(ctx context.Context, r *runtime.Runtime, args []string) error {
			for {
				st, err := r.Stats(ctx, args[0])
				if err != nil {
					return err
				}
				ev := map[string]any{"type": "stats", "id": args[0], "data": st}
				data, _ := json.Marshal(ev)
				fmt.Println(string(data))
				if stats {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		}),
	}
	c.Flags().BoolVar(&stats, "stats", false, "print one sample and exit")
	c.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between samples")
	return c
}

func featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print what this runtime supports (runtime-spec features.json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printJSON(runtime.Features())
		},
	}
}
