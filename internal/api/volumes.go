package api

import (
	"net/http"
	"time"

	"github.com/moby/moby/api/types/container"
	apivolume "github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/volume"
)

func (s *Server) volumeRoutes() {
	m := s.mux
	m.HandleFunc("GET /volumes", s.volumeList)
	m.HandleFunc("POST /volumes/create", s.volumeCreate)
	m.HandleFunc("POST /volumes/prune", s.volumePrune)
	m.HandleFunc("GET /volumes/{name}", s.volumeInspect)
	m.HandleFunc("DELETE /volumes/{name}", s.volumeRemove)
}

func apiVolume(v volume.Volume) apivolume.Volume {
	return apivolume.Volume{
		Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint,
		CreatedAt: v.CreatedAt.Format(time.RFC3339), Labels: v.Labels,
		Options: v.Options, Scope: "local",
	}
}

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) {
	f, err := listFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	vols, err := s.eng.VolumeList(volume.Filters(f))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	resp := apivolume.ListResponse{Volumes: []apivolume.Volume{}, Warnings: []string{}}
	for _, v := range vols {
		resp.Volumes = append(resp.Volumes, apiVolume(v))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) {
	var req apivolume.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	if req.ClusterVolumeSpec != nil {
		s.writeErr(w, badParam("cluster volumes are not supported"))
		return
	}
	v, err := s.eng.VolumeCreate(req.Name, volume.CreateOptions{Driver: req.Driver, Labels: req.Labels, Options: req.DriverOpts})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiVolume(v))
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) {
	v, err := s.eng.VolumeGet(r.PathValue("name"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiVolume(v))
}

func (s *Server) volumeRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.VolumeRemove(r.PathValue("name"), boolParam(r, "force")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) volumePrune(w http.ResponseWriter, r *http.Request) {
	f, err := listFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if _, ok := f["all"]; !ok && versionLess(requestVersion(r), "1.42") {
		f["all"] = []string{"true"} // before API 1.42 prune took named volumes too
	}
	rep, err := s.eng.VolumePrune(volume.Filters(f))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if rep.Deleted == nil {
		rep.Deleted = []string{}
	}
	writeJSON(w, http.StatusOK, apivolume.PruneReport{VolumesDeleted: rep.Deleted, SpaceReclaimed: rep.SpaceReclaimed})
}

// usesVolume is ps's volume filter: a mount of c named v, or at v.
func usesVolume(c engine.Container, v string) bool {
	for _, m := range c.MountPoints {
		if m.Name == v || m.Destination == v || m.Source == v {
			return true
		}
	}
	return false
}

// mountPoints is a container's inspect "Mounts".
func mountPoints(c engine.Container) []container.MountPoint {
	out := make([]container.MountPoint, 0, len(c.MountPoints))
	for _, m := range c.MountPoints {
		out = append(out, m.API())
	}
	return out
}
