package engine

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/errdefs"
)

// CommitOptions are docker commit's parameters.
type CommitOptions struct {
	Ref     string // repository[:tag] to name the image, "" for none
	Comment string
	Author  string
	Changes []string          // Dockerfile instructions (--change)
	Config  *container.Config // the request body: overrides of the container's config
	Pause   bool              // freeze a running container while its changes are read
}

// Commit makes an image of container ref: its image's layers plus one
// layer of what the container changed (the overlay upper as a layer
// diff), configured as the container runs (docker's merge of the given
// config and changes over the container's config). It returns the image ID.
func (e *Engine) Commit(ctx context.Context, ref string, o CommitOptions) (string, error) {
	c, err := e.Get(ref)
	if err != nil {
		return "", err
	}
	if c.State.Status == StatusRemoving || c.State.Status == StatusDead {
		return "", fmt.Errorf("You cannot commit container %s which is marked for removal: %w", c.ID, errdefs.ErrConflict)
	}
	cfg := &container.Config{}
	if o.Config != nil {
		cfg = cloneConfig(o.Config)
	}
	if err := ApplyChanges(cfg, o.Changes); err != nil {
		return "", err
	}
	mergeCommitConfig(cfg, c.Config)

	if o.Pause && c.State.Running() && !c.State.Paused {
		if err := e.Pause(ctx, c.ID); err != nil {
			return "", err
		}
		defer func() {
			if err := e.Unpause(context.WithoutCancel(ctx), c.ID); err != nil && !errdefs.IsConflict(err) {
				e.log.Warn("unpause after commit", "id", c.ID, "err", err)
			}
		}()
	}
	upper, lowers, err := e.layerDirs(ctx, c.ID)
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(archive.Diff(ctx, lowers, upper, pw, archive.DiffOptions{}))
	}()
	now := time.Now().UTC()
	img := dockerspec.DockerOCIImage{Image: v1.Image{Created: &now, Author: o.Author}}
	img.Config.ImageConfig = ImageConfigOf(cfg)
	img.Config.OnBuild = cfg.OnBuild
	if hc := cfg.Healthcheck; hc != nil {
		img.Config.Healthcheck = &dockerspec.HealthcheckConfig{Test: hc.Test, Interval: hc.Interval, Timeout: hc.Timeout,
			StartPeriod: hc.StartPeriod, StartInterval: hc.StartInterval, Retries: hc.Retries}
	}
	hist := v1.History{Created: &now, Author: o.Author, Comment: o.Comment,
		CreatedBy: strings.Join(append(slices.Clone(c.Config.Entrypoint), c.Config.Cmd...), " ")}
	out, err := e.images.AppendLayer(ctx, o.Ref, c.ImageID, img, hist, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", c.ID, err)
	}
	e.mu.Lock()
	if cc, ok := e.byID[c.ID]; ok {
		e.emitContainer(cc, "commit", map[string]string{"comment": o.Comment, "imageID": out.ID.String(), "imageRef": o.Ref})
	}
	e.mu.Unlock()
	return out.ID.String(), nil
}

// mergeCommitConfig fills what cfg leaves out from the container's
// config, docker's rules: the container's command when cfg has none, its
// entrypoint unless cfg set one (even empty), env and labels merged key by
// key (cfg's win), exposed ports and volumes added up.
func mergeCommitConfig(cfg, ctr *container.Config) {
	if cfg.User == "" {
		cfg.User = ctr.User
	}
	if len(cfg.Entrypoint) == 0 {
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = slices.Clone(ctr.Cmd)
		}
		if cfg.Entrypoint == nil {
			cfg.Entrypoint = slices.Clone(ctr.Entrypoint)
		}
	}
	env := slices.Clone(ctr.Env)
	for _, kv := range cfg.Env {
		env = setEnv(env, kv)
	}
	cfg.Env = env
	labels := maps.Clone(ctr.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, cfg.Labels)
	cfg.Labels = labels
	if len(ctr.ExposedPorts) > 0 {
		ports := maps.Clone(ctr.ExposedPorts)
		maps.Copy(ports, cfg.ExposedPorts)
		cfg.ExposedPorts = ports
	}
	if len(ctr.Volumes) > 0 {
		vols := maps.Clone(ctr.Volumes)
		maps.Copy(vols, cfg.Volumes)
		cfg.Volumes = vols
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = ctr.WorkingDir
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = ctr.StopSignal
	}
	if cfg.Healthcheck == nil {
		cfg.Healthcheck = ctr.Healthcheck
	}
}

// ImageConfigOf is the OCI image config of a container config.
func ImageConfigOf(cfg *container.Config) v1.ImageConfig {
	ic := v1.ImageConfig{
		User: cfg.User, Env: cfg.Env, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd,
		WorkingDir: cfg.WorkingDir, Labels: cfg.Labels, StopSignal: cfg.StopSignal,
	}
	if len(cfg.ExposedPorts) > 0 {
		ic.ExposedPorts = map[string]struct{}{}
		for p := range cfg.ExposedPorts {
			ic.ExposedPorts[p.String()] = struct{}{}
		}
	}
	if len(cfg.Volumes) > 0 {
		ic.Volumes = maps.Clone(cfg.Volumes)
	}
	return ic
}
