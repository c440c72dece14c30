package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

const (
	stateFile = "state.json"
	fifoFile  = "exec.fifo"
)

// record is what berth persists about one container in <root>/<id>/state.json.
// The OCI status is not stored as truth: it is derived from the process and the
// exec fifo each time it is asked for, so a crash can never leave a stale status.
type record struct {
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pidStart"` // /proc/<pid>/stat starttime, guards against pid reuse
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	CgroupPaths map[string]string `json:"cgroupPaths,omitempty"`
	// Config is the config.json of records written before it moved to its
	// own file (configFile), kept so that containers created by an older
	// berth can still be exec'd into.
	Config json.RawMessage `json:"config,omitempty"`
	// Hooks (the spec's, as JSON: an encoder for specs.Hooks would be
	// built in every process that saves) and HostMountNS are what start
	// and delete need of the spec.
	Hooks       json.RawMessage `json:"hooks,omitempty"`
	HostMountNS bool            `json:"hostMountNS,omitempty"`
	// Creating is true until the init reports it is ready; a record that
	// stays creating belongs to a create that died half-way.
	Creating bool   `json:"creating,omitempty"`
	Owner    string `json:"owner,omitempty"`

	decoded *specs.Spec
	dir     string // the state directory, for configFile
}

// configFile holds, beside the record, the config.json the container was
// created from, byte for byte: exec decodes it (spec). Kept out of the
// record, which every operation reads and create writes twice, because the
// JSON scanner would go over its ~10 KB (a seccomp profile) each time.
const configFile = "config.json"

// hooks returns the container's hooks, nil when it has none.
func (rec *record) hooks() *specs.Hooks {
	if len(rec.Hooks) == 0 {
		return nil
	}
	var h specs.Hooks
	if json.Unmarshal(rec.Hooks, &h) != nil {
		return nil
	}
	return &h
}

// spec returns the decoded Config.
func (rec *record) spec() (*specs.Spec, error) {
	if rec.decoded == nil {
		data := rec.Config
		if len(data) == 0 {
			var err error
			if data, err = os.ReadFile(filepath.Join(rec.dir, configFile)); err != nil {
				return nil, fmt.Errorf("config of %s: %w", rec.ID, err)
			}
		}
		var s specs.Spec
		if err := json.Unmarshal(data, &s); err != nil || s.Process == nil || s.Linux == nil {
			return nil, fmt.Errorf("state of %s has no valid config", rec.ID)
		}
		rec.decoded = &s
	}
	return rec.decoded, nil
}

// validIDChar: letters, digits and _+-. (a hand check, not a regexp: package
// init runs in every container init too, and should cost nothing).
func validIDChar(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case first:
		return false
	}
	return c == '_' || c == '+' || c == '-' || c == '.'
}

// ValidateID refuses IDs that could escape the state directory or confuse tools.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("container id must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	ok := len(id) <= 1024
	for i := 0; ok && i < len(id); i++ {
		ok = validIDChar(id[i], i == 0)
	}
	if !ok {
		return fmt.Errorf("invalid container id %q: use letters, digits, '_', '+', '-' and '.': %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

func (r *Runtime) load(id string) (*record, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(r.dir(id), stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %q does not exist: %w", id, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	rec := record{dir: r.dir(id)}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("state of %s is corrupt: %w", id, err)
	}
	return &rec, nil
}

// save writes the record atomically: temp file, rename. No fsync: the state
// lives under /run (tmpfs) and describes processes that a reboot ends anyway.
func (r *Runtime) save(rec *record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", rec.ID, err)
	}
	dir := r.dir(rec.ID)
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write state of %s: %w", rec.ID, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state of %s: %w", rec.ID, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state of %s: %w", rec.ID, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("commit state of %s: %w", rec.ID, err)
	}
	return nil
}

// procStart returns the start time of pid in clock ticks since boot (field 22
// of /proc/<pid>/stat) and whether the process is a zombie.
func procStart(pid int) (start uint64, zombie bool, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The comm field may contain spaces and parentheses: split after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0] == "Z" || fields[0] == "X", err
}

// alive reports whether the record's init process still runs (the same
// process, not a later one that reused the pid).
func (rec *record) alive() bool {
	if rec.Pid <= 0 {
		return false
	}
	start, zombie, err := procStart(rec.Pid)
	if err != nil || zombie {
		return false
	}
	return rec.PidStart == 0 || start == rec.PidStart
}

func (r *Runtime) status(rec *record) specs.ContainerState {
	if rec.Creating {
		if rec.alive() {
			return specs.StateCreating
		}
		return specs.StateStopped
	}
	if !rec.alive() {
		return specs.StateStopped
	}
	if _, err := os.Lstat(filepath.Join(r.dir(rec.ID), fifoFile)); err == nil {
		return specs.StateCreated
	}
	if frozen(rec) {
		return StatePaused
	}
	return specs.StateRunning
}

func (r *Runtime) ociState(rec *record) *specs.State {
	st := &specs.State{
		Version:     specs.Version,
		ID:          rec.ID,
		Status:      r.status(rec),
		Bundle:      rec.Bundle,
		Annotations: rec.Annotations,
	}
	if st.Status != specs.StateStopped {
		st.Pid = rec.Pid
	}
	return st
}

// frozen reads the freezer state straight from the cgroup files: status is
// asked for often and must stay cheap.
func frozen(rec *record) bool {
	if p, ok := rec.CgroupPaths["freezer"]; ok {
		data, err := os.ReadFile(filepath.Join(p, "freezer.state"))
		return err == nil && strings.TrimSpace(string(data)) == "FROZEN"
	}
	if p, ok := rec.CgroupPaths[""]; ok {
		data, err := os.ReadFile(filepath.Join(p, "cgroup.freeze"))
		return err == nil && strings.TrimSpace(string(data)) == "1"
	}
	return false
}
