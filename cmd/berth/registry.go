package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/registry"
	"github.com/berth-dev/berth/internal/registry/auth"
)

type registryServeFlags struct {
	addr, root, htpasswd    string
	tokenRealm, tokenSvc    string
	tlsCert, tlsKey         string
	readOnly, deleteEnabled bool
	anonymousPull, metrics  bool
	shutdownTimeout         time.Duration
	logFormat, logLevel     string
}

// newRegistryCommand is `berth registry`: an OCI distribution-spec registry
// over berth's content store.
func newRegistryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "OCI distribution registry (serve, gc)",
	}
	cmd.AddCommand(newRegistryServeCommand(), newRegistryGCCommand())
	return cmd
}

func newRegistryServeCommand() *cobra.Command {
	f := &registryServeFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the OCI distribution API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRegistryServe(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:5000", "address to listen on")
	fl.StringVar(&f.root, "root", "/var/lib/berth", "state directory (content/ is shared with a daemon on the same root)")
	fl.StringVar(&f.htpasswd, "htpasswd", "", "htpasswd file with bcrypt hashes; enables authentication")
	fl.StringVar(&f.tokenRealm, "token-realm", "", "bearer token mode: URL of the token endpoint, served by this registry at that path (needs --htpasswd)")
	fl.StringVar(&f.tokenSvc, "token-service", "berth-registry", "service name in bearer tokens")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fl.BoolVar(&f.readOnly, "read-only", false, "refuse all writes")
	fl.BoolVar(&f.deleteEnabled, "delete-enabled", false, "allow deleting manifests, tags and blobs")
	fl.BoolVar(&f.anonymousPull, "anonymous-pull", false, "with authentication, let anyone pull")
	fl.BoolVar(&f.metrics, "metrics", true, "serve Prometheus metrics at /metrics")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 2*time.Minute, "how long shutdown waits for requests in flight")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func registryLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func runRegistryServe(ctx context.Context, f *registryServeFlags) error {
	log, err := registryLogger(f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.root, 0o711); err != nil {
		return err
	}
	opts := registry.Options{
		Root: f.root, ReadOnly: f.readOnly, DeleteEnabled: f.deleteEnabled,
		Metrics: f.metrics, Logger: log,
	}
	if f.tokenRealm != "" && f.htpasswd == "" {
		return errors.New("--token-realm needs --htpasswd: tokens are issued to its users")
	}
	if f.htpasswd != "" {
		users, err := auth.LoadHtpasswd(f.htpasswd)
		if err != nil {
			return err
		}
		opts.Auth = &auth.Basic{Realm: "berth-registry", Users: users, AnonymousPull: f.anonymousPull}
		if f.tokenRealm != "" {
			u, err := url.Parse(f.tokenRealm)
			if err != nil || u.Path == "" || u.Path == "/" || u.Host == "" {
				return fmt.Errorf("--token-realm %q: want an absolute URL with a path, e.g. http://127.0.0.1:5000/token", f.tokenRealm)
			}
			key, err := tokenKey(filepath.Join(f.root, "registry-token.key"))
			if err != nil {
				return err
			}
			tok := &auth.Token{Realm: f.tokenRealm, Service: f.tokenSvc, Users: users, Key: key, AnonymousPull: f.anonymousPull}
			opts.Auth, opts.TokenPath, opts.TokenHandler = tok, u.Path, tok
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal a second one kills at once, for when
		// finishing the uploads in flight takes longer than wanted.
		<-ctx.Done()
		stop()
	}()
	srv, err := registry.Open(ctx, opts)
	if err != nil {
		return err
	}
	serveErr := registry.Serve(ctx, srv, registry.ServeConfig{
		Addr: f.addr, TLSCert: f.tlsCert, TLSKey: f.tlsKey, ShutdownTimeout: f.shutdownTimeout,
	})
	return errors.Join(serveErr, srv.Close())
}

// tokenKey loads the token signing key, making one on first start so that
// tokens stay valid across restarts.
func tokenKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err == nil && len(key) >= 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("token key: %w", err)
	}
	key = make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	return key, nil
}

func newRegistryGCCommand() *cobra.Command {
	var root string
	var opts registry.GCOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs no manifest refers to (safe while the registry serves)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := registryLogger("text", "warn")
			if err != nil {
				return err
			}
			res, err := registry.GC(cmd.Context(), root, opts, log)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(res)
			}
			verb := "deleted"
			if opts.DryRun {
				verb = "would delete"
			}
			for _, d := range res.Deleted {
				fmt.Fprintln(out, d)
			}
			fmt.Fprintf(out, "%s %d blobs, %d bytes\n", verb, len(res.Deleted), res.Bytes)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&root, "root", "/var/lib/berth", "state directory of the registry")
	fl.DurationVar(&opts.Grace, "grace", registry.DefaultGCGrace, "keep unreferenced blobs touched more recently (uploads in flight)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "only list what would be deleted")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
