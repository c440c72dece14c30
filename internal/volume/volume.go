// Package volume is berth's volume store with docker's "local" driver:
// each volume is a directory <root>/<name>/_data, its metadata a JSON file
// next to it, and a volume created with driver options (type, device, o)
// has that filesystem mounted on _data while a container uses it.
//
// The store keeps two kinds of counts in memory, both rebuilt by the
// engine from its container records at daemon start: references (the
// containers whose configuration names the volume; a referenced volume
// cannot be removed) and active users (the running containers; the first
// mounts a device-backed volume, the last unmounts it).
package volume

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/snapshot"
)

// DefaultDriver is the only driver berth has.
const DefaultDriver = "local"

// AnonymousLabel marks volumes made without a name (a container's `-v
// /path`, an image's VOLUME), docker's label: prune removes only these
// unless asked for all.
const AnonymousLabel = "com.docker.volume.anonymous"

const (
	metaFile = "volume.json"
	dataDir  = "_data"
	// Directories being created or removed carry these prefixes; a valid
	// volume name starts with a letter or digit, so they never clash.
	tmpPrefix = ".tmp-"
	rmPrefix  = ".rm-"
)

// validName is docker's rule for local volume names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Volume is one volume as inspect shows it.
type Volume struct {
	Name      string
	Driver    string
	CreatedAt time.Time
	Labels    map[string]string
	Options   map[string]string
	// Mountpoint is the host path containers bind: <root>/<name>/_data.
	Mountpoint string `json:"-"`
	// RefCount is how many containers reference the volume (not persisted).
	RefCount int `json:"-"`
}

// Anonymous reports a volume made without a name.
func (v Volume) Anonymous() bool {
	_, ok := v.Labels[AnonymousLabel]
	return ok
}

// CreateOptions are the parameters of Create.
type CreateOptions struct {
	Driver  string
	Labels  map[string]string
	Options map[string]string // the local driver's type, device, o
	// Anonymous marks a container's unnamed volume (AnonymousLabel); a
	// volume created without a name through the API gets a generated name
	// but is not anonymous, as in docker.
	Anonymous bool
	// Ref, if set, is a container ID recorded as referencing the volume in
	// the same step, so no removal or prune can slip in between.
	Ref string
}

type entry struct {
	v      Volume
	refs   map[string]struct{} // container IDs referencing it
	active map[string]struct{} // running container IDs using it
	// mounted: the driver's filesystem is mounted on _data.
	mounted bool
}

// Store holds the volumes under one directory.
type Store struct {
	root string
	log  *slog.Logger

	mu   sync.Mutex
	vols map[string]*entry
	// copyMu serialises Populate (a long copy must not hold mu).
	copyMu sync.Mutex
}

// Open loads the volumes under root (<daemon root>/volumes), removing
// what an interrupted create or remove left behind.
func Open(root string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(root, 0o701); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	s := &Store{root: root, log: log, vols: map[string]*entry{}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	for _, de := range ents {
		name := de.Name()
		if !de.IsDir() {
			continue
		}
		if strings.HasPrefix(name, tmpPrefix) || strings.HasPrefix(name, rmPrefix) {
			if err := removeTree(filepath.Join(root, name)); err != nil {
				log.Warn("volume leftover", "dir", name, "err", err)
			}
			continue
		}
		v, err := readMeta(filepath.Join(root, name, metaFile))
		if err != nil {
			log.Warn("skipping unreadable volume", "name", name, "err", err)
			continue
		}
		v.Name = name
		v.Mountpoint = s.dataPath(name)
		e := &entry{v: v, refs: map[string]struct{}{}, active: map[string]struct{}{}}
		if needsMount(v.Options) {
			// A device mounted by an earlier daemon stays in use by the
			// containers that still run; the engine marks them active.
			e.mounted, _ = mountinfo.Mounted(v.Mountpoint)
		}
		s.vols[name] = e
	}
	return s, nil
}

func (s *Store) dataPath(name string) string { return filepath.Join(s.root, name, dataDir) }

func readMeta(path string) (Volume, error) {
	var v Volume
	b, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("decode %s: %w", path, err)
	}
	return v, nil
}

// NewName returns a name for an anonymous volume: 64 hex digits, as docker.
func NewName() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func notFound(name string) error {
	return fmt.Errorf("get %s: no such volume: %w", name, errdefs.ErrNotFound)
}

// ValidateName checks a volume name by docker's rule for the local driver.
func ValidateName(name string) error {
	if len(name) == 1 {
		return fmt.Errorf("volume name is too short, names should be at least two alphanumeric characters: %w", errdefs.ErrInvalidArgument)
	}
	if !validName.MatchString(name) {
		return fmt.Errorf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// validateOptions is the local driver's check of its options.
func validateOptions(opts map[string]string) error {
	for k := range opts {
		switch k {
		case "type", "device", "o":
		case "size":
			return fmt.Errorf("quota size requested but no quota support: %w", errdefs.ErrInvalidArgument)
		default:
			return fmt.Errorf("invalid option: %q: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	// Each key needs the ones listed, docker's rule (in a fixed order, so
	// the error is the same every time).
	for _, req := range []struct{ key, needs string }{
		{"device", "type"}, {"type", "device"}, {"o", "device"}, {"o", "type"},
	} {
		if _, ok := opts[req.key]; !ok {
			continue
		}
		if _, ok := opts[req.needs]; !ok {
			return fmt.Errorf("missing required option: %q: %w", req.needs, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func needsMount(opts map[string]string) bool { return opts["type"] != "" || opts["device"] != "" }

// Create makes a volume, or returns the existing one of that name (as
// docker does: create is idempotent). An empty name is replaced by a
// generated one.
func (s *Store) Create(name string, o CreateOptions) (Volume, error) {
	if o.Driver != "" && o.Driver != DefaultDriver {
		return Volume{}, fmt.Errorf("create %s: error looking up volume plugin %s: plugin %q not found: %w", name, o.Driver, o.Driver, errdefs.ErrNotFound)
	}
	labels := maps(o.Labels)
	if name == "" {
		name = NewName()
	}
	if o.Anonymous {
		if labels == nil {
			labels = map[string]string{}
		}
		labels[AnonymousLabel] = ""
	}
	if err := ValidateName(name); err != nil {
		return Volume{}, fmt.Errorf("create %s: %w", name, err)
	}
	if err := validateOptions(o.Options); err != nil {
		return Volume{}, fmt.Errorf("create %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.vols[name]; ok {
		if o.Ref != "" {
			e.refs[o.Ref] = struct{}{}
		}
		return e.snapshot(), nil
	}
	v := Volume{
		Name: name, Driver: DefaultDriver, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: labels, Options: maps(o.Options), Mountpoint: s.dataPath(name),
	}
	if err := s.write(v); err != nil {
		return Volume{}, fmt.Errorf("create %s: %w", name, err)
	}
	e := &entry{v: v, refs: map[string]struct{}{}, active: map[string]struct{}{}}
	if o.Ref != "" {
		e.refs[o.Ref] = struct{}{}
	}
	s.vols[name] = e
	return e.snapshot(), nil
}

// write makes the volume's directory complete in a temporary place (the
// _data directory and the synced metadata) and renames it into place, so
// a crash leaves either no volume or a whole one.
func (s *Store) write(v Volume) error {
	tmp, err := os.MkdirTemp(s.root, tmpPrefix)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o701); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(tmp, dataDir), 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(tmp, metaFile), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(s.root, v.Name)); err != nil {
		return err
	}
	ok = true
	return syncDir(s.root)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// maps copies m; empty is nil (inspect shows null, as docker's).
func maps(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (e *entry) snapshot() Volume {
	v := e.v
	v.Labels, v.Options = maps(e.v.Labels), maps(e.v.Options)
	v.RefCount = len(e.refs)
	return v
}

// Get returns the volume called name.
func (s *Store) Get(name string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return Volume{}, notFound(name)
	}
	return e.snapshot(), nil
}

// Users returns the IDs of the containers referencing the volume, sorted.
func (s *Store) Users(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return nil
	}
	return sortedKeys(e.refs)
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Filters select volumes in List and Prune, docker's keys.
type Filters map[string][]string

// ValidateFilters refuses keys List does not know.
func ValidateFilters(f Filters, prune bool) error {
	for k := range f {
		switch k {
		case "label", "label!":
		case "name", "driver", "dangling":
			if prune {
				return fmt.Errorf("invalid filter '%s': %w", k, errdefs.ErrInvalidArgument)
			}
		case "all":
			if !prune {
				return fmt.Errorf("invalid filter '%s': %w", k, errdefs.ErrInvalidArgument)
			}
		default:
			return fmt.Errorf("invalid filter '%s': %w", k, errdefs.ErrInvalidArgument)
		}
	}
	for _, key := range []string{"dangling", "all"} {
		for _, v := range f[key] {
			if _, err := parseBool(v); err != nil {
				return fmt.Errorf("invalid filter '%s=%s': %w", key, v, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

// matchLabels: each filter value is KEY or KEY=VALUE, and all must match.
func matchLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasV := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

func (f Filters) match(v Volume) bool {
	if names := f["name"]; len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(v.Name, n) }) {
		return false
	}
	if drivers := f["driver"]; len(drivers) > 0 && !slices.Contains(drivers, v.Driver) {
		return false
	}
	for _, d := range f["dangling"] {
		want, _ := parseBool(d)
		if (v.RefCount == 0) != want {
			return false
		}
	}
	if !matchLabels(v.Labels, f["label"]) {
		return false
	}
	for _, l := range f["label!"] {
		if matchLabels(v.Labels, []string{l}) {
			return false
		}
	}
	return true
}

// List returns the volumes matching f, sorted by name.
func (s *Store) List(f Filters) ([]Volume, error) {
	if err := ValidateFilters(f, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Volume
	for _, e := range s.vols {
		if v := e.snapshot(); f.match(v) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume no container references. force makes a missing
// volume no error (docker's `volume rm -f`); it does not override use.
func (s *Store) Remove(name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(name, force)
}

func (s *Store) removeLocked(name string, force bool) error {
	e, ok := s.vols[name]
	if !ok {
		if force {
			return nil
		}
		return notFound(name)
	}
	if len(e.refs) > 0 {
		return fmt.Errorf("remove %s: volume is in use - [%s]: %w", name, strings.Join(sortedKeys(e.refs), ", "), errdefs.ErrConflict)
	}
	if e.mounted {
		if err := snapshot.UnmountAll(e.v.Mountpoint); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		e.mounted = false
	}
	// The rename makes the volume vanish at once; the tree goes after.
	dir := filepath.Join(s.root, name)
	// A unique name: an earlier removal's tree may still be there.
	gone := filepath.Join(s.root, rmPrefix+NewName()[:16])
	if err := os.Rename(dir, gone); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	delete(s.vols, name)
	if err := removeTree(gone); err != nil {
		s.log.Warn("remove volume data", "name", name, "err", err)
	}
	return nil
}

// removeTree deletes dir, refusing to follow into a filesystem still
// mounted below it (a device volume whose unmount failed).
func removeTree(dir string) error {
	if mounted, _ := mountinfo.Mounted(filepath.Join(dir, dataDir)); mounted {
		if err := snapshot.UnmountAll(filepath.Join(dir, dataDir)); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// PruneReport is what Prune removed.
type PruneReport struct {
	Deleted        []string
	SpaceReclaimed uint64
}

// Prune removes unreferenced volumes matching f: only anonymous ones
// unless f has all=true (docker 23+).
func (s *Store) Prune(f Filters) (PruneReport, error) {
	var rep PruneReport
	if err := ValidateFilters(f, true); err != nil {
		return rep, err
	}
	all := false
	for _, a := range f["all"] {
		all, _ = parseBool(a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.vols))
	for n := range s.vols {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := s.vols[n]
		v := e.snapshot()
		if len(e.refs) > 0 || (!all && !v.Anonymous()) || !f.match(v) {
			continue
		}
		var size int64
		if !e.mounted {
			size = DirSize(v.Mountpoint)
		}
		if err := s.removeLocked(n, false); err != nil {
			s.log.Warn("prune volume", "name", n, "err", err)
			continue
		}
		rep.Deleted = append(rep.Deleted, n)
		rep.SpaceReclaimed += uint64(size)
	}
	return rep, nil
}

// DirSize sums the sizes of the regular files under dir, each inode once
// (docker's measure of volumes and of what a container wrote).
func DirSize(dir string) int64 {
	var total int64
	seen := map[uint64]bool{}
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if ino, ok := inode(fi); ok {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		total += fi.Size()
		return nil
	})
	return total
}

// Ref records that container id references the volume.
func (s *Store) Ref(name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return notFound(name)
	}
	e.refs[id] = struct{}{}
	return nil
}

// Release drops container id's reference (and use) of the volume.
func (s *Store) Release(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.vols[name]; ok {
		delete(e.refs, id)
	}
}

// Mount makes the volume ready for container id and returns the host path
// to bind: a device-backed volume is mounted on its first user.
func (s *Store) Mount(name, id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return "", notFound(name)
	}
	if needsMount(e.v.Options) && !e.mounted {
		if err := mountDevice(e.v); err != nil {
			return "", fmt.Errorf("error while mounting volume '%s': failed to mount local volume: %w", e.v.Mountpoint, err)
		}
		e.mounted = true
	}
	e.active[id] = struct{}{}
	return e.v.Mountpoint, nil
}

// Unmount ends container id's use, reporting whether it was using the
// volume; the last user's end unmounts a device-backed volume. Unmounting
// what id does not use is a no-op.
func (s *Store) Unmount(name, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return false, nil
	}
	if _, used := e.active[id]; !used {
		return false, nil
	}
	delete(e.active, id)
	if len(e.active) > 0 || !e.mounted {
		return true, nil
	}
	if err := snapshot.UnmountAll(e.v.Mountpoint); err != nil {
		return true, fmt.Errorf("unmount volume %s: %w", name, err)
	}
	e.mounted = false
	return true, nil
}

// UnmountIdle unmounts the device-backed volumes no container uses: an
// earlier daemon's mounts whose users ended while it was down. Call it once
// the running containers are marked (Mount).
func (s *Store) UnmountIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range s.vols {
		if !e.mounted || len(e.active) > 0 {
			continue
		}
		if err := snapshot.UnmountAll(e.v.Mountpoint); err != nil {
			s.log.Warn("unmount idle volume", "name", name, "err", err)
			continue
		}
		e.mounted = false
	}
}

func mountDevice(v Volume) error {
	o := v.Options
	if o["device"] == "" {
		return errors.New("missing device in volume options")
	}
	var opts []string
	if o["o"] != "" {
		opts = strings.Split(o["o"], ",")
	}
	return snapshot.MountAll([]snapshot.Mount{{Type: o["type"], Source: o["device"], Options: opts}}, v.Mountpoint)
}
