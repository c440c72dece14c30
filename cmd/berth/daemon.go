package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/api"
	"github.com/berth-dev/berth/internal/builder"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/memtrim"
	"github.com/berth-dev/berth/internal/supervisor"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

// daemonConfig holds the daemon's settings: docker's daemon.json keys, with
// command-line flags winning over the file.
type daemonConfig struct {
	Root               string            `json:"data-root"`
	ExecRoot           string            `json:"exec-root"`
	Hosts              []string          `json:"hosts"`
	LogLevel           string            `json:"log-level"`
	InsecureRegistries []string          `json:"insecure-registries"`
	RegistryMirrors    []string          `json:"registry-mirrors"`
	DefaultRuntime     string            `json:"default-runtime"`
	LogOpts            map[string]string `json:"log-opts"`
	LogDriver          string            `json:"log-driver"`
	CgroupParent       string            `json:"cgroup-parent"`
	// Networking, docker's keys: the default bridge's interface and its
	// address with prefix length (bip, "172.17.0.1/16"), ip-forward.
	Bridge    string `json:"bridge"`
	BIP       string `json:"bip"`
	IPForward *bool  `json:"ip-forward"`
	// NFTable is berth's own: the nftables table (family ip) the daemon
	// owns and rebuilds at start; two daemons on one host need two names.
	// Default "berth", or "berth_<bridge>" with a non-default bridge.
	NFTable string `json:"nft-table"`
}

func newDaemonCommand() *cobra.Command {
	var cfg daemonConfig
	var configFile string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Serve the Docker Engine API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := mergeConfigFile(cmd, configFile, &cfg); err != nil {
				return err
			}
			return runDaemon(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Root, "root", "/var/lib/berth", "root of persistent state")
	f.StringVar(&cfg.ExecRoot, "exec-root", "/run/berth", "root of runtime state")
	f.StringArrayVarP(&cfg.Hosts, "host", "H", []string{"unix:///run/berth/berth.sock"}, "address to listen on (unix://PATH or tcp://127.0.0.1:PORT)")
	f.StringVar(&configFile, "config", "/etc/berth/daemon.json", "daemon configuration file (docker's keys)")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry to reach over plain HTTP")
	f.StringSliceVar(&cfg.RegistryMirrors, "registry-mirror", nil, "Docker Hub mirror")
	f.StringVar(&cfg.DefaultRuntime, "runtime", "berth", "OCI runtime (only berth's own for now)")
	f.StringVarP(&cfg.Bridge, "bridge", "b", "", "interface of the default bridge network (default berth0)")
	f.StringVar(&cfg.BIP, "bip", "", "address and prefix of the default bridge (e.g. 172.17.0.1/16)")
	f.StringVar(&cfg.NFTable, "nft-table", "", "nftables table the daemon owns (default berth)")
	f.Bool("ip-forward", true, "enable net.ipv4.ip_forward (outbound traffic of containers)")
	return cmd
}

// mergeConfigFile fills from the file what no flag set. A missing file at
// the default path is fine; one named explicitly must exist.
func mergeConfigFile(cmd *cobra.Command, path string, cfg *daemonConfig) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !cmd.Flags().Changed("config") {
			return nil
		}
		return fmt.Errorf("daemon config: %w", err)
	}
	var file daemonConfig
	if err := json.Unmarshal(data, &file); err != nil {
		return fmt.Errorf("daemon config %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	set := func(flag string, dst *string, v string) {
		if !cmd.Flags().Changed(flag) && v != "" {
			*dst = v
		}
	}
	set("root", &cfg.Root, file.Root)
	set("exec-root", &cfg.ExecRoot, file.ExecRoot)
	set("log-level", &cfg.LogLevel, file.LogLevel)
	set("runtime", &cfg.DefaultRuntime, file.DefaultRuntime)
	if !cmd.Flags().Changed("host") && len(file.Hosts) > 0 {
		cfg.Hosts = file.Hosts
	}
	if !cmd.Flags().Changed("insecure-registry") {
		cfg.InsecureRegistries = file.InsecureRegistries
	}
	if !cmd.Flags().Changed("registry-mirror") {
		cfg.RegistryMirrors = file.RegistryMirrors
	}
	cfg.LogOpts, cfg.LogDriver, cfg.CgroupParent = file.LogOpts, file.LogDriver, file.CgroupParent
	set("bridge", &cfg.Bridge, file.Bridge)
	set("bip", &cfg.BIP, file.BIP)
	set("nft-table", &cfg.NFTable, file.NFTable)
	if cmd.Flags().Changed("ip-forward") {
		v, _ := cmd.Flags().GetBool("ip-forward")
		cfg.IPForward = &v
	} else {
		cfg.IPForward = file.IPForward
	}
	return nil
}

func newDaemonLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, errdefs.ErrInvalidArgument)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// imageUsage lets the image service ask the engine, which is made after it.
type imageUsage struct{ eng *engine.Engine }

func (u *imageUsage) ImageUsers(ctx context.Context, id string) ([]string, error) {
	if u.eng == nil {
		return nil, nil
	}
	return u.eng.ImageUsers(ctx, id)
}

func runDaemon(ctx context.Context, cfg daemonConfig) error {
	log, err := newDaemonLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	if cfg.DefaultRuntime != "" && cfg.DefaultRuntime != "berth" {
		return fmt.Errorf("runtime %q: only berth's own runtime is supported yet: %w", cfg.DefaultRuntime, errdefs.ErrNotImplemented)
	}
	if cfg.LogDriver != "" && cfg.LogDriver != "json-file" {
		return fmt.Errorf("log driver %q: only json-file is supported: %w", cfg.LogDriver, errdefs.ErrNotImplemented)
	}
	for _, d := range []*string{&cfg.Root, &cfg.ExecRoot} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return err
		}
		*d = abs
		if err := os.MkdirAll(abs, 0o711); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	usage := &imageUsage{}
	images, err := image.Open(ctx, cfg.Root, image.Options{InUse: usage, Logger: log})
	if err != nil {
		return err
	}
	defer images.Close()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find berth executable: %w", err)
	}
	nm, err := openNetwork(ctx, cfg, log)
	if err != nil {
		return err
	}
	if nm != nil {
		defer nm.Close()
	}
	maxSize, maxFiles := int64(0), 1
	if v := cfg.LogOpts["max-size"]; v != "" {
		if maxSize, err = parseByteSize(v); err != nil {
			return fmt.Errorf("log-opts max-size %q: %w", v, errdefs.ErrInvalidArgument)
		}
	}
	if v := cfg.LogOpts["max-file"]; v != "" {
		if maxFiles, err = strconv.Atoi(v); err != nil || maxFiles < 1 {
			return fmt.Errorf("log-opts max-file %q: %w", v, errdefs.ErrInvalidArgument)
		}
	}
	eng, err := engine.New(ctx, engine.Options{
		Root: cfg.Root, ExecRoot: cfg.ExecRoot, Images: images, Logger: log,
		LogMaxSize: maxSize, LogMaxFiles: maxFiles, CgroupParent: cfg.CgroupParent, InitBinary: exe, Network: nm,
		Supervisor: func(ctx context.Context) (engine.Supervisor, error) {
			return supervisor.Ensure(ctx, exe, cfg.ExecRoot, "--log-level", cfg.LogLevel)
		},
	})
	if err != nil {
		return err
	}
	usage.eng = eng
	ready := make(chan struct{})
	go eng.Run(ctx, ready)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("daemon: supervisor did not come up: %w", errdefs.ErrUnavailable)
	case <-ctx.Done():
		return nil
	}

	if err := eng.RemoveTransients(ctx); err != nil {
		log.Warn("builder: steps of interrupted builds", "err", err)
	}
	if err := builder.Recover(ctx, images, filepath.Join(cfg.Root, "builder")); err != nil {
		log.Warn("builder: leftovers of interrupted builds", "err", err)
	}
	handler := api.New(eng, images, api.Info{
		Version: version, Root: cfg.Root, ExecRoot: cfg.ExecRoot, DefaultRuntime: cfg.DefaultRuntime,
		InsecureRegistries: cfg.InsecureRegistries, Mirrors: cfg.RegistryMirrors,
	}, log)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		ln, err := listen(h)
		if err != nil {
			return err
		}
		log.Info("API listening", "addr", h)
		go func() { errc <- srv.Serve(ln) }()
	}
	go memtrim.Loop(ctx, log)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	// Containers keep running under the supervisor (live restore).
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	return nil
}

func listen(host string) (net.Listener, error) {
	proto, addr, ok := strings.Cut(host, "://")
	if !ok {
		return nil, fmt.Errorf("host %q: want unix://PATH or tcp://ADDR: %w", host, errdefs.ErrInvalidArgument)
	}
	switch proto {
	case "unix":
		if err := os.MkdirAll(filepath.Dir(addr), 0o711); err != nil {
			return nil, err
		}
		_ = os.Remove(addr) // a stale socket of a dead daemon
		ln, err := net.Listen("unix", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", host, err)
		}
		if err := os.Chmod(addr, 0o660); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	case "tcp":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", host, err)
		}
		return ln, nil
	}
	return nil, fmt.Errorf("host %q: unsupported protocol %q: %w", host, proto, errdefs.ErrInvalidArgument)
}

// parseByteSize reads docker's "10m"-style sizes (powers of 1024).
func parseByteSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func newSuperviseCommand() *cobra.Command {
	var execRoot, level string
	cmd := &cobra.Command{
		Use:    "supervise",
		Short:  "Hold containers for the daemon (started by `berth daemon`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newDaemonLogger(level)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
			srv, err := supervisor.NewServer(execRoot, log)
			if err != nil {
				return err
			}
			go memtrim.Loop(ctx, log)
			return srv.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&execRoot, "exec-root", "/run/berth", "root of runtime state")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(&cobra.Command{
		Use:    "reap -- COMMAND [ARG...]",
		Short:  "Run COMMAND as the child of a minimal init (docker run --init)",
		Hidden: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if code := supervisor.Reap(args); code != 0 {
				return exitCodeError(code)
			}
			return nil
		},
	})
	return cmd
}
