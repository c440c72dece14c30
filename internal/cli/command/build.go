package command

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berth-dev/berth/internal/cli/client"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/go-units"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/builder/buildcontext"
	"github.com/berth-dev/berth/internal/image"
)

type buildOptions struct {
	secrets                 []string // --secret id=ID[,src=FILE|env=VAR]
	tags, labels, buildArgs []string
	file, target, iidfile   string
	platform, network       string
	noCache, pull, quiet    bool
	rm, forceRm             bool
	// RUN containers' limits.
	memory, memorySwap, shmSize    string
	cpuShares, cpuQuota, cpuPeriod int64
	cpusetCpus, cpusetMems         string
	addHosts                       []string
}

// buildCommand is `berth build` (docker's classic builder protocol): the
// context directory is sent as a tar with .dockerignore applied, the
// daemon's JSON stream is shown as plain lines.
func (c *CLI) buildCommand() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | URL | -",
		Short: "Build an image from a Dockerfile",
		Args:  c.exactArgs(1),
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.tags, "tag", "t", nil, `Name and optionally a tag in the "name:tag" format`)
	f.StringVarP(&o.file, "file", "f", "", `Name of the Dockerfile (Default is "PATH/Dockerfile")`)
	f.StringVar(&o.target, "target", "", "Set the target build stage to build.")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "Set build-time variables")
	f.StringArrayVar(&o.labels, "label", nil, "Set metadata for an image")
	f.BoolVar(&o.noCache, "no-cache", false, "Do not use cache when building the image")
	f.BoolVar(&o.pull, "pull", false, "Always attempt to pull a newer version of the image")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	f.StringVar(&o.iidfile, "iidfile", "", "Write the image ID to the file")
	f.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	f.StringVar(&o.network, "network", "default", "Set the networking mode for the RUN instructions during build")
	f.BoolVar(&o.rm, "rm", true, "Remove intermediate containers after a successful build")
	f.BoolVar(&o.forceRm, "force-rm", false, "Always remove intermediate containers")
	f.StringArrayVar(&o.addHosts, "add-host", nil, `Add a custom host-to-IP mapping ("host:ip")`)
	f.StringVarP(&o.memory, "memory", "m", "", "Memory limit")
	f.StringVar(&o.memorySwap, "memory-swap", "", `Swap limit equal to memory plus swap: -1 to enable unlimited swap`)
	f.StringVar(&o.shmSize, "shm-size", "", `Size of "/dev/shm"`)
	f.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit the CPU CFS (Completely Fair Scheduler) quota")
	f.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit the CPU CFS (Completely Fair Scheduler) period")
	f.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	f.StringArrayVar(&o.secrets, "secret", nil, `Secret to expose to RUN --mount=type=secret ("id=mysecret[,src=/local/secret|env=VAR]")`)
	cmd.RunE = c.action(func(ctx context.Context, args []string) error {
		return c.build(ctx, args[0], o)
	})
	return cmd
}

func (c *CLI) build(ctx context.Context, contextArg string, o buildOptions) error {
	opts := client.ImageBuildOptions{
		Tags: o.tags, Target: o.target, NoCache: o.noCache, PullParent: o.pull, SuppressOutput: o.quiet,
		NetworkMode: o.network, Remove: o.rm, ForceRemove: o.forceRm,
		BuildArgs: map[string]*string{}, Labels: map[string]string{},
	}
	opts.CPUShares, opts.CPUQuota, opts.CPUPeriod = o.cpuShares, o.cpuQuota, o.cpuPeriod
	opts.CPUSetCPUs, opts.CPUSetMems = o.cpusetCpus, o.cpusetMems
	opts.ExtraHosts = o.addHosts
	for flag, v := range map[string]struct {
		s   string
		dst *int64
	}{"memory": {o.memory, &opts.Memory}, "memory-swap": {o.memorySwap, &opts.MemorySwap}, "shm-size": {o.shmSize, &opts.ShmSize}} {
		switch {
		case v.s == "":
		case v.s == "-1" && flag == "memory-swap":
			*v.dst = -1
		default:
			n, err := units.RAMInBytes(v.s)
			if err != nil {
				return &StatusError{Code: 125, Message: fmt.Sprintf("invalid argument %q for \"--%s\" flag: %v", v.s, flag, err)}
			}
			*v.dst = n
		}
	}
	for _, a := range o.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			// docker: a bare name takes its value from the environment.
			if v = c.Getenv(k); v == "" {
				continue
			}
		}
		opts.BuildArgs[k] = &v
	}
	if _, ok := opts.BuildArgs["SOURCE_DATE_EPOCH"]; !ok {
		if v := c.Getenv("SOURCE_DATE_EPOCH"); v != "" {
			opts.BuildArgs["SOURCE_DATE_EPOCH"] = &v
		}
	}
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		opts.Labels[k] = v
	}
	if o.platform != "" {
		p, err := image.ParsePlatform(o.platform)
		if err != nil {
			return &StatusError{Code: 1, Message: err.Error()}
		}
		opts.Platforms = append(opts.Platforms, ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
	}
	var body io.Reader
	switch {
	case contextArg == "-":
		if o.file == "-" {
			return &StatusError{Code: 1, Message: "invalid argument: can't use stdin for both build context and dockerfile"}
		}
		body = c.In
	case strings.Contains(contextArg, "://") || strings.HasPrefix(contextArg, "git@"):
		return &StatusError{Code: 1, Message: "unable to prepare context: remote build contexts are not supported by berth"}
	default:
		r, df, err := c.contextTar(ctx, contextArg, o.file)
		if err != nil {
			return &StatusError{Code: 1, Message: "unable to prepare context: " + err.Error()}
		}
		defer r.Close()
		body, opts.Dockerfile = r, df
	}
	if opts.Dockerfile == "" && o.file != "" && contextArg == "-" {
		opts.Dockerfile = o.file
	}
	api, err := c.Client()
	if err != nil {
		return err
	}
	if len(o.secrets) > 0 {
		// Secrets ride in a header of their own, on this request only.
		h, err := secretsHeader(o.secrets)
		if err != nil {
			return &StatusError{Code: 1, Message: err.Error()}
		}
		if api, err = client.NewWithHeaders(c.Host(), map[string]string{buildSecretsHeader: h}); err != nil {
			return err
		}
	}
	sent := &countingReader{ReadCloser: io.NopCloser(body)}
	res, err := api.ImageBuild(ctx, sent, opts)
	if err != nil {
		return c.explain(err)
	}
	if !o.quiet && contextArg != "-" {
		// The daemon reads the whole context before it answers.
		fmt.Fprintf(c.Out, "Sending build context to Docker daemon %8v\n", units.HumanSize(float64(sent.n.Load())))
	}
	defer res.Body.Close()
	id, err := c.showBuild(res.Body, o.quiet)
	if err != nil {
		return err
	}
	if o.iidfile != "" && id != "" {
		if err := os.WriteFile(o.iidfile, []byte(id), 0o666); err != nil {
			return fmt.Errorf("failed to write image ID to file: %w", err)
		}
	}
	return nil
}

// contextTar streams dir as a tar (with .dockerignore applied) and tells
// the Dockerfile's name in it: its path inside the context, or a random
// name under which a Dockerfile from elsewhere (or stdin) is added.
func (c *CLI) contextTar(ctx context.Context, dir, file string) (io.ReadCloser, string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("path %q not found", dir)
	}
	if !fi.IsDir() {
		return nil, "", fmt.Errorf("context must be a directory: %s", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	extra := map[string][]byte{}
	dockerfile := ""
	switch {
	case file == "-":
		data, err := io.ReadAll(c.In)
		if err != nil {
			return nil, "", err
		}
		dockerfile = randomDockerfileName()
		extra[dockerfile] = data
	case file != "":
		p := file
		if !filepath.IsAbs(p) {
			// docker: -f is relative to the current directory.
			if p, err = filepath.Abs(p); err != nil {
				return nil, "", err
			}
		}
		if rel, err := filepath.Rel(abs, p); err == nil && filepath.IsLocal(rel) {
			dockerfile = filepath.ToSlash(rel)
		} else {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, "", fmt.Errorf("unable to evaluate symlinks in Dockerfile path: %w", err)
			}
			dockerfile = randomDockerfileName()
			extra[dockerfile] = data
		}
	}
	patterns, err := buildcontext.ReadIgnore(abs)
	if err != nil {
		return nil, "", err
	}
	keep := dockerfile
	if keep == "" {
		keep = buildcontext.DefaultDockerfile
	}
	m, err := buildcontext.NewMatcher(patterns, keep)
	if err != nil {
		return nil, "", err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(buildcontext.Tar(ctx, abs, m, pw, extra))
	}()
	return pr, dockerfile, nil
}

func randomDockerfileName() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return ".dockerfile." + hex.EncodeToString(b)
}

// showBuild prints the build stream and returns the image ID from its aux
// line. An error line ends the build with docker's status: a failed RUN's
// exit code, else 1.
func (c *CLI) showBuild(r io.Reader, quiet bool) (string, error) {
	dec := json.NewDecoder(r)
	id := ""
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return id, nil
		} else if err != nil {
			return id, fmt.Errorf("read build output: %w", err)
		}
		if m.Error != nil {
			code := m.Error.Code
			if code == 0 {
				code = 1
			}
			return id, &StatusError{Code: code, Message: m.Error.Message}
		}
		if m.Aux != nil {
			var res buildtypes.Result
			if json.Unmarshal(*m.Aux, &res) == nil {
				id = res.ID
			}
			continue
		}
		switch {
		case m.Stream != "":
			fmt.Fprint(c.Out, m.Stream)
		case m.Status != "" && !quiet:
			if m.ID != "" {
				fmt.Fprintf(c.Out, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintln(c.Out, m.Status)
			}
		}
	}
}

// builderCommand is `berth builder` with its prune verb.
func (c *CLI) builderCommand() *cobra.Command {
	g := c.groupCommand("builder", "Manage builds")
	prune := c.pruneCommand("build cache", func() string { return "WARNING! This will remove all dangling build cache." }, nil,
		func(ctx context.Context, api *client.Client, f client.Filters) (string, uint64, error) {
			res, err := api.BuildCachePrune(ctx, client.BuildCachePruneOptions{Filters: f})
			if err != nil || len(res.Report.CachesDeleted) == 0 {
				return "", 0, err
			}
			return "Deleted build cache objects:\n" + strings.Join(res.Report.CachesDeleted, "\n") + "\n", res.Report.SpaceReclaimed, nil
		})
	g.AddCommand(prune)
	return g
}

// buildSecretsHeader is the daemon's header for build secrets
// (internal/api.BuildSecretsHeader; the CLI does not import the server).
const buildSecretsHeader = "X-Berth-Build-Secrets"

// secretsHeader reads the --secret values: id=ID with src=/source= a file
// or env= a variable (neither: the variable named like the id, else a file
// named so), as buildx does; the header is base64url JSON of id → bytes.
func secretsHeader(specs []string) (string, error) {
	secrets := map[string][]byte{}
	for _, spec := range specs {
		var id, src, env string
		for _, kv := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch strings.ToLower(k) {
			case "id":
				id = v
			case "src", "source":
				src = v
			case "env":
				env = v
			case "type":
			default:
				return "", fmt.Errorf("invalid secret %q: unexpected key %q", spec, k)
			}
		}
		if id == "" {
			return "", fmt.Errorf("invalid secret %q: id is required", spec)
		}
		switch {
		case env != "":
			v, ok := os.LookupEnv(env)
			if !ok {
				return "", fmt.Errorf("secret %s: environment variable %s is not set", id, env)
			}
			secrets[id] = []byte(v)
		case src != "":
			data, err := os.ReadFile(src)
			if err != nil {
				return "", fmt.Errorf("secret %s: %w", id, err)
			}
			secrets[id] = data
		default:
			if v, ok := os.LookupEnv(id); ok {
				secrets[id] = []byte(v)
			} else if data, err := os.ReadFile(id); err == nil {
				secrets[id] = data
			} else {
				return "", fmt.Errorf("secret %s: no src, env or variable of that name", id)
			}
		}
	}
	raw, err := json.Marshal(secrets)
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(raw), nil
}
