package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/cli/client"
	"github.com/berth-dev/berth/internal/cli/runconfig"
)

// docker's exit statuses for `run` failures that are not the container's.
const (
	exitDaemon   = 125 // the daemon or the CLI failed
	exitNoInvoke = 126 // the command cannot be invoked
	exitNotFound = 127 // the command was not found
)

// createFlags adds the flags `run` and `create` share.
func createFlags(f *pflag.FlagSet, o *runconfig.Options, entry *string, pids *int64, init *bool) {
	f.SetInterspersed(false) // flags after IMAGE belong to the command
	f.StringVar(&o.Name, "name", "", "Assign a name to the container")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.EnvFiles, "env-file", nil, "Read in a file of environment variables")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "Bind mount a volume")
	f.StringVarP(&o.Workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.User, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVar(entry, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	f.StringArrayVarP(&o.Labels, "label", "l", nil, "Set meta data on a container")
	f.StringVarP(&o.Memory, "memory", "m", "", "Memory limit")
	f.StringVar(&o.CPUs, "cpus", "", "Number of CPUs")
	f.Int64Var(pids, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	f.StringArrayVar(&o.CapAdd, "cap-add", nil, "Add Linux capabilities")
	f.StringArrayVar(&o.CapDrop, "cap-drop", nil, "Drop Linux capabilities")
	f.BoolVar(&o.ReadOnly, "read-only", false, "Mount the container's root filesystem as read only")
	f.StringArrayVar(&o.Tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	f.StringArrayVar(&o.Mounts, "mount", nil, "Attach a filesystem mount to the container")
	f.StringArrayVar(&o.VolumesFrom, "volumes-from", nil, "Mount volumes from the specified container(s)")
	f.StringVar(&o.VolumeDriver, "volume-driver", "", "Optional volume driver for the container")
	f.StringVar(&o.Restart, "restart", "no", "Restart policy to apply when a container exits")
	f.BoolVar(init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	f.BoolVar(&o.Rm, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")
	f.StringArrayVar(&o.Networks, "network", nil, "Connect a container to a network")
	f.StringArrayVar(&o.Aliases, "network-alias", nil, "Add network-scoped alias for the container")
	f.StringVar(&o.IP, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	f.StringArrayVar(&o.AddHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	f.StringArrayVar(&o.DNS, "dns", nil, "Set custom DNS servers")
	f.StringArrayVar(&o.DNSSearch, "dns-search", nil, "Set custom DNS search domains")
	f.StringArrayVar(&o.DNSOptions, "dns-option", nil, "Set DNS options")
	f.StringVar(&o.Domainname, "domainname", "", "Container NIS domain name")
	f.StringVar(&o.MacAddress, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	f.BoolVar(&o.Privileged, "privileged", false, "Give extended privileges to this container")
	f.StringVarP(&o.Hostname, "hostname", "h", "", "Container host name")
	f.StringVar(&o.StopSignal, "stop-signal", "", "Signal to stop the container")
	f.BoolVarP(&o.Tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.BoolVarP(&o.Stdin, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.StringVar(&o.DetachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	f.StringArrayVarP(&o.Publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	f.BoolVarP(&o.PublishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	f.StringArrayVar(&o.Expose, "expose", nil, "Expose a port or a range of ports")
	f.StringVar(&o.Pull, "pull", "missing", `Pull image before running ("always", "missing", "never")`)
	f.StringArrayVarP(&o.Attach, "attach", "a", nil, "Attach to STDIN, STDOUT or STDERR")
	f.StringVar(&o.CIDFile, "cidfile", "", "Write the container ID to the file")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "Suppress the pull output")
	f.StringVar(&o.Platform, "platform", "", "Set platform if server is multi-platform capable")
	f.BoolVar(&o.SigProxy, "sig-proxy", true, "Proxy received signals to the process")
	f.Bool("help", false, "Print usage") // -h is --hostname, as in docker
	extraFlags(f, &o.Extra)
}

// finishFlags copies flags whose "was it given" matters into the options.
func finishFlags(f *pflag.FlagSet, o *runconfig.Options, entry string, pids int64, init bool) {
	if f.Changed("entrypoint") {
		o.SetEntrypoint(entry)
	}
	if f.Changed("pids-limit") {
		o.SetPidsLimit(pids)
	}
	if f.Changed("init") {
		o.SetInit(init)
	}
	if f.Changed("stop-timeout") {
		o.SetStopTimeout(o.StopTimeout)
	}
}

// containerConfigCommand is `run` or `create`: docker's container flags,
// then body with the options filled in.
func (c *CLI) containerConfigCommand(use, short string, detach bool, body func(ctx context.Context, o runconfig.Options, args []string) error) *cobra.Command {
	var (
		o     runconfig.Options
		entry string
		pids  int64
		init  bool
	)
	cmd := &cobra.Command{Use: use, Short: short, Args: c.minArgs(1), ValidArgsFunction: c.completeImageFirst}
	createFlags(cmd.Flags(), &o, &entry, &pids, &init)
	if detach {
		cmd.Flags().BoolVarP(&o.Detach, "detach", "d", false, "Run container in background and print container ID")
	}
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		finishFlags(cmd.Flags(), &o, entry, pids, init)
		return body(ctx, o, args)
	})
	return cmd
}

func (c *CLI) runCommand() *cobra.Command {
	return c.containerConfigCommand("run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image", true, c.run)
}

func (c *CLI) createCommand() *cobra.Command {
	return c.containerConfigCommand("create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", false,
		func(ctx context.Context, o runconfig.Options, args []string) error {
			o.Detach = true
			id, err := c.create(ctx, o, args, false)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, id)
			return nil
		})
}

// create makes the container. For `run` its errors carry docker's status
// 125 and the "berth: " prefix docker puts on run errors; `create` reports
// a daemon's refusal plainly with status 1, as docker does.
func (c *CLI) create(ctx context.Context, o runconfig.Options, args []string, forRun bool) (string, error) {
	cfg, err := o.Build(args)
	if err != nil {
		return "", &StatusError{Code: exitDaemon, Message: "berth: " + err.Error() + ". See 'berth run --help'."}
	}
	api, err := c.Client()
	if err != nil {
		return "", status(exitDaemon, err)
	}
	pullOut := c.Err
	if o.Quiet {
		pullOut = io.Discard
	}
	var platform *ocispec.Platform
	if o.Platform != "" {
		osName, arch, _ := strings.Cut(o.Platform, "/")
		arch, variant, _ := strings.Cut(arch, "/")
		platform = &ocispec.Platform{OS: osName, Architecture: arch, Variant: variant}
	}
	if o.CIDFile != "" {
		// docker refuses an existing file before creating anything.
		f, err := os.OpenFile(o.CIDFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return "", createError(fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", o.CIDFile), forRun)
			}
			return "", createError(fmt.Errorf("failed to create the container ID file: %w", err), forRun)
		}
		f.Close()
	}
	id, err := c.createContainer(ctx, api, o, cfg, args, forRun, pullOut, platform)
	if o.CIDFile != "" {
		if err != nil {
			os.Remove(o.CIDFile)
		} else if werr := os.WriteFile(o.CIDFile, []byte(id), 0o644); werr != nil {
			return id, createError(fmt.Errorf("failed to write the container ID to the file: %w", werr), forRun)
		}
	}
	return id, err
}

func (c *CLI) createContainer(ctx context.Context, api *client.Client, o runconfig.Options, cfg runconfig.Config, args []string, forRun bool, pullOut io.Writer, platform *ocispec.Platform) (string, error) {
	switch o.Pull {
	case "always":
		if err := c.pull(ctx, api, args[0], pullOut); err != nil {
			return "", createError(err, forRun)
		}
	case "missing", "never", "":
	default:
		return "", &StatusError{Code: exitDaemon, Message: fmt.Sprintf("berth: invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", o.Pull)}
	}
	opts := client.ContainerCreateOptions{Config: cfg.Config, HostConfig: cfg.HostConfig, NetworkingConfig: cfg.NetworkingConfig, Name: o.Name, Platform: platform}
	res, err := api.ContainerCreate(ctx, opts)
	missing := func(err error) bool {
		return cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "image")
	}
	// A missing image is pulled (progress on stderr) and the create tried
	// again, as docker's --pull=missing does.
	if err != nil && missing(err) && o.Pull != "never" && c.canPull {
		fmt.Fprintf(pullOut, "Unable to find image '%s' locally\n", args[0])
		if perr := c.pull(ctx, api, args[0], pullOut); perr != nil {
			return "", createError(perr, forRun)
		}
		res, err = api.ContainerCreate(ctx, opts)
	}
	if err != nil {
		err = c.explain(err)
		if !isAPIError(err) {
			return "", status(exitDaemon, err)
		}
		msg := err.Error()
		if missing(err) {
			msg = fmt.Sprintf("Unable to find image '%s' locally", args[0])
			if c.canPull {
				msg += fmt.Sprintf("; pull it with `berth pull %s`", args[0])
			}
		}
		return "", createError(errors.New(msg), forRun)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(c.Err, "WARNING:", w)
	}
	return res.ID, nil
}

// createError is docker's form of a failed create: status 125 and a
// "berth: " prefix under `run`, status 1 under `create`.
func createError(err error, forRun bool) error {
	if !forRun {
		return &StatusError{Code: 1, Message: err.Error()}
	}
	return &StatusError{Code: exitDaemon, Message: "berth: " + err.Error()}
}

// isAPIError is true for an error the daemon answered with, false for
// failures before an answer (a rewritten connection error).
func isAPIError(err error) bool {
	return !strings.HasPrefix(err.Error(), "cannot connect to berth")
}

func (c *CLI) run(ctx context.Context, o runconfig.Options, args []string) error {
	if o.Tty && o.Stdin && !o.Detach && !isTerminal(c.In) {
		return &StatusError{Code: 1, Message: "the input device is not a TTY"}
	}
	if o.Tty {
		size := c.termSize()
		o.ConsoleSize = [2]uint{size.Height, size.Width}
	}
	id, err := c.create(ctx, o, args, true)
	if err != nil {
		return err
	}
	api, _ := c.Client()
	if o.Detach {
		// docker prints the ID before starting: a container whose start
		// failed still exists, and scripts may want to remove it.
		fmt.Fprintln(c.Out, id)
		if _, err := api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return startError(c.explain(err))
		}
		return nil
	}
	ao := attachOptions{tty: o.Tty, stdin: o.Stdin, removed: o.Rm, detachKeys: o.DetachKeys, noSigProxy: !o.SigProxy}
	if len(o.Attach) > 0 {
		ao.only = map[string]bool{}
		for _, s := range o.Attach {
			ao.only[strings.ToLower(s)] = true
		}
		ao.stdin = ao.stdin && ao.only["stdin"]
	}
	return c.attachStartWait(ctx, api, id, ao)
}

// attachOptions say how a CLI attaches to a container it starts.
type attachOptions struct {
	tty, stdin, removed bool
	detachKeys          string
	running             bool            // attach to a running container: no start
	noSigProxy          bool            // keep the CLI's signals to itself (--sig-proxy=false)
	only                map[string]bool // -a: the streams attached; nil for all
}

// attachStartWait attaches to a container's streams, starts it, copies
// until it ends (or the detach keys are typed), and returns its exit
// status. Without a terminal, SIGINT/SIGTERM are passed on to the container
// as docker's --sig-proxy does; with one, the keys reach it as bytes.
func (c *CLI) attachStartWait(ctx context.Context, api *client.Client, id string, o attachOptions) error {
	keys, err := parseDetachKeys(o.detachKeys)
	if err != nil {
		return status(exitDaemon, err)
	}
	att, err := api.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdin: o.stdin,
		Stdout: o.only == nil || o.only["stdout"], Stderr: o.only == nil || o.only["stderr"]})
	if err != nil {
		return status(exitDaemon, c.explain(err))
	}
	defer att.Close()
	// Register the wait before starting so a fast exit is not missed.
	cond := container.WaitConditionNextExit
	if o.removed {
		cond = container.WaitConditionRemoved
	}
	wait := api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	if !o.running {
		if _, err := api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			if o.removed {
				// As docker's CLI: the daemon removes a --rm container
				// whose start failed; return once it is gone (and its
				// anonymous volumes with it), so the next command finds
				// nothing of it.
				select {
				case <-wait.Result:
				case <-wait.Error:
				case <-time.After(10 * time.Second):
				}
			}
			return startError(c.explain(err))
		}
	}
	if o.tty {
		defer c.terminal(func(h, w uint) {
			_, _ = api.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: h, Width: w})
		})()
	} else if !o.noSigProxy {
		defer c.proxySignals(ctx, api, id)()
	}
	detached, copied := c.stream(att.HijackedResponse, o.tty, o.stdin, keys)
	var code int64
	select {
	case <-detached:
		return nil // the container keeps running, as after docker's detach
	case res := <-wait.Result:
		code = res.StatusCode
		if res.Error != nil && res.Error.Message != "" {
			return status(exitDaemon, errors.New(res.Error.Message))
		}
	case err := <-wait.Error:
		return status(exitDaemon, c.explain(err))
	}
	<-copied
	if code != 0 {
		return &StatusError{Code: int(code)}
	}
	return nil
}

// stream copies a hijacked connection's output to the CLI's streams (raw
// for a terminal, demultiplexed otherwise) and, if stdin, the CLI's input
// to it. detached closes when the detach keys are typed; copied reports
// the end of the output.
func (c *CLI) stream(h client.HijackedResponse, tty, stdin bool, keys []byte) (detached chan struct{}, copied chan error) {
	detached = make(chan struct{})
	if stdin {
		go func() {
			in := &detachReader{in: c.In, keys: keys, detached: detached}
			_, _ = io.Copy(h.Conn, in)
			select {
			case <-detached:
			default:
				_ = h.CloseWrite() // EOF on stdin reaches the process
			}
		}()
	}
	copied = make(chan error, 1)
	go func() {
		var err error
		if tty {
			_, err = io.Copy(c.Out, h.Reader)
		} else {
			_, err = stdcopy.StdCopy(c.Out, c.Err, h.Reader)
		}
		copied <- err
	}()
	return detached, copied
}

// proxySignals passes the CLI's termination signals on to the container.
func (c *CLI) proxySignals(ctx context.Context, api *client.Client, id string) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		for s := range sigs {
			_, _ = api.ContainerKill(context.WithoutCancel(ctx), id, client.ContainerKillOptions{Signal: fmt.Sprint(int(s.(syscall.Signal)))})
		}
	}()
	// signal.Stop yields in a loop until the signal machinery is idle:
	// milliseconds at the end of every run if waited for.
	return func() {
		go func() {
			signal.Stop(sigs)
			close(sigs)
		}()
	}
}

// startError maps a failed start to docker's statuses: 127 when the
// command does not exist, 126 when it cannot be run, 125 otherwise.
func startError(err error) error {
	msg := err.Error()
	low := strings.ToLower(msg)
	code := exitDaemon
	switch {
	case strings.Contains(low, "executable file not found"), strings.Contains(low, "no such file or directory"):
		code = exitNotFound
	case strings.Contains(low, "permission denied"), strings.Contains(low, "is a directory"):
		code = exitNoInvoke
	}
	if !isAPIError(err) {
		return status(exitDaemon, err)
	}
	return &StatusError{Code: code, Message: "berth: " + msg}
}
