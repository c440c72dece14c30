package content

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
)

const (
	ingestDataFile = "data"
	ingestMetaFile = "ingest.json"
	// writebackChunk is how much dirty data an ingest lets pile up before it
	// starts writeback: large enough for big sequential disk writes.
	writebackChunk = 8 << 20
	// parallelHashMin is the chunk size from which hashing and writing in
	// parallel pays for the goroutine handoff.
	parallelHashMin = 256 << 10
	// A fresh ingest of a blob of at least directMin bytes writes through
	// O_DIRECT, in directChunk blocks staged in memory (see stagedWrite).
	directMin   = 1 << 20
	directChunk = 1 << 20
	directAlign = 4096
)

// stagePool keeps the aligned staging buffers of direct ingests, so a pull
// reuses memory already touched instead of fresh pages.
var stagePool = sync.Pool{New: func() any {
	b := make([]byte, directChunk+directAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1)); r != 0 {
		off = directAlign - r
	}
	b = b[off : off+directChunk : off+directChunk]
	return &b
}}

// ingestMeta is written once when an ingest starts; progress is the size of
// the data file, so nothing needs rewriting per chunk.
type ingestMeta struct {
	Ref       string        `json:"ref"`
	Expected  v1.Descriptor `json:"expected"`
	StartedAt time.Time     `json:"startedAt"`
}

// Lock keys: refs and digests live in separate namespaces, and a Writer
// always takes its ref before its digest, so two Writers cannot deadlock.
func refKey(ref string) string          { return "ref\x00" + ref }
func blobKey(dgst digest.Digest) string { return "blob\x00" + dgst.String() }
func (s *Store) ingestRoot() string     { return filepath.Join(s.root, "ingest") }
func (s *Store) ingestDir(ref string) string {
	// Refs are arbitrary strings; hashing them gives a safe, fixed-length name.
	return filepath.Join(s.ingestRoot(), digest.FromString(ref).Encoded())
}

// Writer implements Ingester.
func (s *Store) Writer(ctx context.Context, ref string, desc v1.Descriptor) (Writer, error) {
	if desc.Digest != "" {
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("content writer: digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("content writer: negative size %d: %w", desc.Size, errdefs.ErrInvalidArgument)
	}
	if ref == "" {
		if desc.Digest == "" {
			return nil, fmt.Errorf("content writer: need a ref or a digest: %w", errdefs.ErrInvalidArgument)
		}
		ref = desc.Digest.String()
	}
	// Cheap check first, so the common "already have this layer" case takes
	// no lock at all.
	if err := s.checkAbsent(ctx, desc.Digest); err != nil {
		return nil, err
	}
	release, err := s.locks.lock(ctx, refKey(ref))
	if err != nil {
		return nil, fmt.Errorf("content writer %q: wait for ingest: %w", ref, err)
	}
	if desc.Digest != "" {
		unlockBlob, err := s.locks.lock(ctx, blobKey(desc.Digest))
		if err != nil {
			release()
			return nil, fmt.Errorf("content writer %q: wait for ingest of %s: %w", ref, desc.Digest, err)
		}
		unlockRef := release
		release = func() { unlockBlob(); unlockRef() }
		// Whoever held the lock before us may have committed it.
		if err := s.checkAbsent(ctx, desc.Digest); err != nil {
			release()
			return nil, err
		}
	}
	w, err := s.openIngest(ctx, ref, desc)
	if err != nil {
		release()
		return nil, fmt.Errorf("content writer %q: %w", ref, err)
	}
	w.release = release
	return w, nil
}

func (s *Store) checkAbsent(ctx context.Context, dgst digest.Digest) error {
	if dgst == "" {
		return nil
	}
	ok, err := Exists(ctx, s, dgst)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("content %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	return nil
}

// openIngest resumes the ingest for ref when it holds bytes for the same
// blob, and starts a fresh one otherwise. Resuming rehashes the bytes already
// on disk: the hash state is not saved, and rehashing is much cheaper than
// downloading them again.
func (s *Store) openIngest(ctx context.Context, ref string, desc v1.Descriptor) (*writer, error) {
	alg := digest.Canonical
	if desc.Digest != "" {
		alg = desc.Digest.Algorithm()
	}
	dir := s.ingestDir(ref)
	w := &writer{s: s, ref: ref, dir: dir, alg: alg, h: alg.Hash(), expected: desc}

	if m, err := readIngestMeta(dir); err == nil && m.Ref == ref && m.Expected.Digest == desc.Digest &&
		(desc.Size == 0 || m.Expected.Size == 0 || desc.Size == m.Expected.Size) {
		f, err := os.OpenFile(filepath.Join(dir, ingestDataFile), os.O_RDWR, 0)
		if err == nil {
			fi, err := f.Stat()
			if err == nil && (desc.Size == 0 || fi.Size() <= desc.Size) {
				err = hashPrefix(ctx, w.h, f, fi.Size())
				if err == nil {
					w.f, w.offset, w.started = f, fi.Size(), m.StartedAt
					s.log.DebugContext(ctx, "resuming ingest", "ref", ref, "offset", w.offset)
					return w, nil
				}
			}
			f.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}

	// Fresh start. Whatever sits in dir is for another blob or unreadable.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	w.started = time.Now().UTC()
	b, err := json.Marshal(ingestMeta{Ref: ref, Expected: desc, StartedAt: w.started})
	if err != nil {
		return nil, err
	}
	// A torn ingest.json after a crash only means the ingest starts over.
	if err := os.WriteFile(filepath.Join(dir, ingestMetaFile), b, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ingestDataFile), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	w.f = f
	w.h.Reset()
	if desc.Size >= directMin && setDirect(f, true) == nil {
		w.stage = stagePool.Get().(*[]byte)
	}
	return w, nil
}

func readIngestMeta(dir string) (ingestMeta, error) {
	var m ingestMeta
	b, err := os.ReadFile(filepath.Join(dir, ingestMetaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", ingestMetaFile, err)
	}
	return m, nil
}

// writer is the Store's Writer. It is not safe for concurrent use, like any
// io.Writer; the Store's locks keep other Writers off its ingest.
type writer struct {
	s        *Store
	ref      string
	dir      string
	alg      digest.Algorithm
	h        hash.Hash
	f        *os.File
	offset   int64
	flushed  int64 // bytes handed to startWriteback
	expected v1.Descriptor
	started  time.Time
	release  func()
	done     bool
	// broken is set when the hash no longer matches the bytes on disk; such
	// a writer cannot commit, but a new Writer rehashes and resumes.
	broken bool

	// Direct I/O (see stagedWrite): stage holds the bytes past the last
	// full chunk, staged of them; the file holds offset-staged bytes. nil
	// when the ingest writes through the page cache.
	stage  *[]byte
	staged int
}

func (w *writer) Offset() int64         { return w.offset }
func (w *writer) Digest() digest.Digest { return digest.NewDigest(w.alg, w.h) }

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, w.errDone()
	}
	// Fail at the first byte too many rather than after downloading a
	// runaway body to the end.
	if w.expected.Size > 0 && w.offset+int64(len(p)) > w.expected.Size {
		return 0, fmt.Errorf("ingest %q: %d bytes would exceed the expected size %d: %w",
			w.ref, w.offset+int64(len(p)), w.expected.Size, errdefs.ErrInvalidArgument)
	}
	if w.stage != nil {
		return w.stagedWrite(p)
	}
	var n int
	var err error
	if len(p) < parallelHashMin {
		n, err = w.f.WriteAt(p, w.offset)
		w.h.Write(p[:n])
	} else {
		// Hash here while another goroutine copies p into the page cache:
		// on two or more cores a chunk costs max(hash, write), not the sum.
		done := make(chan struct{})
		go func() {
			defer close(done)
			n, err = w.f.WriteAt(p, w.offset)
		}()
		w.h.Write(p)
		<-done
		if n < len(p) {
			// The hash ran ahead of the disk; rebuild it from what landed.
			w.h.Reset()
			if herr := hashPrefix(context.Background(), w.h, w.f, w.offset+int64(n)); herr != nil {
				err = errors.Join(err, fmt.Errorf("rehash: %w", herr))
				w.broken = true
			}
		}
	}
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	if w.offset-w.flushed >= writebackChunk {
		startWriteback(w.f, w.flushed, w.offset-w.flushed)
		w.flushed = w.offset
	}
	return n, nil
}

// stagedWrite is Write for a direct ingest. A blob is written once and
// read back at most once soon after, so it skips the page cache: its bytes
// are hashed, gathered into an aligned chunk and written with O_DIRECT a
// whole chunk at a time. That saves a copy and, above all, the fresh
// page-cache pages (on this VM touching memory the host reclaimed costs
// ~2 ms per MB, as much as hashing it). The last partial chunk is written
// through the page cache by flushStage (at Commit, Close or Truncate), so
// Offset and the data file agree whenever the Writer is not in use.
func (w *writer) stagedWrite(p []byte) (int, error) {
	if w.broken {
		return 0, fmt.Errorf("ingest %q: an earlier write failed: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	w.h.Write(p)
	stage := *w.stage
	for done := 0; done < len(p); {
		c := copy(stage[w.staged:], p[done:])
		w.staged += c
		done += c
		if w.staged < len(stage) {
			break
		}
		at := w.offset + int64(done) - int64(w.staged)
		if err := w.writeStage(at); err != nil {
			return 0, err
		}
	}
	w.offset += int64(len(p))
	return len(p), nil
}

// writeStage writes the staged bytes at file offset at. A filesystem that
// took O_DIRECT but refuses the write gets it, and the rest, buffered.
func (w *writer) writeStage(at int64) error {
	b := (*w.stage)[:w.staged]
	n, err := w.f.WriteAt(b, at)
	if err != nil && n == 0 && isDirectRefused(err) {
		if err = setDirect(w.f, false); err == nil {
			n, err = w.f.WriteAt(b, at)
		}
	}
	if err != nil {
		// The hash holds bytes the file does not: a new Writer rehashes
		// what landed and resumes.
		w.offset, w.staged, w.broken = at+int64(n), 0, true
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	w.staged = 0
	return nil
}

// flushStage writes the staged tail through the page cache (direct I/O
// cannot write a partial block) and ends direct mode, returning the buffer.
func (w *writer) flushStage() error {
	if w.stage == nil {
		return nil
	}
	err := setDirect(w.f, false)
	if err == nil && w.staged > 0 {
		err = w.writeStage(w.offset - int64(w.staged))
	}
	stagePool.Put(w.stage)
	w.stage, w.staged = nil, 0
	if err != nil {
		w.broken = true
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return nil
}

func (w *writer) Truncate(size int64) error {
	if w.done {
		return w.errDone()
	}
	if err := w.flushStage(); err != nil {
		return err
	}
	if size < 0 || size > w.offset {
		return fmt.Errorf("ingest %q: truncate to %d, have %d bytes: %w", w.ref, size, w.offset, errdefs.ErrInvalidArgument)
	}
	if err := w.f.Truncate(size); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	// Until the rehash succeeds the hash does not match the file.
	w.h.Reset()
	w.offset, w.broken = 0, true
	if err := hashPrefix(context.Background(), w.h, w.f, size); err != nil {
		return fmt.Errorf("ingest %q: rehash: %w", w.ref, err)
	}
	w.offset, w.broken = size, false
	w.flushed = min(w.flushed, size)
	return nil
}

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest) error {
	if w.done {
		return w.errDone()
	}
	defer w.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.flushStage(); err != nil {
		return err
	}
	if w.broken {
		return fmt.Errorf("commit %q: an earlier write failed: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	if expected == "" {
		expected = w.expected.Digest
	}
	if size == 0 {
		size = w.expected.Size
	}
	if w.expected.Digest != "" && expected != w.expected.Digest {
		return fmt.Errorf("commit %q: digest %s differs from the %s this writer was opened for: %w",
			w.ref, expected, w.expected.Digest, errdefs.ErrInvalidArgument)
	}
	if expected != "" && expected.Algorithm() != w.alg {
		return fmt.Errorf("commit %q: expected %s but the writer hashes with %s: %w",
			w.ref, expected, w.alg, errdefs.ErrInvalidArgument)
	}
	if size > 0 && w.offset != size {
		w.discard(ctx)
		return fmt.Errorf("commit %q: size mismatch: got %d bytes, expected %d: %w",
			w.ref, w.offset, size, errdefs.ErrInvalidArgument)
	}
	actual := w.Digest()
	if expected != "" && actual != expected {
		w.discard(ctx)
		return fmt.Errorf("commit %q: digest mismatch: content hashes to %s, expected %s: %w",
			w.ref, actual, expected, errdefs.ErrInvalidArgument)
	}

	dst, err := w.s.blobPath(actual)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dst); err == nil {
		// Same digest, same bytes: someone committed them first.
		w.discard(ctx)
		return nil
	}
	// Mode and data must be durable before the name appears: after a crash a
	// blob is either absent or complete.
	if err := w.f.Chmod(0o444); err != nil {
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("commit %q: sync: %w", w.ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	if err := os.Rename(filepath.Join(w.dir, ingestDataFile), dst); err != nil {
		return fmt.Errorf("commit %q: %w", w.ref, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("commit %q: sync blob dir: %w", w.ref, err)
	}
	// What remains is ingest.json; losing it to a crash only leaves an empty
	// ingest that Open removes.
	if err := os.RemoveAll(w.dir); err != nil {
		w.s.log.WarnContext(ctx, "remove committed ingest", "ref", w.ref, "err", err)
	}
	return nil
}

// Close ends the Writer. Without Commit the bytes stay for a later Writer
// with the same ref; Abort drops them.
func (w *writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	// Keep every byte written so far for a later Writer to resume from.
	ferr := w.flushStage()
	err := w.f.Close()
	w.release()
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return ferr
}

// discard drops the ingest after bytes proved wrong, so a retry starts from
// zero instead of resuming bad bytes.
func (w *writer) discard(ctx context.Context) {
	if err := os.RemoveAll(w.dir); err != nil {
		w.s.log.WarnContext(ctx, "discard ingest", "ref", w.ref, "err", err)
	}
}

func (w *writer) errDone() error {
	return fmt.Errorf("ingest %q: writer already committed or closed: %w", w.ref, errdefs.ErrFailedPrecondition)
}

// Status implements IngestManager.
func (s *Store) Status(ctx context.Context, ref string) (Status, error) {
	st, err := s.status(s.ingestDir(ref))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && st.Ref != ref) {
		return Status{}, fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	if err != nil {
		return Status{}, fmt.Errorf("ingest %q: %w", ref, err)
	}
	return st, nil
}

func (s *Store) status(dir string) (Status, error) {
	m, err := readIngestMeta(dir)
	if err != nil {
		return Status{}, err
	}
	st := Status{
		Ref:       m.Ref,
		Total:     m.Expected.Size,
		Expected:  m.Expected.Digest,
		StartedAt: m.StartedAt,
		UpdatedAt: m.StartedAt,
		Active:    s.locks.held(refKey(m.Ref)),
	}
	fi, err := os.Stat(filepath.Join(dir, ingestDataFile))
	if err != nil {
		return Status{}, err
	}
	st.Offset, st.UpdatedAt = fi.Size(), fi.ModTime()
	return st, nil
}

// ListStatuses implements IngestManager; ingests it cannot read are left out.
func (s *Store) ListStatuses(ctx context.Context) ([]Status, error) {
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []Status
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		st, err := s.status(filepath.Join(s.ingestRoot(), e.Name()))
		if err != nil {
			continue // half-created or half-removed; Open cleans it up
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// Abort implements IngestManager.
func (s *Store) Abort(ctx context.Context, ref string) error {
	unlock, ok := s.locks.tryLock(refKey(ref))
	if !ok {
		return fmt.Errorf("abort ingest %q: a writer is active: %w", ref, errdefs.ErrConflict)
	}
	defer unlock()
	dir := s.ingestDir(ref)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("abort ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return fmt.Errorf("abort ingest %q: %w", ref, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("abort ingest %q: %w", ref, err)
	}
	return nil
}

// cleanIngests runs at Open, before any Writer exists. It keeps what can be
// resumed and removes the rest: stray files, ingests without readable
// metadata or data (a crash mid-create or mid-commit), and ingests idle for
// longer than expiry.
func (s *Store) cleanIngests(ctx context.Context, expiry time.Duration) error {
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return err
	}
	now := time.Now()
	for _, e := range entries {
		p := filepath.Join(s.ingestRoot(), e.Name())
		reason := ""
		if !e.IsDir() {
			reason = "not an ingest"
		} else if st, err := s.status(p); err != nil {
			reason = "incomplete: " + err.Error()
		} else if s.ingestDir(st.Ref) != p {
			reason = "misplaced"
		} else if expiry > 0 && now.Sub(st.UpdatedAt) > expiry {
			reason = "expired"
		}
		if reason == "" {
			continue
		}
		s.log.InfoContext(ctx, "removing leftover ingest", "path", p, "reason", reason)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}
