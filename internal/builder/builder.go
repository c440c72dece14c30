// Package builder turns a Dockerfile and a build context into an image, as
// docker's classic builder does: each instruction is one step, steps that
// change files make a layer, the others only change the config.
//
// Layers are made the way containers' changes are: a step prepares an
// overlay snapshot on its parent's layer chain, mounts it, changes it (a
// RUN step runs a container on it through the engine and the supervisor;
// COPY and ADD write into it), and the upper directory's diff becomes the
// layer blob, while the snapshot is committed under the new chainID, so
// the next step and later containers find it unpacked. Configs and
// manifests go to the content store and names to the image records, as for
// a pulled image.
//
// Every step has a cache key: its parent's key, the instruction with its
// arguments expanded, and the content of every file it reads. A step whose
// key is in the cache (package cache) is not run: its config and layers
// are taken from there, so an unchanged rebuild runs no container and
// writes nothing but the final image record.
package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/builder/cache"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

// Runner runs a RUN step's container; the engine implements it.
type Runner interface {
	RunTransient(ctx context.Context, o engine.TransientOptions) (int, error)
}

// PullFunc fetches an image that FROM or COPY --from names and the store
// lacks (or all of them with Options.Pull), writing progress to out.
type PullFunc func(ctx context.Context, ref string, out io.Writer) error

// Builder builds images. It holds no per-build state: one Builder serves
// concurrent builds.
type Builder struct {
	images *image.Service
	run    Runner
	pull   PullFunc
	cache  *cache.Cache
	work   string
	// cacheMounts keeps RUN --mount=type=cache directories across builds.
	cacheMounts string
	log         *slog.Logger
}

// Config configures a Builder.
type Config struct {
	Images *image.Service
	Runner Runner
	Pull   PullFunc
	// WorkDir holds contexts and mount points of builds in progress
	// (<root>/builder); see Recover.
	WorkDir string
	// CacheMountDir keeps RUN --mount=type=cache directories
	// (<root>/builder-mounts); Prune empties it.
	CacheMountDir string
	Logger        *slog.Logger
}

// New returns a Builder.
func New(c Config) (*Builder, error) {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(c.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	return &Builder{images: c.Images, run: c.Runner, pull: c.Pull, cache: cache.New(c.Images.Meta()), work: c.WorkDir, cacheMounts: c.CacheMountDir, log: c.Logger}, nil
}

// Options are one build's options: docker build's flags.
type Options struct {
	// Dockerfile is the Dockerfile's path inside the context.
	Dockerfile string
	Tags       []string
	Target     string
	BuildArgs  map[string]*string
	Labels     map[string]string
	NoCache    bool
	// Pull fetches every base image even when the store has it.
	Pull bool
	// Platform must be the host's (the only one berth runs), if set.
	Platform string
	// NetworkMode of RUN steps: "" (a private network namespace) or "host".
	NetworkMode string
	// Hidden are context paths removed once the Dockerfile is read (the
	// Dockerfile and .dockerignore when .dockerignore excludes them).
	Hidden []string
	// Limits apply to every RUN container (docker build --memory, ...).
	Limits Limits
	// ExtraHosts are added to RUN containers' /etc/hosts ("name:ip").
	ExtraHosts []string
	// Secrets are RUN --mount=type=secret contents by id (berth build
	// --secret); they reach RUN containers as read-only files and never a
	// layer, the cache key or the build's output.
	Secrets map[string][]byte
}

// Limits are RUN containers' resource limits, as docker run's flags.
type Limits struct {
	Memory, MemorySwap, CPUShares, CPUQuota, CPUPeriod, ShmSize int64
	CpusetCpus, CpusetMems                                      string
}

// Result is a finished build.
type Result struct {
	ID   digest.Digest // the image ID (config digest)
	Tags []string      // familiar names tagged
}

// opLabel and opName mark the leases of builds (image.Op's label), so
// Recover finds those of interrupted builds.
const (
	opLabel = "berth.op"
	opName  = "build"
)

// sourceDateEpochArg is the build argument (and environment variable)
// that makes builds reproducible.
const sourceDateEpochArg = "SOURCE_DATE_EPOCH"

// build is one build in progress.
type build struct {
	b       *Builder
	opts    Options
	out     io.Writer
	ctxDir  string
	dfOnly  bool
	op      *image.Op
	epoch   *time.Time
	stages  []*stage
	byName  map[string]*stage
	target  *stage
	total   int
	pending []cache.Entry
	lex     *shell.Lex
	// usedArgs are build args some ARG declared (the rest are reported
	// unused, as docker does).
	usedArgs map[string]bool
	metaArgs []instructions.KeyValuePairOptional
	// metaSteps are the ARG lines before the first FROM.
	metaSteps []string
	tmp       string
	seq       int
	// cleanups undo mounts made for COPY --from and RUN --mount, at the
	// build's end.
	mu       sync.Mutex
	cleanups []func()
	// prepared holds what prepareImages did per image reference, until
	// the step that uses it shows it.
	prepared map[string]*preparedImage
}

// preparedImage is a base image made ready before the build's operation
// began: the pull's output and its error.
type preparedImage struct {
	out bytes.Buffer
	err error
}

// prepareImages pulls (when missing, or all with --pull) and unpacks the
// images the needed stages start from or copy from, before the build's
// own image operation begins: a pull or an unpack is an operation itself,
// and operations may not nest (a failing pull's clean-up waits for every
// operation to end, the build's included). Outcomes are shown at the
// steps that use them.
func (bd *build) prepareImages(ctx context.Context) {
	bd.prepared = map[string]*preparedImage{}
	want := func(ref string, from int) {
		ref, err := bd.expand(ref, bd.metaEnv())
		if err != nil || ref == "" || strings.EqualFold(ref, "scratch") {
			return
		}
		if _, isStage := bd.stageRef(ref, from); isStage {
			return
		}
		if _, done := bd.prepared[ref]; done {
			return
		}
		p := &preparedImage{}
		bd.prepared[ref] = p
		p.err = bd.prepareImage(ctx, ref, &p.out)
	}
	for _, s := range bd.stages[:bd.target.index+1] {
		if !s.needed {
			continue
		}
		want(s.def.BaseName, s.index)
		for _, c := range s.def.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					want(c.From, s.index)
				}
			case *instructions.RunCommand:
				for _, m := range instructions.GetMounts(c) {
					if m.From != "" {
						want(m.From, s.index)
					}
				}
			}
		}
	}
}

func (bd *build) prepareImage(ctx context.Context, ref string, out io.Writer) error {
	images := bd.b.images
	_, err := images.Get(ctx, ref)
	switch {
	case err != nil && !errdefs.IsNotFound(err):
		return err
	case err != nil || bd.opts.Pull:
		if bd.b.pull == nil {
			return err
		}
		if err := bd.b.pull(ctx, ref, out); err != nil {
			return err
		}
	}
	d, err := images.Inspect(ctx, ref)
	if err != nil || d.Unpacked {
		return err
	}
	return images.Unpack(ctx, ref)
}

func (bd *build) addCleanup(fn func()) {
	bd.mu.Lock()
	bd.cleanups = append(bd.cleanups, fn)
	bd.mu.Unlock()
}

// stage is one FROM section.
type stage struct {
	index  int
	def    instructions.Stage
	needed bool
	// deps are the stages it reads from (FROM, COPY --from, RUN --mount
	// from=); it starts when they are done.
	deps []*stage
	// done is set (before finished closes) when it was built.
	done     bool
	finished chan struct{}
	out      io.Writer
	// step is the number of its next step line.
	step int
	st   state
	// args are the ARG values declared in this stage so far.
	args   []instructions.KeyValuePairOptional
	cmdSet bool
}

// state is an image being built: its config and layers, and the cache key
// that led to it.
type state struct {
	cfg    dockerspec.DockerOCIImage
	layers []v1.Descriptor
	chain  digest.Digest // top chainID; "" for none
	key    digest.Digest
	id     digest.Digest // config digest
	raw    []byte        // config JSON
}

// Build runs a build from the context unpacked in contextDir (dfOnly: it
// holds only a Dockerfile) and writes progress to out. Nothing is tagged
// unless every step succeeds.
func (b *Builder) Build(ctx context.Context, contextDir string, dfOnly bool, opts Options, out io.Writer) (res Result, err error) {
	bd := &build{b: b, opts: opts, out: out, ctxDir: contextDir, dfOnly: dfOnly, byName: map[string]*stage{}, usedArgs: map[string]bool{}}
	if bd.tmp, err = os.MkdirTemp(b.work, "build-"); err != nil {
		return res, fmt.Errorf("builder: %w", err)
	}
	defer func() {
		for i := len(bd.cleanups) - 1; i >= 0; i-- {
			bd.cleanups[i]()
		}
		if err := os.RemoveAll(bd.tmp); err != nil {
			b.log.Warn("builder: remove work dir", "dir", bd.tmp, "err", err)
		}
	}()
	if opts.Platform != "" {
		want, perr := image.ParsePlatform(opts.Platform)
		if perr != nil {
			return res, perr
		}
		if host := b.images.Platform(); want.OS != host.OS || want.Architecture != host.Architecture {
			return res, fmt.Errorf("platform %s is not supported: this daemon builds for %s/%s: %w", opts.Platform, host.OS, host.Architecture, errdefs.ErrInvalidArgument)
		}
	}
	if v, ok := opts.BuildArgs[sourceDateEpochArg]; ok && v != nil && *v != "" {
		sec, perr := strconv.ParseInt(*v, 10, 64)
		if perr != nil {
			return res, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: %w", *v, errdefs.ErrInvalidArgument)
		}
		t := time.Unix(sec, 0).UTC()
		bd.epoch = &t
		bd.usedArgs[sourceDateEpochArg] = true
	}
	if err := bd.parse(); err != nil {
		return res, err
	}
	bd.prepareImages(ctx)
	bd.op, err = b.images.Begin(ctx, opName)
	if err != nil {
		return res, err
	}
	defer func() {
		// Whatever succeeded is cached, also when a later step failed; a
		// cache that cannot be written costs the next build, not this one.
		if perr := b.cache.Put(context.WithoutCancel(ctx), bd.pending); perr != nil {
			b.log.Warn("builder: record cache", "err", perr)
		}
		// A build is never resumed: on any failure what it made and
		// nothing else (an image, a cache entry) refers to goes at once.
		if err == nil {
			if derr := bd.op.Done(ctx); derr != nil {
				b.log.Warn("builder: end build", "err", derr)
			}
		} else if aerr := bd.op.Abort(ctx); aerr != nil {
			b.log.Warn("builder: clean up failed build", "err", aerr)
		}
	}()
	target, err := bd.run(ctx)
	if err != nil {
		return res, err
	}
	return bd.finish(ctx, target)
}

// parse reads the Dockerfile and selects the stages the target needs.
func (bd *build) parse() error {
	name := bd.opts.Dockerfile
	if name == "" || bd.dfOnly {
		name = "Dockerfile"
	}
	p := filepath.Join(bd.ctxDir, filepath.FromSlash(name))
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return fmt.Errorf("the Dockerfile (%s) must be within the build context: %w", name, errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(p)
	if err != nil && bd.opts.Dockerfile == "" {
		// docker also accepts a lower-case dockerfile.
		if f2, err2 := os.Open(filepath.Join(bd.ctxDir, "dockerfile")); err2 == nil {
			f, err = f2, nil
		}
	}
	if err != nil {
		return fmt.Errorf("Cannot locate specified Dockerfile: %s: %w", name, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		return fmt.Errorf("failed to parse Dockerfile: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	for _, h := range bd.opts.Hidden {
		if err := os.Remove(filepath.Join(bd.ctxDir, filepath.FromSlash(h))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("build context: %w", err)
		}
	}
	bd.lex = shell.NewLex(ast.EscapeToken)
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", parseErrorText(err), errdefs.ErrInvalidArgument)
	}
	if len(stages) == 0 {
		return fmt.Errorf("dockerfile contains no stages to build: %w", errdefs.ErrInvalidArgument)
	}
	// Meta ARGs: defaults, overridden by build args. docker's classic
	// builder counts each as a step (printed, nothing to commit).
	for _, a := range metaArgs {
		bd.metaSteps = append(bd.metaSteps, a.String())
		for _, kv := range a.Args {
			if v, ok := bd.opts.BuildArgs[kv.Key]; ok && v != nil {
				kv.Value = v
				bd.useArg(kv.Key)
			} else if kv.Value != nil {
				expanded, err := bd.expand(*kv.Value, bd.metaEnv())
				if err != nil {
					return lineError(a.Location(), err)
				}
				kv.Value = &expanded
			}
			bd.metaArgs = append(bd.metaArgs, kv)
		}
	}
	for i, s := range stages {
		st := &stage{index: i, def: s}
		bd.stages = append(bd.stages, st)
		if s.Name != "" {
			bd.byName[strings.ToLower(s.Name)] = st
		}
	}
	target := bd.stages[len(bd.stages)-1]
	if bd.opts.Target != "" {
		t, ok := bd.byName[strings.ToLower(bd.opts.Target)]
		if !ok {
			return fmt.Errorf("failed to reach build target %s in Dockerfile: %w", bd.opts.Target, errdefs.ErrInvalidArgument)
		}
		target = t
	}
	// --label: one LABEL step per label, sorted, at the end of the target,
	// as docker's classic builder adds them.
	keys := slices.Sorted(maps.Keys(bd.opts.Labels))
	for _, k := range keys {
		target.def.AddCommand(instructions.NewLabelCommand(k, bd.opts.Labels[k], true))
	}
	if err := bd.markNeeded(target); err != nil {
		return err
	}
	bd.total = len(bd.metaSteps)
	for _, s := range bd.stages[:target.index+1] {
		if s.needed {
			s.step = bd.total + 1
			bd.total += 1 + len(s.def.Commands)
		}
	}
	bd.target = target
	return nil
}

// parseErrorText keeps the buildkit parser's message ("dockerfile parse
// error on line 3: unknown instruction: FOO"), whose line number a plain
// location-wrapped error does not print.
func parseErrorText(err error) string {
	msg := err.Error()
	var loc *parser.LocationError
	if errors.As(err, &loc) && len(loc.Locations) > 0 && len(loc.Locations[0]) > 0 && !strings.Contains(msg, "line ") {
		return fmt.Sprintf("dockerfile parse error on line %d: %s", loc.Locations[0][0].Start.Line, msg)
	}
	return msg
}

// ExitError is a RUN step whose command failed; its message is docker's.
type ExitError struct {
	Cmd  string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("The command '%s' returned a non-zero code: %d", e.Cmd, e.Code)
}

// lineError names the Dockerfile line of an instruction in err (a failed
// RUN keeps docker's exact message: its step line was just printed).
func lineError(loc []parser.Range, err error) error {
	var ee *ExitError
	if len(loc) == 0 || errors.As(err, &ee) || strings.HasPrefix(err.Error(), "dockerfile line ") {
		return err
	}
	return fmt.Errorf("dockerfile line %d: %w", loc[0].Start.Line, err)
}

// markNeeded marks s and every stage it reads from (FROM another stage,
// COPY --from).
func (bd *build) markNeeded(s *stage) error {
	if s.needed {
		return nil
	}
	s.needed = true
	base, err := bd.expand(s.def.BaseName, bd.metaEnv())
	if err != nil {
		return lineError(s.def.Location, err)
	}
	if dep, ok := bd.stageRef(base, s.index); ok {
		s.deps = append(s.deps, dep)
		if err := bd.markNeeded(dep); err != nil {
			return err
		}
	}
	for _, c := range s.def.Commands {
		var froms []string
		switch c := c.(type) {
		case *instructions.CopyCommand:
			froms = append(froms, c.From)
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				froms = append(froms, m.From)
			}
		}
		for _, from := range froms {
			if from == "" {
				continue
			}
			if dep, ok := bd.stageRef(from, s.index); ok {
				if dep.index >= s.index {
					return lineError(c.Location(), fmt.Errorf("invalid from flag value %s: refers to current or later build stage: %w", from, errdefs.ErrInvalidArgument))
				}
				s.deps = append(s.deps, dep)
				if err := bd.markNeeded(dep); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stageRef resolves a stage name or index used from stage `from`: only
// earlier stages count (a later one's name is an image name).
func (bd *build) stageRef(name string, from int) (*stage, bool) {
	if s, ok := bd.byName[strings.ToLower(name)]; ok && s.index < from {
		return s, true
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < len(bd.stages) {
		return bd.stages[n], true
	}
	return nil, false
}

func (bd *build) metaEnv() shell.EnvGetter {
	var env []string
	for _, a := range bd.metaArgs {
		if a.Value != nil {
			env = append(env, a.Key+"="+*a.Value)
		}
	}
	return shell.EnvsFromSlice(env)
}

func (bd *build) expand(word string, env shell.EnvGetter) (string, error) {
	// A copy: shell.Lex keeps the word being processed in itself, and
	// stages built in parallel expand at once. bd.lex is never used
	// directly, so copying it races with nothing.
	lex := *bd.lex
	res, _, err := lex.ProcessWord(word, env)
	if err != nil {
		if strings.HasPrefix(err.Error(), "failed to process") {
			return "", fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
		return "", fmt.Errorf("failed to process %q: %w: %w", word, err, errdefs.ErrInvalidArgument)
	}
	return res, nil
}

// expandRaw expands a heredoc's content: variables only, quotes and
// backslashes kept.
func (bd *build) expandRaw(word string, env shell.EnvGetter) (string, error) {
	lex := *bd.lex
	lex.RawQuotes, lex.RawEscapes = true, true
	res, _, err := lex.ProcessWord(word, env)
	if err != nil {
		return "", fmt.Errorf("failed to process heredoc: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	return res, nil
}

// run builds the needed stages (independent ones in parallel) and returns
// the target.
func (bd *build) run(ctx context.Context) (*stage, error) {
	var needed []*stage
	for _, s := range bd.stages[:bd.target.index+1] {
		if s.needed {
			needed = append(needed, s)
		}
	}
	for i, a := range bd.metaSteps {
		bd.printf("Step %d/%d : %s\n", i+1, bd.total, a)
	}
	if err := bd.runParallel(ctx, needed); err != nil {
		return nil, err
	}
	return bd.target, nil
}

func (bd *build) printf(format string, args ...any) {
	fmt.Fprintf(bd.out, format, args...)
}

func (s *stage) printf(format string, args ...any) {
	fmt.Fprintf(s.out, format, args...)
}

func (bd *build) stepLine(s *stage, text string) {
	s.printf("Step %d/%d : %s\n", s.step, bd.total, text)
	s.step++
}

// useArg records that some ARG declared a build arg.
func (bd *build) useArg(k string) {
	bd.mu.Lock()
	bd.usedArgs[k] = true
	bd.mu.Unlock()
}

// finish writes the target's config and manifest, names the image and
// prints docker's closing lines.
func (bd *build) finish(ctx context.Context, s *stage) (Result, error) {
	st := s.st
	var unused []string
	for k := range bd.opts.BuildArgs {
		if !bd.usedArgs[k] && !predefinedArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		bd.printf("[Warning] One or more build-args [%s] were not consumed\n", strings.Join(unused, " "))
	}
	images := bd.b.images
	cfgDesc, _, err := images.WriteJSONBytes(ctx, bd.op, v1.MediaTypeImageConfig, st.raw)
	if err != nil {
		return Result{}, err
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: cfgDesc, Layers: st.layers}
	m.SchemaVersion = 2
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	mdesc, _, err := images.WriteJSON(ctx, bd.op, v1.MediaTypeImageManifest, m)
	if err != nil {
		return Result{}, err
	}
	res := Result{ID: cfgDesc.Digest}
	var names []string
	for _, t := range bd.opts.Tags {
		ref, err := image.ParseReference(t)
		if err != nil {
			return res, err
		}
		names = append(names, ref.String())
		res.Tags = append(res.Tags, ref.Familiar())
	}
	if len(names) == 0 {
		names = []string{""}
	}
	for _, n := range names {
		if _, err := images.Create(ctx, n, mdesc); err != nil {
			return res, err
		}
	}
	return res, nil
}

// predefinedArgs are accepted without an ARG, as docker does.
var predefinedArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// seal computes the config's JSON and digest (the step's image ID).
func (s *state) seal() error {
	raw, err := json.Marshal(s.cfg)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	s.raw, s.id = raw, digest.FromBytes(raw)
	return nil
}

// nextKey chains a step's cache key from its parent's.
func nextKey(parent digest.Digest, parts ...string) digest.Digest {
	h := sha256.New()
	h.Write([]byte(parent))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

func shortID(d digest.Digest) string {
	e := d.Encoded()
	return e[:min(12, len(e))]
}

// Prune empties the build cache, or with keep the entries it does not
// want (by creation time), and collects the layers only they kept; it
// returns the removed entries' keys and the bytes of blobs freed. RUN cache
// mounts go only when everything does.
func (b *Builder) Prune(ctx context.Context, keep func(created time.Time) bool) ([]string, uint64, error) {
	var keepEntry func(cache.Entry) bool
	if keep != nil {
		keepEntry = func(e cache.Entry) bool { return keep(e.CreatedAt) }
	}
	keys, err := b.cache.Prune(ctx, keepEntry)
	if err != nil {
		return nil, 0, err
	}
	if b.cacheMounts != "" && keep == nil {
		if err := os.RemoveAll(b.cacheMounts); err != nil {
			return keys, 0, fmt.Errorf("builder: prune cache mounts: %w", err)
		}
	}
	st, err := b.images.GC(ctx)
	if err != nil {
		return keys, 0, err
	}
	return keys, uint64(max(st.Bytes, 0)), nil
}

// Recover removes what builds a crash interrupted left: the mounts and
// directories in the work directory, their operations' leases and their
// step snapshots (a build is not resumed, unlike a pull). The daemon calls
// it at start, before any build can run; blobs they wrote go at the next GC.
func Recover(ctx context.Context, images *image.Service, dir string) error {
	errs := []error{cleanWorkDir(dir)}
	errs = append(errs, images.Meta().Update(ctx, func(tx *meta.Tx) error {
		ls, err := tx.ListLeases()
		if err != nil {
			return err
		}
		for _, l := range ls {
			if l.Labels[opLabel] == opName {
				if err := tx.DeleteLease(l.ID); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	var keys []string
	snaps := images.Snapshots()
	errs = append(errs, snaps.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		if strings.HasPrefix(i.Key, snapshotPrefix) {
			keys = append(keys, i.Key)
		}
		return nil
	}))
	for _, k := range keys {
		if err := snaps.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("builder: recover: %w", err)
	}
	return nil
}

// cleanWorkDir unmounts (lazily) and removes everything in dir.
func cleanWorkDir(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("builder: clean %s: %w", dir, err)
	}
	// Deepest first, so a mount on top of another goes before it.
	slices.SortFunc(mounts, func(a, b *mountinfo.Info) int { return len(b.Mountpoint) - len(a.Mountpoint) })
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("builder: clean %s: unmount %s: %w", dir, m.Mountpoint, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("builder: clean %s: %w", dir, err)
	}
	return nil
}

// CacheRecord is one build cache entry as `docker system df -v` lists it.
type CacheRecord struct {
	ID          string
	Description string
	Size        int64
	CreatedAt   time.Time
}

// CacheUsage lists the build cache.
func (b *Builder) CacheUsage(ctx context.Context) ([]CacheRecord, error) {
	entries, err := b.cache.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]CacheRecord, 0, len(entries))
	for _, e := range entries {
		out = append(out, CacheRecord{ID: e.Key.Encoded()[:25], Description: e.Step, Size: e.Size, CreatedAt: e.CreatedAt})
	}
	return out, nil
}
