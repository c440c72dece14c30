package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"

	"github.com/berth-dev/berth/internal/builder"
	"github.com/berth-dev/berth/internal/builder/buildcontext"
	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// builder returns a Builder for one request: it holds no state of its own
// (the cache is in the metadata database), so making one is cheap.
func (s *Server) builder(r *http.Request) (*builder.Builder, error) {
	kc, err := buildKeychain(r)
	if err != nil {
		return nil, err
	}
	pull := func(ctx context.Context, ref string, out io.Writer) error {
		client := s.distributionClientFor(kc)
		img, err := client.Pull(ctx, ref, distribution.PullOptions{Progress: func(p distribution.Progress) {
			// The classic builder shows a pull as plain lines, without
			// the byte counts.
			var line string
			switch p.Status {
			case distribution.StatusPullingFrom:
				line = p.ID + ": " + p.Status + " " + p.Detail
			case distribution.StatusPullComplete, distribution.StatusAlreadyExists:
				line = p.ID + ": " + p.Status
			case distribution.StatusDigest:
				line = "Digest: " + p.Detail
			case distribution.StatusDownloadedNewer, distribution.StatusImageUpToDate:
				line = "Status: " + p.Status + " " + p.Detail
			default:
				return
			}
			fmt.Fprintln(out, line)
		}})
		if err != nil {
			return err
		}
		s.eng.Emit("image", "pull", img.Name, nil)
		return nil
	}
	return builder.New(builder.Config{
		Images: s.images, Runner: s.eng, Pull: pull,
		WorkDir: filepath.Join(s.info.Root, "builder"), CacheMountDir: filepath.Join(s.info.Root, "builder-mounts"),
		Logger: s.log,
	})
}

// streamWriter turns builder output into docker's {"stream": ...} lines.
type streamWriter struct{ js *jsonStream }

func (w streamWriter) Write(p []byte) (int, error) {
	w.js.stream(string(p))
	return len(p), nil
}

// build serves POST /build with the classic builder's protocol: the body
// is the context (a tar, maybe compressed, or a lone Dockerfile), the
// answer a JSON stream of step lines, RUN output, an aux line with the
// image ID and docker's closing lines.
func (s *Server) build(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("remote") != "" {
		s.writeErr(w, fmt.Errorf("remote build contexts are not supported: %w", errdefs.ErrNotImplemented))
		return
	}
	if q.Get("version") == "2" {
		s.writeErr(w, fmt.Errorf("BuildKit is not supported by this daemon: use the classic builder (DOCKER_BUILDKIT=0): %w", errdefs.ErrNotImplemented))
		return
	}
	opts := builder.Options{
		Dockerfile:  q.Get("dockerfile"),
		Tags:        q["t"],
		Target:      q.Get("target"),
		NoCache:     boolParam(r, "nocache"),
		Pull:        boolParam(r, "pull"),
		Platform:    q.Get("platform"),
		NetworkMode: q.Get("networkmode"),
	}
	for name, dst := range map[string]*int64{
		"memory": &opts.Limits.Memory, "memswap": &opts.Limits.MemorySwap, "cpushares": &opts.Limits.CPUShares,
		"cpuquota": &opts.Limits.CPUQuota, "cpuperiod": &opts.Limits.CPUPeriod, "shmsize": &opts.Limits.ShmSize,
	} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				s.writeErr(w, badParam("invalid %s %q", name, v))
				return
			}
			*dst = n
		}
	}
	opts.Limits.CpusetCpus, opts.Limits.CpusetMems = q.Get("cpusetcpus"), q.Get("cpusetmems")
	if h := strings.TrimSpace(r.Header.Get(BuildSecretsHeader)); h != "" {
		if err := decodeAuthHeader(BuildSecretsHeader, h, &opts.Secrets); err != nil {
			s.writeErr(w, err)
			return
		}
	}
	for _, h := range q["extrahosts"] {
		// The docker CLI sends one parameter per --add-host (name:ip).
		if name, ip, ok := strings.Cut(h, ":"); !ok || name == "" || net.ParseIP(ip) == nil {
			s.writeErr(w, badParam("invalid IP address in add-host: %q", h))
			return
		}
		opts.ExtraHosts = append(opts.ExtraHosts, h)
	}
	switch opts.NetworkMode {
	case "", "default", "bridge", "none":
		opts.NetworkMode = ""
	case "host":
	default:
		s.writeErr(w, badParam("network mode %q is not supported by the builder", opts.NetworkMode))
		return
	}
	for _, t := range opts.Tags {
		if _, err := image.ParseReference(t); err != nil {
			s.writeErr(w, badParam("invalid reference format: %s", t))
			return
		}
	}
	if v := q.Get("buildargs"); v != "" {
		if err := json.Unmarshal([]byte(v), &opts.BuildArgs); err != nil {
			s.writeErr(w, badParam("invalid buildargs: %v", err))
			return
		}
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &opts.Labels); err != nil {
			s.writeErr(w, badParam("invalid labels: %v", err))
			return
		}
	}
	b, err := s.builder(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	dir, err := os.MkdirTemp(filepath.Join(s.info.Root, "builder"), "context-")
	if err != nil {
		s.writeErr(w, err)
		return
	}
	defer os.RemoveAll(dir)
	bc, err := buildcontext.Unpack(r.Context(), r.Body, dir, opts.Dockerfile)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	opts.Hidden = bc.Hidden
	js := newJSONStream(w)
	var out io.Writer = streamWriter{js}
	quiet := boolParam(r, "q")
	if quiet {
		out = io.Discard
	}
	res, err := b.Build(r.Context(), bc.Dir, bc.DockerfileOnly, opts, out)
	var exit *builder.ExitError
	if errors.As(err, &exit) {
		// docker's CLI exits with the failed command's code.
		msg := err.Error()
		js.write(message{Message: jsonstream.Message{Error: &jsonstream.Error{Code: exit.Code, Message: msg}}, ErrorMessage: msg})
		return
	}
	if err != nil {
		js.fail(s, clientError{err})
		return
	}
	aux, _ := json.Marshal(buildtypes.Result{ID: res.ID.String()})
	raw := json.RawMessage(aux)
	js.write(message{Message: jsonstream.Message{Aux: &raw}})
	if quiet {
		js.stream(res.ID.String() + "\n")
	} else {
		js.stream("Successfully built " + res.ID.Encoded()[:12] + "\n")
		for _, t := range res.Tags {
			js.stream("Successfully tagged " + t + "\n")
		}
	}
	for _, t := range res.Tags {
		s.eng.Emit("image", "tag", t, nil)
	}
}

// buildPrune serves POST /build/prune (docker builder prune): the whole
// cache, or with an until filter what is older (keep-storage and the
// other filters are not supported yet).
func (s *Server) buildPrune(w http.ResponseWriter, r *http.Request) {
	b, err := s.builder(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	f, err := listFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var keepEntry func(time.Time) bool
	for k, vals := range f {
		if k != "until" || len(vals) != 1 {
			s.writeErr(w, badParam("invalid filter '%s'", k))
			return
		}
		// A duration (before now) or a time, as docker's builder prune.
		until, err := eventTime(vals[0])
		if d, derr := time.ParseDuration(vals[0]); derr == nil {
			until, err = time.Now().Add(-d), nil
		}
		if err != nil {
			s.writeErr(w, err)
			return
		}
		keepEntry = func(created time.Time) bool { return created.After(until) }
	}
	keys, freed, err := b.Prune(r.Context(), keepEntry)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if keys == nil {
		keys = []string{}
	}
	writeJSON(w, http.StatusOK, buildtypes.CachePruneReport{CachesDeleted: keys, SpaceReclaimed: freed})
}

// clientError words an error for a stream's error line as writeErr words
// it for a status: without the class suffix (": invalid argument").
type clientError struct{ err error }

func (e clientError) Error() string {
	msg := e.err.Error()
	for _, c := range classStatus {
		if errors.Is(e.err, c.err) {
			return strings.TrimSuffix(msg, ": "+c.err.Error())
		}
	}
	return msg
}

func (e clientError) Unwrap() error { return e.err }

// buildCacheUsage is the build cache for /system/df: every entry is
// reclaimable (builder prune drops them all; their layers go unless an
// image holds them).
func (s *Server) buildCacheUsage(r *http.Request) ([]buildtypes.CacheRecord, *buildtypes.DiskUsage, error) {
	b, err := s.builder(r)
	if err != nil {
		return nil, nil, err
	}
	recs, err := b.CacheUsage(r.Context())
	if err != nil {
		return nil, nil, err
	}
	out := []buildtypes.CacheRecord{}
	du := &buildtypes.DiskUsage{TotalCount: int64(len(recs))}
	for _, rec := range recs {
		last := rec.CreatedAt
		out = append(out, buildtypes.CacheRecord{ID: rec.ID, Type: "regular", Description: rec.Description,
			Size: rec.Size, CreatedAt: rec.CreatedAt, LastUsedAt: &last, Shared: true})
	}
	// Every entry is a layer an image holds too (Shared): docker counts
	// shared entries in no total (its client did so before API 1.52).
	du.TotalSize, du.Reclaimable = 0, 0
	return out, du, nil
}

// BuildSecretsHeader carries `berth build --secret` contents to the daemon
// (base64url JSON of id → bytes): the classic build protocol has no other
// way, and docker's BuildKit session is not spoken here.
const BuildSecretsHeader = "X-Berth-Build-Secrets"

// buildKeychain reads X-Registry-Config: the docker CLI sends a build every
// credential it has (base64url JSON, registry → auth config), since the
// Dockerfile decides which images get pulled.
func buildKeychain(r *http.Request) (authn.Keychain, error) {
	h := strings.TrimSpace(r.Header.Get("X-Registry-Config"))
	if h == "" {
		return staticKeychain{authn.Anonymous}, nil
	}
	var configs map[string]registry.AuthConfig
	if err := decodeAuthHeader("X-Registry-Config", h, &configs); err != nil {
		return nil, err
	}
	kc := registryKeychain{}
	for server, ac := range configs {
		kc[registryHost(server)] = authn.FromConfig(authn.AuthConfig{
			Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
			IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
		})
	}
	return kc, nil
}

// registryKeychain answers each registry host with its own credentials.
type registryKeychain map[string]authn.Authenticator

func (k registryKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[registryHost(res.RegistryStr())]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}
