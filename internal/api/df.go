package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/internal/engine"
	volstore "github.com/berth-dev/berth/internal/volume"
)

// legacyDiskUsage is /system/df's answer before API 1.52 (docker CLI 28
// speaks 1.50): flat lists, the client sums them up.
type legacyDiskUsage struct {
	LayersSize int64
	Images     []imagetypes.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []build.CacheRecord
}

// systemDiskUsage serves GET /system/df: images with the space their
// layers take (layers shared between images counted once, as SharedSize),
// containers with the size of what they wrote, the build cache's entries
// (build.go).
func (s *Server) systemDiskUsage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	types := r.URL.Query()["type"]
	want := func(t system.DiskUsageObject) bool { return len(types) == 0 || slices.Contains(types, string(t)) }
	var du legacyDiskUsage
	ctrs := s.eng.List()
	if want(system.ImageObject) {
		imgs, layers, err := s.imageUsage(ctx, ctrs)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		du.Images, du.LayersSize = imgs, layers
	}
	if want(system.ContainerObject) {
		sizes := imageSizes{}
		for _, c := range ctrs {
			du.Containers = append(du.Containers, s.sizedSummary(ctx, c, sizes))
		}
	}
	if want(system.VolumeObject) {
		vols, err := s.eng.VolumeList(nil)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		for _, v := range vols {
			av := apiVolume(v)
			av.UsageData = &volume.UsageData{RefCount: int64(v.RefCount), Size: volstore.DirSize(v.Mountpoint)}
			du.Volumes = append(du.Volumes, av)
		}
	}
	var cacheUsage *build.DiskUsage
	if want(system.BuildCacheObject) {
		var err error
		if du.BuildCache, cacheUsage, err = s.buildCacheUsage(r); err != nil {
			s.writeErr(w, err)
			return
		}
	}
	if versionLess(requestVersion(r), "1.52") {
		du.Images, du.Containers = nonNilSlice(du.Images), nonNilSlice(du.Containers)
		du.Volumes, du.BuildCache = nonNilSlice(du.Volumes), nonNilSlice(du.BuildCache)
		writeJSON(w, http.StatusOK, du)
		return
	}
	verbose := boolParam(r, "verbose")
	var out system.DiskUsage
	if want(system.ImageObject) {
		// Reclaimable as docker counts it: all but what the images in
		// use hold alone.
		iu := &imagetypes.DiskUsage{TotalCount: int64(len(du.Images)), TotalSize: du.LayersSize, Reclaimable: du.LayersSize}
		for _, im := range du.Images {
			if im.Containers > 0 {
				iu.ActiveCount++
				iu.Reclaimable -= im.Size - im.SharedSize
			}
		}
		if verbose {
			iu.Items = du.Images
		}
		out.ImageUsage = iu
	}
	if want(system.ContainerObject) {
		cu := &container.DiskUsage{TotalCount: int64(len(du.Containers))}
		for _, c := range du.Containers {
			cu.TotalSize += c.SizeRw
			if c.State == container.StateRunning || c.State == container.StatePaused {
				cu.ActiveCount++
			} else {
				cu.Reclaimable += c.SizeRw
			}
		}
		if verbose {
			cu.Items = du.Containers
		}
		out.ContainerUsage = cu
	}
	if want(system.VolumeObject) {
		vu := &volume.DiskUsage{TotalCount: int64(len(du.Volumes))}
		for _, v := range du.Volumes {
			vu.TotalSize += v.UsageData.Size
			if v.UsageData.RefCount > 0 {
				vu.ActiveCount++
			} else {
				vu.Reclaimable += v.UsageData.Size
			}
		}
		if verbose {
			vu.Items = du.Volumes
		}
		out.VolumeUsage = vu
	}
	if want(system.BuildCacheObject) {
		out.BuildCacheUsage = cacheUsage
		if verbose {
			out.BuildCacheUsage.Items = du.BuildCache
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// imageUsage lists the images with their users and shared sizes, and the
// size of all their layers, each layer once.
func (s *Server) imageUsage(ctx context.Context, ctrs []engine.Container) ([]imagetypes.Summary, int64, error) {
	list, err := s.images.List(ctx)
	if err != nil {
		return nil, 0, err
	}
	users := map[string]int64{}
	for _, c := range ctrs {
		users[c.ImageID]++
	}
	chains := make([][]string, len(list))
	refs := map[string]int{}
	size := map[string]int64{}
	for i, im := range list {
		d, err := s.images.Inspect(ctx, im.ID.String())
		if err != nil {
			return nil, 0, err
		}
		for _, ch := range d.ChainIDs {
			k := ch.String()
			chains[i] = append(chains[i], k)
			refs[k]++
			if _, ok := size[k]; !ok {
				if u, err := s.images.Snapshots().Usage(ctx, k); err == nil {
					size[k] = u.Size
				}
			}
		}
	}
	var total int64
	for _, n := range size {
		total += n
	}
	out := make([]imagetypes.Summary, 0, len(list))
	for i, im := range list {
		sum := imageSummary(im)
		sum.Containers = users[im.ID.String()]
		sum.SharedSize = 0
		for _, k := range chains[i] {
			if refs[k] > 1 {
				sum.SharedSize += size[k]
			}
		}
		out = append(out, sum)
	}
	return out, total, nil
}

// imageSizes remembers image sizes over one request: listing N
// containers of one image inspects it once.
type imageSizes map[string]int64

// sizedSummary is a container's list entry with its sizes.
func (s *Server) sizedSummary(ctx context.Context, c engine.Container, sizes imageSizes) container.Summary {
	sum := s.summary(c)
	sum.SizeRw, sum.SizeRootFs = s.containerSizes(ctx, c, sizes)
	return sum
}

// containerSizes is what a container wrote, and that plus its image.
func (s *Server) containerSizes(ctx context.Context, c engine.Container, sizes imageSizes) (rw, rootFs int64) {
	rw, err := s.eng.SizeRw(ctx, c.ID)
	if err != nil {
		s.log.Warn("container size", "id", c.ID, "err", err)
	}
	size, ok := sizes[c.ImageID]
	if !ok {
		if d, err := s.images.Inspect(ctx, c.ImageID); err == nil {
			size = d.Size
		}
		sizes[c.ImageID] = size
	}
	return rw, rw + size
}
