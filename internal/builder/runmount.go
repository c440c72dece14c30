package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/snapshot"
)

// runNetwork is a RUN's network: its --network flag, else the build's.
func (bd *build) runNetwork(c *instructions.RunCommand) string {
	switch instructions.GetNetwork(c) {
	case instructions.NetworkHost:
		return "host"
	case instructions.NetworkNone:
		return ""
	}
	return bd.opts.NetworkMode
}

// runMount is one RUN --mount made ready for the container.
type runMount struct {
	spec   specs.Mount
	target string // absolute in the image
	unlock func() // a locked cache mount's lock, released after the RUN
}

// lockDir takes an exclusive flock on dir's lock file, waiting for other
// builds (in this daemon or not) until ctx ends.
func lockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock cache mount: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runMounts prepares a RUN's --mount flags: bind (read-only, or writable
// through an overlay whose changes are dropped), cache (a directory kept
// under the builder's cache-mount directory across builds, keyed by its id)
// and tmpfs. It returns them and the part of the step's cache key they
// decide: a bind's content (or its stage's key), never a cache's.
func (bd *build) runMounts(ctx context.Context, s *stage, c *instructions.RunCommand, workdir string) (out []runMount, key string, err error) {
	var locks []func()
	defer func() {
		if err != nil {
			for _, unlock := range locks {
				unlock()
			}
		}
	}()
	ms := instructions.GetMounts(c)
	if len(ms) == 0 {
		return nil, "", nil
	}
	h := sha256.New()
	for _, m := range ms {
		switch m.Type {
		case instructions.MountTypeBind, instructions.MountTypeCache, instructions.MountTypeTmpfs, instructions.MountTypeSecret:
		default:
			return nil, "", fmt.Errorf("RUN --mount=type=%s is not supported by this builder (no BuildKit session): %w", m.Type, errdefs.ErrNotImplemented)
		}
		target := m.Target
		if target == "" && m.Type == instructions.MountTypeSecret {
			target = "/run/secrets/" + secretID(m)
		}
		if target == "" {
			return nil, "", fmt.Errorf("RUN --mount: target is required: %w", errdefs.ErrInvalidArgument)
		}
		if !path.IsAbs(target) {
			target = path.Join(orRoot(workdir), target)
		}
		desc, _ := json.Marshal(m)
		h.Write(desc)
		rm := runMount{target: target, spec: specs.Mount{Destination: target}}
		switch m.Type {
		case instructions.MountTypeBind:
			root, keyBase := bd.ctxDir, "context"
			if m.From != "" {
				var err error
				if root, keyBase, err = bd.fromRoot(ctx, s, m.From); err != nil {
					return nil, "", err
				}
			}
			src, err := securejoin.SecureJoin(root, path.Clean("/"+m.Source))
			if err != nil {
				return nil, "", err
			}
			fi, err := os.Stat(src)
			if err != nil {
				return nil, "", fmt.Errorf("RUN --mount=type=bind: source %q not found: %w", m.Source, errdefs.ErrInvalidArgument)
			}
			fmt.Fprintf(h, "%s\x00", keyBase)
			if m.From == "" {
				if err := hashSource(h, source{path: src, isDir: fi.IsDir()}, false, nil); err != nil {
					return nil, "", err
				}
			}
			if !m.ReadOnly && fi.IsDir() {
				if src, err = bd.scratchOverlay(src); err != nil {
					return nil, "", err
				}
			}
			rm.spec.Type, rm.spec.Source = "bind", src
			rm.spec.Options = []string{"rbind", "ro"}
			if !m.ReadOnly {
				rm.spec.Options = []string{"rbind", "rw"}
			}
		case instructions.MountTypeCache:
			dir, err := bd.cacheMountDir(m)
			if err != nil {
				return nil, "", err
			}
			if m.CacheSharing == instructions.MountSharingLocked || m.CacheSharing == instructions.MountSharingPrivate {
				// One RUN at a time uses it (private is served as locked:
				// a waiting step gets the same directory, not a new one).
				if rm.unlock, err = lockDir(ctx, dir); err != nil {
					return nil, "", err
				}
				locks = append(locks, rm.unlock)
			}
			rm.spec.Type, rm.spec.Source, rm.spec.Options = "bind", dir, []string{"rbind", "rw"}
			if m.ReadOnly {
				rm.spec.Options[1] = "ro"
			}
		case instructions.MountTypeTmpfs:
			rm.spec.Type, rm.spec.Source, rm.spec.Options = "tmpfs", "tmpfs", []string{"nosuid", "nodev"}
			if m.SizeLimit > 0 {
				rm.spec.Options = append(rm.spec.Options, fmt.Sprintf("size=%d", m.SizeLimit))
			}
		case instructions.MountTypeSecret:
			src, err := bd.secretFile(m)
			if err != nil {
				return nil, "", err
			}
			if src == "" {
				continue // an optional secret the build was not given
			}
			rm.spec.Type, rm.spec.Source, rm.spec.Options = "bind", src, []string{"rbind", "ro", "nosuid", "nodev", "noexec"}
		}
		out = append(out, rm)
	}
	return out, hex.EncodeToString(h.Sum(nil)), nil
}

func orRoot(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}

// cacheMountDir returns the kept directory of a cache mount, made on
// first use with the mount's mode and owner.
func (bd *build) cacheMountDir(m *instructions.Mount) (string, error) {
	id := m.CacheID
	if id == "" {
		id = m.Target
	}
	sum := sha256.Sum256([]byte(id))
	dir := filepath.Join(bd.b.cacheMounts, hex.EncodeToString(sum[:16]))
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(bd.b.cacheMounts, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(bd.b.cacheMounts, "new-")
	if err != nil {
		return "", err
	}
	mode, uid, gid := mountOwner(m, 0o755)
	if err := os.Chmod(tmp, mode); err != nil {
		return "", err
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Remove(tmp) // another build made it first
		if _, serr := os.Stat(dir); serr != nil {
			return "", err
		}
	}
	return dir, nil
}

// scratchOverlay mounts a writable overlay over dir whose changes go to a
// throw-away upper: a RUN's rw bind mount may write, the source stays.
func (bd *build) scratchOverlay(dir string) (string, error) {
	base, err := bd.tempDir("rwbind")
	if err != nil {
		return "", err
	}
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", err
		}
	}
	m := snapshot.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + dir, "upperdir=" + upper, "workdir=" + work,
	}}
	if err := snapshot.MountAll([]snapshot.Mount{m}, merged); err != nil {
		return "", fmt.Errorf("RUN --mount=type=bind,rw: %w", err)
	}
	bd.addCleanup(func() { _ = snapshot.UnmountAll(merged) })
	return merged, nil
}

// removeCreatedParents removes target and the directories above it that a
// RUN's mount points created (empty, absent from every lower), so they are
// no part of the layer.
func removeCreatedParents(upper string, lowers []string, target string) {
	for p := strings.Trim(path.Clean(target), "/"); p != "" && p != "."; p = path.Dir(p) {
		if inLowers(lowers, p) {
			return
		}
		up := filepath.Join(upper, p)
		fi, err := os.Lstat(up)
		if err != nil {
			return
		}
		if fi.Mode().IsRegular() && fi.Size() == 0 || fi.IsDir() {
			if os.Remove(up) != nil {
				return // not empty: something the command wrote
			}
		} else {
			return
		}
	}
}

func inLowers(lowers []string, p string) bool {
	for _, l := range lowers {
		if _, err := os.Lstat(filepath.Join(l, p)); err == nil {
			return true
		}
	}
	return false
}

// secretFile writes a RUN's secret to a private file of the build (its
// mode and owner as the mount asks, 0400 root by default) for a read-only
// bind; "" for an optional secret the build was not given.
func (bd *build) secretFile(m *instructions.Mount) (string, error) {
	id := secretID(m)
	data, ok := bd.opts.Secrets[id]
	if !ok {
		if m.Required {
			return "", fmt.Errorf("RUN --mount=type=secret: secret %s not found (berth build --secret id=%s,src=FILE): %w", id, id, errdefs.ErrInvalidArgument)
		}
		return "", nil
	}
	dir, err := bd.tempDir("secret")
	if err != nil {
		return "", err
	}
	mode, uid, gid := mountOwner(m, 0o400)
	f := filepath.Join(dir, "secret")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		return "", err
	}
	if err := os.Chown(f, uid, gid); err != nil {
		return "", err
	}
	if err := os.Chmod(f, mode); err != nil {
		return "", err
	}
	return f, nil
}

// secretID is BuildKit's: id=, else source=, else the target's base name.
func secretID(m *instructions.Mount) string {
	switch {
	case m.CacheID != "":
		return m.CacheID
	case m.Source != "":
		return m.Source
	}
	return path.Base(m.Target)
}

// mountOwner is a RUN mount's mode, uid and gid options (root's by default).
func mountOwner(m *instructions.Mount, mode os.FileMode) (os.FileMode, int, int) {
	uid, gid := 0, 0
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode)
	}
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	return mode, uid, gid
}
