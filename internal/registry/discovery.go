package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
)

// maxPage caps n so one request cannot ask for the whole database at once
// in a single allocation; clients follow the Link header for more.
const maxPage = 10000

// pageParams reads n and last. n < 0 means "no limit asked".
func pageParams(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = -1
	if v := q.Get("n"); v != "" {
		n, err = strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "", newError(http.StatusBadRequest, codeUnsupported, "invalid n").with(map[string]string{"n": v})
		}
	}
	if n > maxPage {
		n = maxPage
	}
	return n, q.Get("last"), nil
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", sizeHeader(int64(len(b))))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}

// setNext adds the Link header that points at the next page.
func setNext(w http.ResponseWriter, path, last string, n int) {
	q := url.Values{}
	q.Set("last", last)
	q.Set("n", strconv.Itoa(n))
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func (s *Server) serveTags(w http.ResponseWriter, r *http.Request, rt route) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errMethod
	}
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	tags, more, err := s.db.Tags(r.Context(), rt.name, last, n)
	if errdefs.IsNotFound(err) {
		return newError(http.StatusNotFound, codeNameUnknown, "repository name not known to registry").with(map[string]string{"name": rt.name})
	}
	if err != nil {
		return err
	}
	if more && len(tags) > 0 {
		setNext(w, "/v2/"+rt.name+"/tags/list", tags[len(tags)-1], n)
	}
	return writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, tags})
}

func (s *Server) serveCatalog(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errMethod
	}
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	repos, more, err := s.db.Repositories(r.Context(), last, n)
	if err != nil {
		return err
	}
	if more && len(repos) > 0 {
		setNext(w, "/v2/_catalog", repos[len(repos)-1], n)
	}
	return writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// serveReferrers answers with an image index of the manifests whose subject
// is the given digest; the subject itself need not exist.
func (s *Server) serveReferrers(w http.ResponseWriter, r *http.Request, rt route) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errMethod
	}
	d, ok := parseDigest(rt.ref)
	if !ok {
		return newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest").with(map[string]string{"digest": rt.ref})
	}
	refs, err := s.db.Referrers(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	filter, filtered := r.URL.Query()["artifactType"]
	descs := []v1.Descriptor{}
	for _, m := range refs {
		if filtered && !contains(filter, m.ArtifactType) {
			continue
		}
		descs = append(descs, v1.Descriptor{
			MediaType: m.MediaType, Digest: m.Digest, Size: m.Size,
			ArtifactType: m.ArtifactType, Annotations: m.Annotations,
		})
	}
	sort.Slice(descs, func(i, j int) bool { return descs[i].Digest < descs[j].Digest })
	if filtered {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	return writeJSON(w, r, v1.MediaTypeImageIndex, idx)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
