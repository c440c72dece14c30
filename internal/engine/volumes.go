package engine

import (
	"strconv"

	"github.com/berth-dev/berth/internal/volume"
)

// The volume API: the engine owns the store (it holds the containers'
// references) and emits docker's volume events.

// VolumeCreate makes a volume (or returns the existing one of that name).
func (e *Engine) VolumeCreate(name string, o volume.CreateOptions) (volume.Volume, error) {
	v, err := e.volumes.Create(name, o)
	if err != nil {
		return v, err
	}
	// docker reports "create" for an existing volume too.
	e.Emit("volume", "create", v.Name, map[string]string{"driver": v.Driver})
	return v, nil
}

// VolumeGet returns a volume by name.
func (e *Engine) VolumeGet(name string) (volume.Volume, error) { return e.volumes.Get(name) }

// VolumeList returns the volumes matching f, by name.
func (e *Engine) VolumeList(f volume.Filters) ([]volume.Volume, error) { return e.volumes.List(f) }

// VolumeRemove removes a volume no container references.
func (e *Engine) VolumeRemove(name string, force bool) error {
	_, getErr := e.volumes.Get(name)
	if err := e.volumes.Remove(name, force); err != nil {
		return err
	}
	if getErr == nil {
		e.Emit("volume", "destroy", name, map[string]string{"driver": volume.DefaultDriver})
	}
	return nil
}

// VolumePrune removes unused volumes (anonymous ones unless all=true).
func (e *Engine) VolumePrune(f volume.Filters) (volume.PruneReport, error) {
	rep, err := e.volumes.Prune(f)
	for _, n := range rep.Deleted {
		e.Emit("volume", "destroy", n, map[string]string{"driver": volume.DefaultDriver})
	}
	if err == nil {
		e.Emit("volume", "prune", "", map[string]string{"reclaimed": strconv.FormatUint(rep.SpaceReclaimed, 10)})
	}
	return rep, err
}
