package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/spec"
)

// snapshotPrefix names a step's working snapshot. It is the image store's
// unpack prefix on purpose: GC treats such active snapshots as garbage
// unless a live operation's lease protects them, so a build a crash
// interrupted leaves nothing behind.
const snapshotPrefix = "unpack-build-"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tempDir makes a fresh directory under the build's private directory.
func (bd *build) tempDir(what string) (string, error) {
	bd.mu.Lock()
	bd.seq++
	d := filepath.Join(bd.tmp, fmt.Sprintf("%s-%d", what, bd.seq))
	bd.mu.Unlock()
	return d, os.Mkdir(d, 0o700)
}

// layerStep makes one layer on top of parent: a writable snapshot of its
// chain, mounted, changed by fn, then diffed into a layer blob and
// committed under the new chainID. With dropEmpty a step that changed
// nothing adds no layer (empty is then true). stubs are mount points the
// runtime may have made: removed when empty and new (removeCreatedParents).
func (bd *build) layerStep(ctx context.Context, parent state, fn func(rootfs string) error, dropEmpty bool, stubs []string) (st state, empty bool, err error) {
	images := bd.b.images
	snaps := images.Snapshots()
	key := snapshotPrefix + randomHex(8)
	if err := bd.op.Add(ctx, nil, []string{key}); err != nil {
		return parent, false, err
	}
	mounts, err := snaps.Prepare(ctx, key, parent.chain.String())
	if err != nil {
		return parent, false, fmt.Errorf("prepare layer: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			if rerr := snaps.Remove(context.WithoutCancel(ctx), key); rerr != nil && !errdefs.IsNotFound(rerr) {
				bd.b.log.Warn("builder: remove step snapshot", "key", key, "err", rerr)
			}
		}
	}()
	rootfs, err := bd.tempDir("rootfs")
	if err != nil {
		return parent, false, err
	}
	if err := snapshot.MountAll(mounts, rootfs); err != nil {
		return parent, false, fmt.Errorf("mount layer: %w", err)
	}
	ferr := fn(rootfs)
	if uerr := snapshot.UnmountAll(rootfs); uerr != nil {
		return parent, false, fmt.Errorf("unmount layer: %w", uerr)
	}
	if ferr != nil {
		return parent, false, ferr
	}
	upper, lowers, err := snapshot.LayerDirs(mounts)
	if err != nil {
		return parent, false, err
	}
	for _, p := range stubs {
		removeCreatedParents(upper, lowers, p)
	}
	if bd.epoch != nil {
		// The committed snapshot is what containers of this image see: it
		// must match the layer blob, whose times Diff clamps too.
		if err := clampTimes(upper, *bd.epoch); err != nil {
			return parent, false, err
		}
	}
	if dropEmpty {
		if ents, err := os.ReadDir(upper); err == nil && len(ents) == 0 {
			return parent, true, nil
		}
	}
	pr, pw := io.Pipe()
	go func() {
		var opts archive.DiffOptions
		if bd.epoch != nil {
			opts.SourceDateEpoch = *bd.epoch
		}
		pw.CloseWithError(archive.Diff(ctx, lowers, upper, pw, opts))
	}()
	desc, diffID, err := images.WriteLayer(ctx, bd.op, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return parent, false, fmt.Errorf("write layer: %w", err)
	}
	chainID := image.ChainID(parent.chain, diffID)
	if err := bd.op.Add(ctx, nil, []string{chainID.String()}); err != nil {
		return parent, false, err
	}
	if err := snaps.Commit(ctx, chainID.String(), key); err != nil && !errdefs.IsAlreadyExists(err) {
		return parent, false, fmt.Errorf("commit layer: %w", err)
	} else if err == nil {
		committed = true
	}
	st = parent
	st.layers = append(st.layers, desc)
	st.cfg.RootFS.Type = "layers"
	st.cfg.RootFS.DiffIDs = append(st.cfg.RootFS.DiffIDs, diffID)
	st.chain = chainID
	return st, false, nil
}

// mountStubs are what the runtime creates in a root filesystem as mount
// points; when a RUN step made them they are no part of its changes.
var mountStubs = []string{
	"/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
	"/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup", "/proc",
}

// runStep runs a RUN instruction in a container on the stage's layers.
func (bd *build) runStep(ctx context.Context, s *stage, c *instructions.RunCommand) error {
	args := bd.commandLine(s, c.ShellDependantCmdLine)
	env := bd.envList(s, true)
	if !hasEnv(env, "PATH") {
		env = append(env, defaultPath)
	}
	env0 := bd.stageEnv(s)
	if err := c.Expand(func(w string) (string, error) { return bd.expand(w, env0) }); err != nil {
		return err
	}
	network := bd.runNetwork(c)
	mounts, mountKey, err := bd.runMounts(ctx, s, c, s.st.cfg.Config.WorkingDir)
	defer func() {
		for _, m := range mounts {
			if m.unlock != nil {
				m.unlock()
			}
		}
	}()
	if err != nil {
		return err
	}
	key := nextKey(s.st.key, "run", jsonArgs(args), argValues(s), network, mountKey)
	if hit, err := bd.cached(ctx, s, key); hit || err != nil {
		return err
	}
	st, err := s.st.clone()
	if err != nil {
		return err
	}
	st.key = key
	stubs := slices.Clone(mountStubs)
	for _, m := range mounts {
		stubs = append(stubs, m.target)
	}
	id := randomHex(32)
	s.printf(" ---> Running in %s\n", id[:12])
	cfg := st.cfg.Config
	st, _, err = bd.layerStep(ctx, st, func(rootfs string) error {
		if cfg.WorkingDir != "" {
			if err := mkdirIn(rootfs, cfg.WorkingDir, 0, 0); err != nil {
				return err
			}
		}
		l := bd.opts.Limits
		so := spec.Options{
			Rootfs: rootfs, Args: args, Env: env, Cwd: cfg.WorkingDir, User: cfg.User, NetworkMode: network,
			Memory: l.Memory, MemorySwap: l.MemorySwap, CPUShares: l.CPUShares, CPUQuota: l.CPUQuota,
			CPUPeriod: l.CPUPeriod, ShmSize: l.ShmSize, CpusetCpus: l.CpusetCpus, CpusetMems: l.CpusetMems,
		}
		for _, m := range mounts {
			so.Mounts = append(so.Mounts, m.spec)
		}
		code, err := bd.b.run.RunTransient(ctx, engine.TransientOptions{ID: id, Spec: so, Output: s.out, ExtraHosts: bd.opts.ExtraHosts})
		if err != nil {
			return err
		}
		if code != 0 {
			return &ExitError{Cmd: strings.Join(args, " "), Code: code}
		}
		return nil
	}, false, stubs)
	s.printf(" ---> Removed intermediate container %s\n", id[:12])
	if err != nil {
		return err
	}
	// docker records the build args the RUN saw before its command
	// ("|2 A=1 B=2 /bin/sh -c ..."), the proxies excepted.
	saved := args
	var used []string
	for _, a := range s.args {
		if a.Value != nil && !hasEnv(s.st.cfg.Config.Env, a.Key) {
			used = append(used, a.Key+"="+*a.Value)
		}
	}
	if len(used) > 0 {
		slices.Sort(used)
		saved = append(append([]string{fmt.Sprintf("|%d", len(used))}, used...), args...)
	}
	return bd.commit(s, st, strings.Join(saved, " "), false, c.String())
}

func hasEnv(env []string, k string) bool {
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			return true
		}
	}
	return false
}

// workdirStep sets the working directory and makes sure it exists: a
// layer only when it had to be created.
func (bd *build) workdirStep(ctx context.Context, s *stage, c *instructions.WorkdirCommand) error {
	dir := resolveDest(s.st.cfg.Config.WorkingDir, c.Path)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "/"
	}
	key := nextKey(s.st.key, "workdir", dir)
	if hit, err := bd.cached(ctx, s, key); hit || err != nil {
		return err
	}
	st, err := s.st.clone()
	if err != nil {
		return err
	}
	st.key = key
	st.cfg.Config.WorkingDir = dir
	empty := true
	if dir != "/" {
		st, empty, err = bd.layerStep(ctx, st, func(rootfs string) error {
			return mkdirIn(rootfs, dir, 0, 0)
		}, true, nil)
		if err != nil {
			return err
		}
	}
	return bd.commit(s, st, layerComment(st, "WORKDIR "+dir), empty, c.String())
}

// mkdirIn creates dir (absolute in the image) and its parents inside
// rootfs, resolving symlinks within rootfs; new directories get mode 0755
// and owner uid:gid.
func mkdirIn(rootfs, dir string, uid, gid int) error {
	parts := strings.Split(strings.Trim(filepath.Clean(dir), "/"), "/")
	cur := "/"
	for _, p := range parts {
		if p == "" {
			continue
		}
		cur = filepath.Join(cur, p)
		real, err := securejoin.SecureJoin(rootfs, cur)
		if err != nil {
			return err
		}
		fi, err := os.Stat(real)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("mkdir %s: %s is not a directory: %w", dir, cur, errdefs.ErrInvalidArgument)
			}
			continue
		}
		if !os.IsNotExist(err) {
			return err
		}
		if err := os.Mkdir(real, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if err := os.Chmod(real, 0o755); err != nil {
			return err
		}
		if err := os.Lchown(real, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// clampTimes sets every mtime under dir later than epoch to epoch
// (SOURCE_DATE_EPOCH), symlinks included, directories last so their
// entries' changes do not move them again.
func clampTimes(dir string, epoch time.Time) error {
	ts := unix.NsecToTimespec(epoch.UnixNano())
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.ModTime().After(epoch) {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return fmt.Errorf("clamp times: %w", err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("clamp times: %w", err)
		}
	}
	return nil
}
