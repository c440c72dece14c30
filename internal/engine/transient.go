package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/spec"
	"github.com/berth-dev/berth/internal/supervisor"
)

// TransientOptions describe a one-off container that is not a container
// record: the builder's RUN steps. The caller owns the root filesystem (an
// overlay snapshot it mounted at Spec.Rootfs) and removes it afterwards.
type TransientOptions struct {
	// ID names the container for the supervisor and the runtime; it must
	// not be a container's ID.
	ID   string
	Spec spec.Options
	// Output receives the process's stdout and stderr as they are logged.
	Output io.Writer
	// ExtraHosts are "name:ip" lines for /etc/hosts (docker's --add-host).
	ExtraHosts []string
}

// transientPoll is how often RunTransient looks for new output and the
// exit file; a build step usually runs for tens of milliseconds at least.
const transientPoll = 5 * time.Millisecond

// RunTransient runs a transient container to its end through the
// supervisor, as every container runs, and returns its exit code. Its
// bundle, log and exit file live in a directory of their own under the
// exec-root's bundles and are removed when it returns. A cancelled ctx
// kills the process.
func (e *Engine) RunTransient(ctx context.Context, o TransientOptions) (int, error) {
	sup, err := e.supervisor(ctx)
	if err != nil {
		return -1, err
	}
	dir := e.bundlePath(o.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return -1, fmt.Errorf("bundle: %w", err)
	}
	defer os.RemoveAll(dir)
	so := o.Spec
	so.CgroupsPath = filepath.Join(e.opts.CgroupParent, o.ID)
	if so.Hostname == "" {
		so.Hostname = o.ID[:min(12, len(o.ID))]
	}
	resolv := []byte("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		resolv = b
	}
	hosts := hostsContent
	for _, h := range o.ExtraHosts {
		if name, ip, ok := strings.Cut(h, ":"); ok {
			hosts += ip + "\t" + name + "\n"
		}
	}
	for name, data := range map[string][]byte{
		"hostname": []byte(so.Hostname + "\n"), "hosts": []byte(hosts), "resolv.conf": resolv,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return -1, fmt.Errorf("write %s: %w", name, err)
		}
	}
	so.HostsPath, so.HostnamePath, so.ResolvConfPath = filepath.Join(dir, "hosts"), filepath.Join(dir, "hostname"), filepath.Join(dir, "resolv.conf")
	s, err := spec.Build(so)
	if err != nil {
		return -1, err
	}
	if err := writeSpec(dir, s); err != nil {
		return -1, err
	}
	logPath, exitPath := filepath.Join(dir, "output.log"), filepath.Join(dir, "exit.json")
	pid, err := sup.Create(ctx, o.ID, supervisor.CreateRequest{Bundle: dir, LogPath: logPath, ExitPath: exitPath, CgroupsPath: s.Linux.CgroupsPath})
	if err != nil {
		return -1, err
	}
	kill := func() {
		_ = sup.Delete(context.WithoutCancel(ctx), o.ID)
	}
	if so.NetworkMode != spec.NetworkHost {
		if err := loopbackUp(pid); err != nil {
			kill()
			return -1, err
		}
	}
	if err := sup.Start(ctx, o.ID); err != nil {
		kill()
		return -1, err
	}
	var offset int64
	relay := func() {
		offset, _, _ = readEntries(logPath, offset, func(le LogEntry) {
			if o.Output != nil {
				_, _ = io.WriteString(o.Output, le.Log)
			}
		})
	}
	t := time.NewTicker(transientPoll)
	defer t.Stop()
	for {
		st, err := readExit(exitPath)
		if err == nil {
			relay()
			return st.ExitCode, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			kill()
			return -1, err
		}
		relay()
		select {
		case <-ctx.Done():
			kill()
			return -1, ctx.Err()
		case <-t.C:
		}
	}
}

// RemoveTransients ends the transient containers a previous daemon left
// running (a build interrupted by a crash): containers the supervisor has
// that are no container record and whose bundle is a transient one. Call
// it before anything starts new transient containers.
func (e *Engine) RemoveTransients(ctx context.Context) error {
	sup, err := e.supervisor(ctx)
	if err != nil {
		return err
	}
	list, err := sup.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		e.mu.Lock()
		_, known := e.byID[c.ID]
		e.mu.Unlock()
		if known {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.bundlePath(c.ID), "output.log")); err != nil {
			continue
		}
		if err := sup.Delete(ctx, c.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove transient container %s: %w", c.ID, err))
			continue
		}
		_ = os.RemoveAll(e.bundlePath(c.ID))
	}
	return errors.Join(errs...)
}
