package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// ServeConfig is how Serve listens.
type ServeConfig struct {
	Addr string
	// TLSCert and TLSKey are PEM files; both empty means plain HTTP.
	TLSCert, TLSKey string
	// ShutdownTimeout bounds how long shutdown waits for requests in
	// flight (uploads included) to finish.
	ShutdownTimeout time.Duration
	// Ready, when set, is called with the listening address.
	Ready func(net.Addr)
}

// Serve serves s on cfg.Addr and on its admin socket until ctx is done,
// then stops accepting, lets requests in flight finish and returns.
func Serve(ctx context.Context, s *Server, cfg ServeConfig) error {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("registry: --tls-cert and --tls-key go together")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	sock := AdminSocket(s.opts.Root)
	os.Remove(sock) // stale from a crash; the database lock says we own root
	aln, err := net.Listen("unix", sock)
	if err != nil {
		ln.Close()
		return fmt.Errorf("registry: admin socket: %w", err)
	}
	defer os.Remove(sock)
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		aln.Close()
		return fmt.Errorf("registry: admin socket: %w", err)
	}

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Requests keep running through shutdown; Shutdown waits for them.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// Handshake failures and the like are the client's problem.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	admin := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	go func() { errc <- admin.Serve(aln) }()
	s.log.InfoContext(ctx, "registry serving", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "",
		"read_only", s.opts.ReadOnly, "delete", s.opts.DeleteEnabled)
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	s.log.InfoContext(ctx, "registry shutting down, finishing requests in flight", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	admin.Shutdown(sctx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("registry: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("registry: shutdown: %w", err)
	}
	return nil
}
