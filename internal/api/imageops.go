package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/imagearchive"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// imageCreate serves POST /images/create: a pull (fromImage) or an import
// of a root filesystem tarball (fromSrc=-, the request body).
func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if src := q.Get("fromSrc"); src != "" {
		s.imageImport(w, r, src)
		return
	}
	from := q.Get("fromImage")
	if from == "" {
		s.writeErr(w, badParam("fromImage or fromSrc is required"))
		return
	}
	ref := joinRef(from, q.Get("tag"))
	if _, err := image.ParseReference(ref); err != nil {
		s.writeErr(w, err)
		return
	}
	platform, err := platformParam(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	opts := distribution.PullOptions{Platform: platform}
	client, err := s.distributionClient(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	js := newJSONStream(w)
	opts.Progress = js.progress
	img, err := client.Pull(r.Context(), ref, opts)
	if err != nil {
		js.fail(s, err)
		return
	}
	s.eng.Emit("image", "pull", img.Name, nil)
}

// platformParam reads the optional platform query parameter.
func platformParam(r *http.Request) (*image.Platform, error) {
	p := r.URL.Query().Get("platform")
	if p == "" {
		return nil, nil
	}
	pl, err := image.ParsePlatform(p)
	if err != nil {
		return nil, err
	}
	return &pl, nil
}

// joinRef is docker's way of putting fromImage and tag together: a tag
// that is a digest makes a digest reference.
func joinRef(name, tag string) string {
	switch {
	case tag == "":
		return name
	case strings.Contains(tag, ":"):
		return name + "@" + tag
	}
	return name + ":" + tag
}

func (s *Server) imageImport(w http.ResponseWriter, r *http.Request, src string) {
	q := r.URL.Query()
	body := io.Reader(r.Body)
	if src != "-" {
		// docker's: the daemon downloads the tarball; a bare host[/path]
		// is an http URL.
		u, err := url.Parse(src)
		if err != nil || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") {
			s.writeErr(w, fmt.Errorf("invalid fromSrc %q: not an http or https URL: %w", src, errdefs.ErrInvalidArgument))
			return
		}
		if u.Scheme == "" {
			if u, err = url.Parse("http://" + src); err != nil {
				s.writeErr(w, fmt.Errorf("invalid fromSrc %q: %w", src, errdefs.ErrInvalidArgument))
				return
			}
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
		if err != nil {
			s.writeErr(w, fmt.Errorf("invalid fromSrc %q: %w", src, errdefs.ErrInvalidArgument))
			return
		}
		client := &http.Client{Transport: distribution.Guard(http.DefaultTransport)}
		resp, err := client.Do(req)
		if err != nil {
			s.writeErr(w, fmt.Errorf("import from %s: %w", u.Redacted(), err))
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			s.writeErr(w, fmt.Errorf("import from %s: %s: %w", u.Redacted(), resp.Status, errdefs.ErrInvalidArgument))
			return
		}
		body = resp.Body
	}
	ref := ""
	if repo := q.Get("repo"); repo != "" {
		ref = joinRef(repo, q.Get("tag"))
		if _, err := image.ParseReference(ref); err != nil {
			s.writeErr(w, err)
			return
		}
	}
	platform, err := platformParam(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	opts := imagearchive.ImportOptions{Platform: platform}
	if changes := q["changes"]; len(changes) > 0 {
		var cfg container.Config
		if err := engine.ApplyChanges(&cfg, changes); err != nil {
			s.writeErr(w, err)
			return
		}
		opts.Config = engine.ImageConfigOf(&cfg)
	}
	img, err := imagearchive.New(s.images).Import(r.Context(), body, ref, opts)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	newJSONStream(w).status("", img.ID.String())
	s.eng.Emit("image", "import", img.ID.String(), nil)
}

// imagePost serves POST /images/<name>/push and /images/<name>/tag (names
// hold slashes, so the action is the path's last element).
func (s *Server) imagePost(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("name")
	if name, ok := strings.CutSuffix(rest, "/push"); ok && name != "" {
		s.imagePush(w, r, name)
		return
	}
	if name, ok := strings.CutSuffix(rest, "/tag"); ok && name != "" {
		s.imageTag(w, r, name)
		return
	}
	writeError(w, http.StatusNotFound, "page not found")
}

func (s *Server) imagePush(w http.ResponseWriter, r *http.Request, name string) {
	ref := joinRef(name, r.URL.Query().Get("tag"))
	pr, err := image.ParseReference(ref)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if !pr.IsTagged() && pr.Digest == "" {
		s.writeErr(w, badParam("push %s: a tag or digest is required", ref))
		return
	}
	if _, err := s.images.Get(r.Context(), pr.String()); err != nil {
		s.writeErr(w, fmt.Errorf("An image does not exist locally with the tag: %s: %w", pr.Name(), errdefs.ErrNotFound))
		return
	}
	client, err := s.distributionClient(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	js := newJSONStream(w)
	desc, err := client.Push(r.Context(), pr.String(), distribution.PushOptions{Progress: js.progress})
	if err != nil {
		js.fail(s, err)
		return
	}
	aux, _ := json.Marshal(map[string]any{"Tag": pr.Tag, "Digest": desc.Digest.String(), "Size": desc.Size})
	raw := json.RawMessage(aux)
	js.write(message{Message: jsonstream.Message{Progress: &jsonstream.Progress{}, Aux: &raw}})
	s.eng.Emit("image", "push", pr.String(), nil)
}

func (s *Server) imageTag(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	repo := q.Get("repo")
	if repo == "" {
		s.writeErr(w, badParam("repository name is required"))
		return
	}
	tag := q.Get("tag")
	if tag == "" {
		tag = "latest"
	}
	if strings.Contains(tag, ":") || strings.Contains(repo, "@") {
		s.writeErr(w, badParam("refusing to create a tag with a digest reference"))
		return
	}
	img, err := s.images.Tag(r.Context(), name, repo+":"+tag)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
	s.eng.Emit("image", "tag", img.ID.String(), map[string]string{"name": img.Name})
}

func (s *Server) imageDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	res, err := s.images.Remove(r.Context(), name, image.RemoveOptions{Force: boolParam(r, "force"), NoPrune: boolParam(r, "noprune")})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := []imagetypes.DeleteResponse{}
	for _, x := range res {
		out = append(out, imagetypes.DeleteResponse{Untagged: x.Untagged, Deleted: string(x.Deleted)})
		if x.Untagged != "" {
			s.eng.Emit("image", "untag", x.Untagged, nil)
		}
		if x.Deleted != "" {
			s.eng.Emit("image", "delete", string(x.Deleted), nil)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// imageSave serves GET /images/get?names=... and GET /images/<name>/get:
// a docker-save tarball. Names are checked first, so an unknown one is a
// 404 rather than a cut stream.
func (s *Server) imageSave(w http.ResponseWriter, r *http.Request, names []string) {
	if names == nil {
		names = r.URL.Query()["names"]
	}
	if len(names) == 0 {
		s.writeErr(w, badParam("no image names given"))
		return
	}
	for _, n := range names {
		if _, err := s.images.Get(r.Context(), n); err != nil {
			s.writeErr(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	if err := imagearchive.New(s.images).Save(r.Context(), w, names...); err != nil {
		s.log.Warn("image save", "names", names, "err", err)
		return
	}
	for _, n := range names {
		s.eng.Emit("image", "save", n, nil)
	}
}

func (s *Server) imageSaveQuery(w http.ResponseWriter, r *http.Request) { s.imageSave(w, r, nil) }

func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) {
	imgs, err := imagearchive.New(s.images).Load(r.Context(), r.Body)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	js := newJSONStream(w)
	if len(imgs) == 0 {
		js.stream("")
	}
	for _, img := range imgs {
		if ref, ok := img.Reference(); ok && ref.IsTagged() {
			js.stream("Loaded image: " + ref.Familiar() + "\n")
		} else {
			js.stream("Loaded image ID: " + img.ID.String() + "\n")
		}
		s.eng.Emit("image", "load", img.ID.String(), nil)
	}
}

func (s *Server) imagePrune(w http.ResponseWriter, r *http.Request) {
	f, err := listFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	all := false
	for k, vals := range f {
		if k != "dangling" {
			s.writeErr(w, badParam("invalid filter '%s'", k))
			return
		}
		for _, v := range vals {
			switch strings.ToLower(v) {
			case "false", "0":
				all = true
			case "true", "1":
			default:
				s.writeErr(w, badParam("invalid filter 'dangling=%s'", v))
				return
			}
		}
	}
	rep, err := s.images.Prune(r.Context(), image.PruneOptions{All: all})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := imagetypes.PruneReport{ImagesDeleted: []imagetypes.DeleteResponse{}, SpaceReclaimed: uint64(max(rep.GC.Bytes, 0))}
	for _, x := range rep.Removed {
		out.ImagesDeleted = append(out.ImagesDeleted, imagetypes.DeleteResponse{Untagged: x.Untagged, Deleted: string(x.Deleted)})
	}
	writeJSON(w, http.StatusOK, out)
	s.eng.Emit("image", "prune", "", map[string]string{"reclaimed": itoa(int64(out.SpaceReclaimed))})
}

// imageHistory lists the config's history newest first, as docker does:
// the top entry carries the image ID and tags, the others "<missing>"
// (their intermediate images exist only on the machine that built them);
// sizes are those of the (compressed) layers the non-empty steps made.
func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) {
	d, err := s.images.Inspect(r.Context(), name)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	hist := d.Image.History
	out := make([]imagetypes.HistoryResponseItem, 0, len(hist))
	layer := 0
	for _, h := range hist {
		item := imagetypes.HistoryResponseItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, Tags: []string{}}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		if !h.EmptyLayer && layer < len(d.Layers) {
			item.Size = d.Layers[layer].Size
			layer++
		}
		out = append(out, item)
	}
	// An image whose config has no history has none to show: docker
	// answers an empty list too.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > 0 {
		out[0].ID = d.ID.String()
		out[0].Tags = nonNil(d.RepoTags)
	}
	writeJSON(w, http.StatusOK, out)
}
