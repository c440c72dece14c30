package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	imagetypes "github.com/moby/moby/api/types/image"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
)

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) {
	list, err := s.images.List(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := []imagetypes.Summary{}
	for _, im := range list {
		if !boolParam(r, "all") && len(im.RepoTags) == 0 && len(im.RepoDigests) == 0 {
			// dangling images are listed too by docker unless filtered
		}
		out = append(out, imageSummary(im))
	}
	writeJSON(w, http.StatusOK, out)
}

// imageSummary is an image as the list shows it: sharing and users are
// only counted by /system/df.
func imageSummary(im image.Summary) imagetypes.Summary {
	return imagetypes.Summary{
		ID:          im.ID.String(),
		RepoTags:    nonNil(im.RepoTags),
		RepoDigests: nonNil(im.RepoDigests),
		Created:     im.Created.Unix(),
		Size:        im.Size,
		SharedSize:  -1,
		Containers:  -1,
		Labels:      map[string]string{},
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// imageGet serves GET /images/<name>/json; names contain slashes, so the
// route takes the rest of the path and the suffix picks the action.
func (s *Server) imageGet(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("name")
	if name, ok := strings.CutSuffix(rest, "/history"); ok && name != "" {
		s.imageHistory(w, r, name)
		return
	}
	if name, ok := strings.CutSuffix(rest, "/get"); ok && name != "" {
		s.imageSave(w, r, []string{name})
		return
	}
	name, ok := strings.CutSuffix(rest, "/json")
	if !ok || name == "" {
		writeError(w, http.StatusNotFound, "page not found")
		return
	}
	d, err := s.images.Inspect(r.Context(), name)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var layers []string
	for _, l := range d.Image.RootFS.DiffIDs {
		layers = append(layers, l.String())
	}
	created := ""
	if d.Image.Created != nil {
		created = d.Image.Created.UTC().Format(time.RFC3339Nano)
	}
	cfg := &dockerspec.DockerOCIImageConfig{ImageConfig: d.Image.Config}
	// docker's own fields (Healthcheck, OnBuild, Shell) are only in the
	// config blob: the image service decodes the OCI subset.
	var comment struct {
		Comment string `json:"comment"` // docker commit's message
	}
	if raw, err := content.ReadBlob(r.Context(), s.images.Content(), d.Config); err == nil {
		var full dockerspec.DockerOCIImage
		if json.Unmarshal(raw, &full) == nil {
			cfg = &full.Config
		}
		_ = json.Unmarshal(raw, &comment)
	}
	resp := imagetypes.InspectResponse{
		ID:           d.ID.String(),
		RepoTags:     nonNil(d.RepoTags),
		RepoDigests:  nonNil(d.RepoDigests),
		Created:      created,
		Author:       d.Image.Author,
		Comment:      comment.Comment,
		Config:       cfg,
		Architecture: d.Image.Architecture,
		Variant:      d.Image.Variant,
		Os:           d.Image.OS,
		Size:         d.Size,
		RootFS:       imagetypes.RootFS{Type: "layers", Layers: layers},
	}
	writeJSON(w, http.StatusOK, resp)
}
