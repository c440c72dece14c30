package engine

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
)

type imageConfig = v1.ImageConfig

// CreateResult is what create returns to the client.
type CreateResult struct {
	ID       string
	Warnings []string
}

// Create records a new container from cfg and hc, merging in its image's
// config the way docker does, and prepares its writable snapshot. Nothing
// runs until Start.
func (e *Engine) Create(ctx context.Context, name string, cfg *container.Config, hc *container.HostConfig) (CreateResult, error) {
	return e.CreateWithNetworking(ctx, name, cfg, hc, nil)
}

// CreateWithNetworking is Create with the request's NetworkingConfig
// (--network-alias, --ip, more networks).
func (e *Engine) CreateWithNetworking(ctx context.Context, name string, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) (CreateResult, error) {
	if cfg == nil {
		return CreateResult{}, fmt.Errorf("config cannot be empty in order to create a container: %w", errdefs.ErrInvalidArgument)
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	cfg, hc = cloneConfig(cfg), cloneHostConfig(hc)
	if name != "" {
		var err error
		if name, err = checkName(name); err != nil {
			return CreateResult{}, err
		}
	}
	if cfg.Image == "" {
		return CreateResult{}, fmt.Errorf("no image specified: %w", errdefs.ErrInvalidArgument)
	}
	if err := validateHostConfig(hc); err != nil {
		return CreateResult{}, err
	}
	img, err := e.images.Get(ctx, cfg.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return CreateResult{}, fmt.Errorf("No such image: %s: %w", familiar(cfg.Image), errdefs.ErrNotFound)
		}
		return CreateResult{}, err
	}
	details, err := e.images.Inspect(ctx, img.ID.String())
	if err != nil {
		return CreateResult{}, err
	}
	mergeImageConfig(cfg, details.Image.Config)
	if hc, err := e.imageHealthcheck(ctx, details.Config); err != nil {
		e.log.Warn("image healthcheck", "image", cfg.Image, "err", err)
	} else {
		cfg.Healthcheck = mergeHealthcheck(cfg.Healthcheck, hc)
	}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return CreateResult{}, fmt.Errorf("no command specified: %w", errdefs.ErrInvalidArgument)
	}
	nets, err := e.prepareNetworking(cfg, hc, nc)
	if err != nil {
		return CreateResult{}, err
	}
	id := newID()
	if cfg.Hostname == "" && hc.NetworkMode != "host" && !hc.NetworkMode.IsContainer() {
		cfg.Hostname = id[:12]
	}
	c := &Container{
		ID: id, Created: time.Now().UTC(), Image: cfg.Image, ImageID: img.ID.String(),
		Config: cfg, HostConfig: hc, Networks: nets,
		State:   State{Status: StatusCreated},
		exited:  make(chan struct{}),
		removed: make(chan struct{}),
	}
	argv := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	c.Path, c.Args = argv[0], argv[1:]

	e.mu.Lock()
	if name == "" {
		name = generateName(func(n string) bool { _, ok := e.names[n]; return ok })
	} else if other, ok := e.names[name]; ok {
		e.mu.Unlock()
		return CreateResult{}, fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name: %w",
			name, other, errdefs.ErrConflict)
	}
	c.Name = name
	e.names[name] = id // reserved while the rest is prepared
	e.mu.Unlock()

	ok := false
	defer func() {
		if !ok {
			e.mu.Lock()
			delete(e.names, name)
			e.mu.Unlock()
			_ = e.images.RemoveMounts(context.WithoutCancel(ctx), id)
			_ = os.RemoveAll(e.containerDir(id))
		}
	}()
	if err := os.MkdirAll(e.rootfsPath(id), 0o711); err != nil {
		return CreateResult{}, fmt.Errorf("container dir: %w", err)
	}
	// The log exists from the start (the supervisor appends to it): an
	// attach made before the start holds it open, so a short-lived --rm
	// container's output is read even when the removal unlinks the file
	// before the attach's last read.
	if f, err := os.OpenFile(e.LogPath(id), os.O_WRONLY|os.O_CREATE, 0o640); err == nil {
		f.Close()
	}
	if _, err := e.images.Mounts(ctx, img.ID.String(), id); err != nil {
		return CreateResult{}, fmt.Errorf("prepare rootfs of %s: %w", id, err)
	}
	if err := e.writeEtcFiles(c); err != nil {
		return CreateResult{}, err
	}
	mps, undoMounts, err := e.registerMounts(ctx, id, cfg, hc)
	if err != nil {
		return CreateResult{}, err
	}
	c.MountPoints = mps
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.save(c); err != nil {
		undoMounts()
		return CreateResult{}, err
	}
	e.byID[id] = c
	ok = true
	e.emitContainer(c, "create", nil)
	return CreateResult{ID: id, Warnings: networkWarnings(hc)}, nil
}

func familiar(ref string) string {
	if !strings.ContainsAny(ref, ":@") {
		return ref + ":latest"
	}
	return ref
}

// mergeImageConfig fills what the user left out from the image, docker's
// rules: an entrypoint given by the user drops the image's cmd too.
func mergeImageConfig(cfg *container.Config, img imageConfig) {
	if len(cfg.Entrypoint) == 0 {
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = slices.Clone(img.Cmd)
		}
		if cfg.Entrypoint == nil {
			cfg.Entrypoint = slices.Clone(img.Entrypoint)
		}
	}
	if cfg.User == "" {
		cfg.User = img.User
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = img.WorkingDir
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	// Image env first; the user's value of a variable wins.
	env := slices.Clone(img.Env)
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(x string) bool {
			xk, _, _ := strings.Cut(x, "=")
			return xk == k
		})
		env = append(env, kv)
	}
	cfg.Env = env
	if len(img.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range img.Labels {
			labels[k] = v
		}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		cfg.Labels = labels
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	if len(cfg.ExposedPorts) == 0 && len(img.ExposedPorts) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		for p := range img.ExposedPorts {
			if port, err := network.ParsePort(p); err == nil {
				cfg.ExposedPorts[port] = struct{}{}
			}
		}
	}
	if len(cfg.Volumes) == 0 && len(img.Volumes) > 0 {
		cfg.Volumes = map[string]struct{}{}
		for v := range img.Volumes {
			cfg.Volumes[v] = struct{}{}
		}
	}
}

func validateHostConfig(hc *container.HostConfig) error {
	if err := container.ValidateRestartPolicy(hc.RestartPolicy); err != nil {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	if hc.AutoRemove && hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != container.RestartPolicyDisabled {
		return fmt.Errorf("can't create 'AutoRemove' container with restart policy: %w", errdefs.ErrInvalidArgument)
	}
	if err := checkMounts(hc); err != nil {
		return err
	}
	if err := validateHostOptions(hc); err != nil {
		return err
	}
	switch nm := string(hc.NetworkMode); nm {
	case "":
	default:
		if strings.HasPrefix(nm, "container:") && len(nm) == len("container:") {
			return fmt.Errorf("invalid network mode: %s: %w", nm, errdefs.ErrInvalidArgument)
		}
	}
	if lc := hc.LogConfig.Type; lc != "" && lc != "json-file" {
		return fmt.Errorf("logging driver %q is not supported (only json-file): %w", lc, errdefs.ErrInvalidArgument)
	}
	if _, err := logOptions(hc.LogConfig.Config, 0, 1); err != nil {
		return err
	}
	return nil
}

func cloneConfig(c *container.Config) *container.Config {
	cp := *c
	cp.Cmd = slices.Clone(c.Cmd)
	cp.Entrypoint = slices.Clone(c.Entrypoint)
	if c.Entrypoint != nil && cp.Entrypoint == nil {
		cp.Entrypoint = []string{} // keep "given but empty" apart from "not given"
	}
	cp.Env = slices.Clone(c.Env)
	return &cp
}

func cloneHostConfig(h *container.HostConfig) *container.HostConfig {
	cp := *h
	cp.Binds = slices.Clone(h.Binds)
	cp.Mounts = slices.Clone(h.Mounts)
	cp.VolumesFrom = slices.Clone(h.VolumesFrom)
	cp.CapAdd = slices.Clone(h.CapAdd)
	cp.CapDrop = slices.Clone(h.CapDrop)
	return &cp
}

const hostsContent = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::	ip6-localnet
ff00::	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// writeEtcFiles writes the hostname, hosts and resolv.conf files that are
// bound into the container.
func (e *Engine) writeEtcFiles(c *Container) error {
	hosts := hostsContent
	if c.HostConfig.NetworkMode == "host" {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	}
	resolv := []byte("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		resolv = b
	}
	hostname := c.Config.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	return e.writeEtc(c.ID, []byte(hosts), []byte(hostname+"\n"), resolv)
}
