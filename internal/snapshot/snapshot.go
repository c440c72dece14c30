// Package snapshot is berth's overlayfs snapshotter: it keeps the layers of
// images and containers as directories and hands out mount descriptions
// for them, containerd-style. It does not mount for its callers (except in
// WithTempMount, for short looks).
//
// On disk, below the root given to Open (the daemon passes
// <daemon root>/snapshots):
//
//	metadata.db     bbolt records (NewBoltStore), unless a Store is given
//	<n>/fs          the snapshot's content: an overlay layer
//	<n>/work        overlayfs's work dir, for active snapshots only
//	tmp-*           a snapshot being created; removed by Open
//
// Directory names are small numbers, not keys, so a lowerdir option listing
// a deep chain stays short (see MountAll for chains longer than a page).
//
// Crash safety: a snapshot's directories are made under a tmp- name, renamed
// to <n>, and the directory fsynced before the record naming <n> is
// committed; removal deletes the record first, the directory after. So no
// record ever names a missing directory, and Open deletes the directories
// no record names.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Kind is a snapshot's state.
type Kind uint8

// The kinds of snapshot.
const (
	KindActive    Kind = iota + 1 // writable, made by Prepare
	KindView                      // read-only, made by View
	KindCommitted                 // immutable, made by Commit; can be a parent
)

func (k Kind) String() string {
	switch k {
	case KindActive:
		return "active"
	case KindView:
		return "view"
	case KindCommitted:
		return "committed"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Info describes a snapshot.
type Info struct {
	Key     string
	Parent  string // "" for none
	Kind    Kind
	Created time.Time
}

// Usage is the disk use of one snapshot's own layer (not its parents).
type Usage struct {
	Size   int64 // bytes of allocated blocks
	Inodes int64 // files, directories, links... counted once per inode
}

// Options tunes Open.
type Options struct {
	// Store keeps the records; nil means a BoltStore at <root>/metadata.db.
	Store  Store
	Logger *slog.Logger // nil means slog.Default()
}

// Snapshotter manages the snapshots below one root directory. Its methods
// are safe for concurrent use; one root must have one Snapshotter (the
// default store's file lock enforces it across processes).
type Snapshotter struct {
	root    string
	store   Store
	log     *slog.Logger
	overlay []string // extra overlay options, e.g. "index=off"
}

const metadataFile = "metadata.db"

// Open opens the snapshotter at root, creating root if needed, and removes
// leftovers of interrupted operations.
func Open(ctx context.Context, root string, opts Options) (*Snapshotter, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	// overlayfs splits its options on "," and lowerdir on ":".
	if strings.ContainsAny(root, ",:") {
		return nil, fmt.Errorf("snapshot: root %q contains ',' or ':': %w", root, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s := &Snapshotter{root: root, store: opts.Store, log: opts.Logger, overlay: overlayDefaults()}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.store == nil {
		bs, err := NewBoltStore(filepath.Join(root, metadataFile))
		if err != nil {
			return nil, err
		}
		s.store = bs
	}
	if err := s.cleanup(ctx); err != nil {
		if opts.Store == nil {
			s.store.Close()
		}
		return nil, err
	}
	return s, nil
}

// overlayDefaults turns off the overlayfs features that make an upper dir
// depend on its lowers beyond whiteouts and opaque dirs (index, redirected
// dirs, metadata-only copy-up), when this kernel has them on by default:
// archive.Diff reads the upper alone, and layers are shared across
// containers, which index does not allow. Options are only passed when
// needed, keeping the mount data short.
func overlayDefaults() []string {
	var opts []string
	for _, p := range []struct{ param, opt string }{
		{"index", "index=off"},
		{"redirect_dir", "redirect_dir=off"},
		{"metacopy", "metacopy=off"},
	} {
		b, err := os.ReadFile("/sys/module/overlay/parameters/" + p.param)
		if err == nil && strings.TrimSpace(string(b)) == "Y" {
			opts = append(opts, p.opt)
		}
	}
	return opts
}

// Close releases the store (if Open made it).
func (s *Snapshotter) Close() error { return s.store.Close() }

func (s *Snapshotter) dir(id uint64) string {
	return filepath.Join(s.root, strconv.FormatUint(id, 10))
}

func (s *Snapshotter) fsDir(id uint64) string { return filepath.Join(s.dir(id), "fs") }

// cleanup removes directories no record names: tmp-* from interrupted
// creations and <n> from interrupted creations or removals. Only names of
// those shapes are touched, so a wrong root never loses foreign files.
func (s *Snapshotter) cleanup(ctx context.Context) error {
	ids := map[uint64]bool{}
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Walk(func(_ string, r Record) error {
			ids[r.ID] = true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("snapshot: read records: %w", err)
	}
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		id, err := strconv.ParseUint(n, 10, 64)
		orphan := (err == nil && !ids[id]) || strings.HasPrefix(n, "tmp-")
		if !orphan {
			continue
		}
		s.log.InfoContext(ctx, "snapshot: removing leftover of an interrupted operation", "dir", filepath.Join(s.root, n))
		if err := os.RemoveAll(filepath.Join(s.root, n)); err != nil {
			return fmt.Errorf("snapshot: remove leftover: %w", err)
		}
	}
	return nil
}

// Prepare creates the active (writable) snapshot key on top of the
// committed snapshot parent ("" for none) and returns its mounts: an
// overlay with parent's chain as lowers, or a read-write bind mount of an
// empty directory when there is no parent.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string) ([]Mount, error) {
	return s.create(ctx, KindActive, key, parent)
}

// View creates the read-only snapshot key of the committed snapshot parent
// and returns its mounts: a read-only bind mount when the chain is one layer
// (overlay needs two lowers without an upper), else a lowers-only overlay.
func (s *Snapshotter) View(ctx context.Context, key, parent string) ([]Mount, error) {
	return s.create(ctx, KindView, key, parent)
}

func (s *Snapshotter) create(ctx context.Context, kind Kind, key, parent string) (_ []Mount, err error) {
	if key == "" {
		return nil, fmt.Errorf("snapshot: empty key: %w", errdefs.ErrInvalidArgument)
	}
	tmp, err := os.MkdirTemp(s.root, "tmp-")
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	renamed := ""
	defer func() {
		if err != nil {
			if renamed != "" {
				os.RemoveAll(renamed)
			}
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if kind == KindActive {
		if err := os.Mkdir(filepath.Join(tmp, "work"), 0o700); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	var rec Record
	var lowers []uint64
	err = s.store.Update(ctx, func(tx Tx) error {
		if _, err := tx.Get(key); err == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		} else if !errdefs.IsNotFound(err) {
			return err
		}
		var err error
		if lowers, err = chain(tx, parent); err != nil {
			return err
		}
		id, err := tx.NextID()
		if err != nil {
			return err
		}
		dst := s.dir(id)
		// No record names id (ids only grow), so anything there is a
		// leftover of a rolled-back transaction.
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		renamed = dst
		if err := syncDir(s.root); err != nil {
			return err
		}
		rec = Record{ID: id, Kind: kind, Parent: parent, Created: time.Now().UTC()}
		return tx.Put(key, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %q: %w", key, err)
	}
	return s.mounts(rec, lowers), nil
}

// chain returns the ids of parent and its ancestors, top first; parent
// must be committed.
func chain(tx Tx, parent string) ([]uint64, error) {
	var ids []uint64
	for p := parent; p != ""; {
		r, err := tx.Get(p)
		if err != nil {
			return nil, fmt.Errorf("parent: %w", err)
		}
		if r.Kind != KindCommitted {
			return nil, fmt.Errorf("parent %q is %s, not committed: %w", p, r.Kind, errdefs.ErrFailedPrecondition)
		}
		ids = append(ids, r.ID)
		p = r.Parent
		if len(ids) > 10000 {
			return nil, fmt.Errorf("parent chain of %q loops: %w", parent, errdefs.ErrFailedPrecondition)
		}
	}
	return ids, nil
}

func (s *Snapshotter) mounts(r Record, lowers []uint64) []Mount {
	own := s.fsDir(r.ID)
	if r.Kind == KindCommitted {
		// A committed snapshot is shown as a view of its own chain.
		lowers = append([]uint64{r.ID}, lowers...)
	}
	dirs := make([]string, len(lowers))
	for i, id := range lowers {
		dirs[i] = s.fsDir(id)
	}
	if r.Kind == KindActive {
		if len(dirs) == 0 {
			return []Mount{{Type: "bind", Source: own, Options: []string{"rw", "rbind"}}}
		}
		opts := []string{
			"lowerdir=" + strings.Join(dirs, ":"),
			"upperdir=" + own,
			"workdir=" + filepath.Join(s.dir(r.ID), "work"),
		}
		return []Mount{{Type: "overlay", Source: "overlay", Options: append(opts, s.overlay...)}}
	}
	switch len(dirs) {
	case 0: // a view of nothing: its own empty directory
		return []Mount{{Type: "bind", Source: own, Options: []string{"ro", "rbind"}}}
	case 1: // overlay wants two lowers when it has no upper
		return []Mount{{Type: "bind", Source: dirs[0], Options: []string{"ro", "rbind"}}}
	}
	opts := append([]string{"lowerdir=" + strings.Join(dirs, ":")}, s.overlay...)
	return []Mount{{Type: "overlay", Source: "overlay", Options: append(opts, "ro")}}
}

// Mounts returns the mounts of snapshot key, as Prepare or View did. For a
// committed snapshot it returns a read-only view of its chain.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]Mount, error) {
	var rec Record
	var lowers []uint64
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		if rec, err = tx.Get(key); err != nil {
			return err
		}
		lowers, err = chain(tx, rec.Parent)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: mounts: %w", err)
	}
	return s.mounts(rec, lowers), nil
}

// Commit turns the active snapshot key into the committed, immutable
// snapshot name (image code uses the layer's chainID), usable as a parent.
// The caller must have unmounted key and stopped writing to it. An existing
// name fails with ErrAlreadyExists: someone else unpacked the same layer,
// and the caller should Remove key and use name.
func (s *Snapshotter) Commit(ctx context.Context, name, key string) error {
	return s.CommitOnto(ctx, name, key, "")
}

// CommitOption tunes CommitOnto.
type CommitOption func(*commitOptions)

type commitOptions struct {
	usage *Usage
}

// WithUsage records u as the committed layer's disk use instead of
// measuring it during the commit. The caller measured it (Usage) after its
// last write to the snapshot, e.g. while other layers were still being
// unpacked, so that commits done one after the other stay short.
func WithUsage(u Usage) CommitOption {
	return func(o *commitOptions) { o.usage = &u }
}

// CommitOnto is Commit that also gives key, an active snapshot prepared
// without a parent, the committed parent parent ("" changes nothing). It
// lets layers be unpacked at once, each into its own snapshot, and chained
// in order as they are committed: the caller vouches that key's directory
// holds an overlay upper meant for parent (whiteouts and all).
func (s *Snapshotter) CommitOnto(ctx context.Context, name, key, parent string, opts ...CommitOption) error {
	var o commitOptions
	for _, opt := range opts {
		opt(&o)
	}
	if name == "" {
		return fmt.Errorf("snapshot: empty name: %w", errdefs.ErrInvalidArgument)
	}
	var rec Record
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		rec, err = tx.Get(key)
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshot: commit %q: %w", key, err)
	}
	if rec.Kind != KindActive {
		return fmt.Errorf("snapshot: commit %q: it is %s, not active: %w", key, rec.Kind, errdefs.ErrFailedPrecondition)
	}
	// Measured once, outside the transaction: committed layers never change.
	var u Usage
	if o.usage != nil {
		u = *o.usage
	} else if u, err = diskUsage(ctx, s.fsDir(rec.ID)); err != nil {
		return fmt.Errorf("snapshot: commit %q: usage: %w", key, err)
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		cur, err := tx.Get(key)
		if err != nil {
			return err
		}
		if cur.ID != rec.ID || cur.Kind != KindActive {
			return fmt.Errorf("snapshot %q changed during commit: %w", key, errdefs.ErrConflict)
		}
		if parent != "" {
			if cur.Parent != "" {
				return fmt.Errorf("snapshot %q already has parent %q: %w", key, cur.Parent, errdefs.ErrFailedPrecondition)
			}
			if _, err := chain(tx, parent); err != nil {
				return err
			}
			cur.Parent = parent
		}
		if _, err := tx.Get(name); err == nil {
			return fmt.Errorf("snapshot %q: %w", name, errdefs.ErrAlreadyExists)
		} else if !errdefs.IsNotFound(err) {
			return err
		}
		cur.Kind, cur.Size, cur.Inodes = KindCommitted, u.Size, u.Inodes
		if err := tx.Delete(key); err != nil {
			return err
		}
		return tx.Put(name, cur)
	})
	if err != nil {
		return fmt.Errorf("snapshot: commit %q as %q: %w", key, name, err)
	}
	// A lower layer needs no work dir.
	if err := os.RemoveAll(filepath.Join(s.dir(rec.ID), "work")); err != nil {
		s.log.WarnContext(ctx, "snapshot: remove work dir", "key", name, "err", err)
	}
	return nil
}

// Remove deletes snapshot key and its directory. A snapshot that is the
// parent of others cannot be removed (ErrFailedPrecondition). The caller
// must have unmounted it: Remove does not look at mounts.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	var rec Record
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		if rec, err = tx.Get(key); err != nil {
			return err
		}
		var children []string
		err = tx.Walk(func(k string, r Record) error {
			if r.Parent == key {
				children = append(children, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(children) > 0 {
			return fmt.Errorf("snapshot %q is the parent of %q: %w", key, children, errdefs.ErrFailedPrecondition)
		}
		return tx.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("snapshot: remove: %w", err)
	}
	// The record is gone; a directory left behind by a failure here is an
	// orphan the next Open removes.
	if err := os.RemoveAll(s.dir(rec.ID)); err != nil {
		s.log.WarnContext(ctx, "snapshot: remove directory; Open will retry", "key", key, "err", err)
	}
	return nil
}

// Stat returns the information of snapshot key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (Info, error) {
	var rec Record
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		rec, err = tx.Get(key)
		return err
	})
	if err != nil {
		return Info{}, fmt.Errorf("snapshot: stat: %w", err)
	}
	return info(key, rec), nil
}

func info(key string, r Record) Info {
	return Info{Key: key, Parent: r.Parent, Kind: r.Kind, Created: r.Created}
}

// Walk calls fn for every snapshot, in key order. fn runs outside any
// store transaction, so it may call the Snapshotter.
func (s *Snapshotter) Walk(ctx context.Context, fn func(context.Context, Info) error) error {
	var infos []Info
	err := s.store.View(ctx, func(tx Tx) error {
		return tx.Walk(func(k string, r Record) error {
			infos = append(infos, info(k, r))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("snapshot: walk: %w", err)
	}
	for _, i := range infos {
		if err := fn(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns the disk use of snapshot key's own layer: recorded at
// commit for committed snapshots, measured now for the others.
func (s *Snapshotter) Usage(ctx context.Context, key string) (Usage, error) {
	var rec Record
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		rec, err = tx.Get(key)
		return err
	})
	if err != nil {
		return Usage{}, fmt.Errorf("snapshot: usage: %w", err)
	}
	if rec.Kind == KindCommitted {
		return Usage{Size: rec.Size, Inodes: rec.Inodes}, nil
	}
	u, err := diskUsage(ctx, s.fsDir(rec.ID))
	if err != nil {
		return Usage{}, fmt.Errorf("snapshot: usage %q: %w", key, err)
	}
	return u, nil
}

// diskUsage counts the allocated bytes and inodes below dir, each inode
// once (hardlinks), dir itself included.
func diskUsage(ctx context.Context, dir string) (Usage, error) {
	var u Usage
	seen := map[uint64]struct{}{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if _, ok := seen[st.Ino]; ok {
				return nil
			}
			seen[st.Ino] = struct{}{}
		}
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	return u, err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}
