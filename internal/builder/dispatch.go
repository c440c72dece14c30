package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/builder/cache"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

var defaultShell = []string{"/bin/sh", "-c"}

// now is the time a step records: SOURCE_DATE_EPOCH when set.
func (bd *build) now() time.Time {
	if bd.epoch != nil {
		return *bd.epoch
	}
	return time.Now().UTC()
}

// clone returns a deep copy of s's config (through its JSON).
func (s state) clone() (state, error) {
	n := s
	n.cfg = dockerspec.DockerOCIImage{}
	if err := json.Unmarshal(s.raw, &n.cfg); err != nil {
		return n, fmt.Errorf("decode config: %w", err)
	}
	n.layers = slices.Clone(s.layers)
	return n, nil
}

// runStage builds one stage: FROM, the base image's ONBUILD triggers,
// then its instructions.
func (bd *build) runStage(ctx context.Context, s *stage) error {
	bd.stepLine(s, strings.TrimSpace(s.def.SourceCode))
	st, err := bd.from(ctx, s)
	if err != nil {
		return lineError(s.def.Location, err)
	}
	if st.chain == "" && len(st.layers) == 0 {
		s.printf(" ---> \n") // scratch: no image, as docker prints it
	} else {
		s.printf(" ---> %s\n", shortID(st.id))
	}
	if !hasEnv(st.cfg.Config.Env, "PATH") {
		// A base without PATH (scratch) gets docker's default one.
		st.cfg.Config.Env = append(st.cfg.Config.Env, defaultPath)
		if err := st.seal(); err != nil {
			return err
		}
	}
	s.st = st
	if triggers := s.st.cfg.Config.OnBuild; len(triggers) > 0 {
		s.printf("# Executing %d build trigger", len(triggers))
		if len(triggers) > 1 {
			s.printf("s")
		}
		s.printf("\n")
		s.st.cfg.Config.OnBuild = nil // triggers fire once, in the child
		s.st.key = nextKey(s.st.key, "onbuild-cleared")
		if err := s.st.seal(); err != nil {
			return err
		}
		for _, t := range triggers {
			ast, err := parser.Parse(strings.NewReader(t))
			if err != nil || len(ast.AST.Children) != 1 {
				return lineError(s.def.Location, fmt.Errorf("invalid ONBUILD trigger %q: %w", t, errdefs.ErrInvalidArgument))
			}
			cmd, err := instructions.ParseCommand(ast.AST.Children[0])
			if err != nil {
				return lineError(s.def.Location, fmt.Errorf("ONBUILD trigger %q: %w", t, err))
			}
			if err := bd.dispatch(ctx, s, cmd); err != nil {
				return err
			}
		}
	}
	for _, c := range s.def.Commands {
		bd.stepLine(s, c.(fmt.Stringer).String())
		if err := bd.dispatch(ctx, s, c); err != nil {
			return err
		}
	}
	s.done = true
	return nil
}

// defaultPath is the PATH docker gives a stage whose base has none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// from makes a stage's starting state.
func (bd *build) from(ctx context.Context, s *stage) (state, error) {
	base, err := bd.expand(s.def.BaseName, bd.metaEnv())
	if err != nil {
		return state{}, err
	}
	if s.def.Platform != "" {
		p, err := bd.expand(s.def.Platform, bd.metaEnv())
		if err != nil {
			return state{}, err
		}
		host := bd.b.images.Platform()
		if p != "" && p != host.OS+"/"+host.Architecture && p != "$BUILDPLATFORM" && p != "$TARGETPLATFORM" {
			return state{}, fmt.Errorf("FROM --platform=%s: this daemon builds only for %s/%s: %w", p, host.OS, host.Architecture, errdefs.ErrInvalidArgument)
		}
	}
	epoch := ""
	if bd.epoch != nil {
		epoch = strconv.FormatInt(bd.epoch.Unix(), 10)
	}
	if dep, ok := bd.stageRef(base, s.index); ok {
		st, err := dep.st.clone()
		st.key = nextKey(dep.st.key, "FROM-STAGE")
		return st, err
	}
	if strings.EqualFold(base, "scratch") {
		p := bd.b.images.Platform()
		st := state{cfg: dockerspec.DockerOCIImage{Image: v1.Image{Platform: v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}}}}
		st.cfg.RootFS.Type = "layers"
		st.cfg.RootFS.DiffIDs = []digest.Digest{}
		st.key = nextKey("", "FROM scratch", epoch)
		return st, st.seal()
	}
	st, err := bd.imageState(ctx, s, base)
	if err != nil {
		return st, err
	}
	st.key = nextKey("", "FROM", st.id.String(), epoch)
	return st, nil
}

// imageState loads an image from the store (pulling it if missing, or
// always with --pull) as a starting state, its layers unpacked.
func (bd *build) imageState(ctx context.Context, s *stage, ref string) (state, error) {
	images := bd.b.images
	// What prepareImages did for ref shows here, at its step.
	bd.mu.Lock()
	p, ok := bd.prepared[ref]
	if ok {
		delete(bd.prepared, ref)
	}
	bd.mu.Unlock()
	if ok {
		_, _ = s.out.Write(p.out.Bytes())
		if p.err != nil {
			return state{}, p.err
		}
	}
	d, err := images.Inspect(ctx, ref)
	if err != nil {
		return state{}, err
	}
	if !d.Unpacked {
		// Unpacking is an operation of its own, which may not nest in
		// the build's: prepareImages does it first.
		return state{}, fmt.Errorf("image %s is not unpacked: %w", ref, errdefs.ErrFailedPrecondition)
	}
	raw, err := content.ReadBlob(ctx, images.Content(), d.Config)
	if err != nil {
		return state{}, fmt.Errorf("read config of %s: %w", ref, err)
	}
	st := state{layers: d.Layers, raw: raw, id: d.Config.Digest}
	if n := len(d.ChainIDs); n > 0 {
		st.chain = d.ChainIDs[n-1]
	}
	if err := json.Unmarshal(raw, &st.cfg); err != nil {
		return st, fmt.Errorf("decode config of %s: %w", ref, err)
	}
	// A base without a history entry per layer (imported, hand-made)
	// gets placeholders first, so the history stays in step with the
	// layers the build adds (podman and others check that it is).
	st.cfg.History = image.PadHistory(st.cfg.History, len(st.cfg.RootFS.DiffIDs), st.cfg.Created)
	// Normalise through our own encoding, so a clone is exact.
	return st, st.seal()
}

// stageEnv is what instructions expand against: the stage's ARGs, then
// its ENV (which wins, as in docker).
func (bd *build) stageEnv(s *stage) shell.EnvGetter {
	return shell.EnvsFromSlice(bd.envList(s, true))
}

// envList is the stage's config Env, preceded by its ARG values when
// withArgs (RUN sees build args, the image does not keep them).
func (bd *build) envList(s *stage, withArgs bool) []string {
	var env []string
	if withArgs {
		// The proxy variables need no ARG, and stay out of the cache
		// key and the image, as in docker.
		for k, v := range bd.opts.BuildArgs {
			if predefinedArgs[k] && v != nil {
				env = append(env, k+"="+*v)
			}
		}
		slices.Sort(env)
		for _, a := range s.args {
			if a.Value != nil {
				env = append(env, a.Key+"="+*a.Value)
			}
		}
	}
	return append(env, s.st.cfg.Config.Env...)
}

// argValues is the part of a step's cache key that ARGs decide.
func argValues(s *stage) string {
	var b strings.Builder
	for _, a := range s.args {
		b.WriteString(a.Key)
		if a.Value != nil {
			b.WriteString("=" + *a.Value)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// dispatch runs one instruction of stage s.
func (bd *build) dispatch(ctx context.Context, s *stage, c instructions.Command) error {
	if _, isRun := c.(*instructions.RunCommand); !isRun {
		env := bd.stageEnv(s)
		if e, ok := c.(instructions.SupportsSingleWordExpansion); ok {
			if err := e.Expand(func(w string) (string, error) { return bd.expand(w, env) }); err != nil {
				return lineError(c.Location(), err)
			}
		}
		// Heredoc contents of COPY/ADD (an unquoted delimiter expands).
		if e, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
			if err := e.ExpandRaw(func(w string) (string, error) { return bd.expandRaw(w, env) }); err != nil {
				return lineError(c.Location(), err)
			}
		}
	}
	var err error
	switch c := c.(type) {
	case *instructions.RunCommand:
		err = bd.runStep(ctx, s, c)
	case *instructions.CopyCommand:
		err = bd.copyStep(ctx, s, copySpec{cmd: c, src: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod, name: "COPY",
			excludes: c.ExcludePatterns, parents: c.Parents})
	case *instructions.AddCommand:
		if c.Checksum != "" {
			for _, p := range c.SourcePaths {
				if !isURL(p) {
					return lineError(c.Location(), fmt.Errorf("checksum can't be specified for non-HTTP(S) sources: %w", errdefs.ErrInvalidArgument))
				}
			}
		}
		err = bd.copyStep(ctx, s, copySpec{cmd: c, src: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, name: "ADD", add: true, checksum: c.Checksum,
			excludes: c.ExcludePatterns})
	case *instructions.WorkdirCommand:
		err = bd.workdirStep(ctx, s, c)
	default:
		err = bd.configStep(ctx, s, c)
	}
	if err != nil {
		return lineError(c.Location(), err)
	}
	return nil
}

// cached looks key up; on a hit it makes s's state the cached one and
// prints docker's "Using cache".
func (bd *build) cached(ctx context.Context, s *stage, key digest.Digest) (bool, error) {
	if bd.opts.NoCache {
		return false, nil
	}
	e, ok, err := bd.b.cache.Get(ctx, key)
	if err != nil || !ok {
		return false, err
	}
	if e.Snapshot != "" {
		if has, err := bd.b.images.HasLayer(ctx, digest.Digest(e.Snapshot)); err != nil || !has {
			return false, err // its layers went: build it again
		}
	}
	st := state{layers: e.Layers, chain: digest.Digest(e.Snapshot), key: key, raw: e.Config, id: digest.FromBytes(e.Config)}
	if err := json.Unmarshal(e.Config, &st.cfg); err != nil {
		return false, nil
	}
	s.st = st
	s.printf(" ---> Using cache\n ---> %s\n", shortID(st.id))
	return true, nil
}

// commit ends a step: the new state gets its history entry and creation
// time, is sealed, becomes the stage's state and is queued for the cache.
func (bd *build) commit(s *stage, st state, createdBy string, empty bool, stepText string) error {
	now := bd.now()
	st.cfg.Created = &now
	st.cfg.History = append(st.cfg.History, v1.History{Created: &now, CreatedBy: createdBy, EmptyLayer: empty})
	if err := st.seal(); err != nil {
		return err
	}
	s.st = st
	e := cache.Entry{Key: st.key, Config: st.raw, Layers: st.layers, Snapshot: string(st.chain), Step: stepText}
	if !empty && len(st.layers) > 0 {
		e.Size = st.layers[len(st.layers)-1].Size
	}
	bd.mu.Lock()
	bd.pending = append(bd.pending, e)
	bd.mu.Unlock()
	s.printf(" ---> %s\n", shortID(st.id))
	return nil
}

// configStep runs an instruction that only changes the config.
func (bd *build) configStep(ctx context.Context, s *stage, c instructions.Command) error {
	if a, ok := c.(*instructions.ArgCommand); ok {
		bd.declareArgs(s, a)
	}
	spec, err := json.Marshal(c)
	if err != nil {
		return err
	}
	key := nextKey(s.st.key, c.Name(), string(spec), argValues(s))
	if hit, err := bd.cached(ctx, s, key); hit || err != nil {
		bd.trackCmd(s, c)
		return err
	}
	st, err := s.st.clone()
	if err != nil {
		return err
	}
	st.key = key
	cfg := &st.cfg.Config
	// comment is the history's "created by" text in docker's classic
	// wording (Go formatting of the values included).
	var comment string
	switch c := c.(type) {
	case *instructions.EnvCommand:
		comment = "ENV"
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
			comment += " " + kv.Key + "=" + kv.Value
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		comment = "LABEL"
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
			comment += " " + kv.Key + "=" + kv.Value
		}
	case *instructions.MaintainerCommand:
		st.cfg.Author = c.Maintainer
		comment = "MAINTAINER " + c.Maintainer
	case *instructions.UserCommand:
		cfg.User = c.User
		comment = "USER " + c.User
	case *instructions.ExposeCommand:
		env := bd.stageEnv(s)
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		var words []string
		for _, p := range c.Ports {
			p, err := bd.expand(p, env)
			if err != nil {
				return err
			}
			ports, err := exposedPorts(p)
			if err != nil {
				return err
			}
			for _, q := range ports {
				cfg.ExposedPorts[q] = struct{}{}
			}
			words = append(words, p)
		}
		slices.Sort(words)
		comment = "EXPOSE " + strings.Join(words, " ")
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("VOLUME specified can not be an empty string: %w", errdefs.ErrInvalidArgument)
			}
			cfg.Volumes[v] = struct{}{}
		}
		comment = fmt.Sprintf("VOLUME %v", c.Volumes)
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
		comment = "STOPSIGNAL " + c.Signal
	case *instructions.CmdCommand:
		cfg.Cmd = bd.commandLine(s, c.ShellDependantCmdLine)
		comment = fmt.Sprintf("CMD %q", cfg.Cmd)
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = bd.commandLine(s, c.ShellDependantCmdLine)
		if !s.cmdSet {
			cfg.Cmd = nil
		}
		comment = fmt.Sprintf("ENTRYPOINT %q", cfg.Entrypoint)
	case *instructions.HealthCheckCommand:
		h := *c.Health
		st.cfg.Config.Healthcheck = &h
		// dockerd prints its HealthConfig with %q: the same fields.
		comment = fmt.Sprintf("HEALTHCHECK &{%q %q %q %q %q %q}", h.Test, h.Interval.String(), h.Timeout.String(),
			h.StartPeriod.String(), h.StartInterval.String(), rune(h.Retries))
	case *instructions.ShellCommand:
		cfg.Shell = c.Shell
		comment = fmt.Sprintf("SHELL %v", c.Shell)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
		comment = "ONBUILD " + c.Expression
	case *instructions.ArgCommand:
		comment = "ARG"
		for _, kv := range c.Args {
			comment += " " + kv.Key
			if kv.Value != nil {
				comment += "=" + *kv.Value
			}
		}
	default:
		return fmt.Errorf("%s is not supported: %w", strings.ToUpper(c.Name()), errdefs.ErrNotImplemented)
	}
	bd.trackCmd(s, c)
	return bd.commit(s, st, nopComment(st, comment), true, c.(fmt.Stringer).String())
}

// nopComment is how docker's classic builder records a step that ran no
// command: the stage's shell, "#(nop) ", and the step.
func nopComment(st state, comment string) string {
	return strings.Join(append(slices.Clone(shellOf(st)), "#(nop) ", comment), " ")
}

// layerComment is nopComment for COPY, ADD and WORKDIR, which docker
// words with one space less.
func layerComment(st state, comment string) string {
	return strings.Join(shellOf(st), " ") + " #(nop) " + comment
}

func shellOf(st state) []string {
	if sh := st.cfg.Config.Shell; len(sh) > 0 {
		return sh
	}
	return defaultShell
}

// trackCmd remembers that the stage set CMD itself (ENTRYPOINT then keeps it).
func (bd *build) trackCmd(s *stage, c instructions.Command) {
	if _, ok := c.(*instructions.CmdCommand); ok {
		s.cmdSet = true
	}
}

// declareArgs records ARG values: a build arg wins, then the default, then
// a meta ARG of the same name.
func (bd *build) declareArgs(s *stage, a *instructions.ArgCommand) {
	for _, kv := range a.Args {
		v := kv.Value
		if bv, ok := bd.opts.BuildArgs[kv.Key]; ok && bv != nil {
			v = bv
		} else if v == nil {
			for _, m := range bd.metaArgs {
				if m.Key == kv.Key {
					v = m.Value
				}
			}
		}
		bd.useArg(kv.Key)
		s.args = slices.DeleteFunc(s.args, func(o instructions.KeyValuePairOptional) bool { return o.Key == kv.Key })
		s.args = append(s.args, instructions.KeyValuePairOptional{Key: kv.Key, Value: v})
	}
}

// commandLine turns a CMD/ENTRYPOINT/RUN line into argv: the shell form
// runs through the stage's SHELL.
func (bd *build) commandLine(s *stage, c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return slices.Clone(c.CmdLine)
	}
	sh := s.st.cfg.Config.Shell
	if len(sh) == 0 {
		sh = defaultShell
	}
	line := strings.Join(c.CmdLine, " ")
	switch {
	case len(c.Files) > 0 && len(c.CmdLine) == 1 && strings.HasPrefix(c.CmdLine[0], "<<"):
		// A heredoc alone is the script the shell runs.
		line = c.Files[0].Data
	case len(c.Files) > 0:
		// Heredocs feeding a command: the shell reads them as written.
		var b strings.Builder
		b.WriteString(line)
		for _, f := range c.Files {
			b.WriteString("\n" + f.Data + f.Name)
		}
		line = b.String()
	}
	return append(slices.Clone(sh), line)
}

func jsonArgs(a []string) string {
	b, _ := json.Marshal(a)
	return string(b)
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// exposedPorts parses an EXPOSE word: port[-port][/proto].
func exposedPorts(p string) ([]string, error) {
	ports, proto, ok := strings.Cut(p, "/")
	if !ok {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("Invalid proto: %s: %w", proto, errdefs.ErrInvalidArgument)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("Invalid containerPort: %s: %w", ports, errdefs.ErrInvalidArgument)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return nil, fmt.Errorf("Invalid range specified for the Container port: %s: %w", ports, errdefs.ErrInvalidArgument)
		}
	}
	var out []string
	for n := a; n <= b; n++ {
		out = append(out, strconv.FormatUint(n, 10)+"/"+proto)
	}
	return out, nil
}

// resolveDest makes a destination absolute against the working directory,
// keeping a trailing slash (it says "a directory").
func resolveDest(workdir, dest string) string {
	dir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		if workdir == "" {
			workdir = "/"
		}
		dest = path.Join(workdir, dest)
	}
	dest = path.Clean(dest)
	if dir && dest != "/" {
		dest += "/"
	}
	return dest
}
