package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/repodb"
)

var (
	errUploadUnknown = newError(http.StatusNotFound, codeBlobUploadUnknown, "blob upload unknown to registry")
	errUploadInvalid = newError(http.StatusBadRequest, codeBlobUploadInvalid, "blob upload invalid")
)

// session is one upload in progress. Between requests it keeps its content
// Writer open so a chunked upload is hashed once, as it arrives; the janitor
// closes idle ones, and the next request reopens the ingest, which rehashes
// what is on disk and carries on.
type session struct {
	mu       sync.Mutex
	id, repo string
	w        content.Writer
	lastUsed time.Time
	done     bool
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessions() *sessions { return &sessions{m: map[string]*session{}} }

func (ss *sessions) get(id, repo string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok {
		s = &session{id: id, repo: repo}
		ss.m[id] = s
	}
	return s
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

func (ss *sessions) list() []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]*session, 0, len(ss.m))
	for _, s := range ss.m {
		out = append(out, s)
	}
	return out
}

func (ss *sessions) closeAll() {
	for _, s := range ss.list() {
		s.mu.Lock()
		if s.w != nil {
			s.w.Close()
			s.w = nil
		}
		s.mu.Unlock()
	}
}

// ingestRef names an upload's ingest in the content store; the prefix keeps
// the registry's ingests apart from a daemon's.
func ingestRef(id string) string { return "registry-upload-" + id }

func newUploadID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	if rt.ref == "" {
		if r.Method != http.MethodPost {
			return errMethod
		}
		return s.startUpload(w, r, rt.name)
	}
	ctx := r.Context()
	u, err := s.db.Upload(ctx, rt.ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return errUploadUnknown
		}
		return err
	}
	if u.Repo != rt.name {
		return errUploadUnknown
	}
	sess := s.uploads.get(u.ID, u.Repo)
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.done {
		return errUploadUnknown
	}
	sess.lastUsed = time.Now()
	switch r.Method {
	case http.MethodGet:
		off, err := s.sessionOffset(ctx, sess)
		if err != nil {
			return err
		}
		uploadProgress(w, sess, off, http.StatusNoContent)
		return nil
	case http.MethodPatch:
		s.metrics.UploadStarted()
		defer s.metrics.UploadFinished()
		if err := s.appendChunk(w, r, sess); err != nil {
			return err
		}
		uploadProgress(w, sess, sess.w.Offset(), http.StatusAccepted)
		return nil
	case http.MethodPut:
		s.metrics.UploadStarted()
		defer s.metrics.UploadFinished()
		return s.finishUpload(w, r, sess)
	case http.MethodDelete:
		if sess.w != nil {
			sess.w.Close()
			sess.w = nil
		}
		if err := s.store.Abort(ctx, ingestRef(sess.id)); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		if err := s.endSession(ctx, sess); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return errMethod
}

func uploadProgress(w http.ResponseWriter, sess *session, offset int64, status int) {
	h := w.Header()
	h.Set("Location", uploadLocation(sess.repo, sess.id))
	h.Set("Docker-Upload-UUID", sess.id)
	// distribution answers 0-0 for an empty upload and clients expect it.
	h.Set("Range", fmt.Sprintf("0-%d", max(offset-1, 0)))
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func (s *Server) sessionOffset(ctx context.Context, sess *session) (int64, error) {
	if sess.w != nil {
		return sess.w.Offset(), nil
	}
	st, err := s.store.Status(ctx, ingestRef(sess.id))
	if errdefs.IsNotFound(err) {
		return 0, nil
	}
	return st.Offset, err
}

// writer returns the session's open Writer, opening (and so resuming) the
// ingest when needed. Uploads never know their digest in advance, so the
// ingest hashes with the canonical algorithm (see commitOther).
func (s *Server) writer(ctx context.Context, sess *session) (content.Writer, error) {
	if sess.w != nil {
		return sess.w, nil
	}
	w, err := s.store.Writer(ctx, ingestRef(sess.id), v1.Descriptor{})
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", sess.id, err)
	}
	sess.w = w
	return w, nil
}

func (s *Server) endSession(ctx context.Context, sess *session) error {
	sess.done = true
	s.uploads.drop(sess.id)
	return s.db.DeleteUpload(ctx, sess.id)
}

// startUpload handles POST /v2/<name>/blobs/uploads/: a cross-repository
// mount, a monolithic upload (?digest=), or a new session.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, repo string) error {
	ctx := r.Context()
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		if d, ok := parseDigest(m); ok {
			done, err := s.mount(ctx, r, repo, d, q.Get("from"))
			if err != nil {
				return err
			}
			if done {
				blobCreated(w, repo, d)
				return nil
			}
		}
		// Not mountable: the spec says to start an ordinary upload.
	}
	if ds := q.Get("digest"); ds != "" {
		d, ok := parseDigest(ds)
		if !ok {
			return newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest").with(map[string]string{"digest": ds})
		}
		s.metrics.UploadStarted()
		defer s.metrics.UploadFinished()
		if err := s.putMonolithic(ctx, r, repo, d); err != nil {
			return err
		}
		blobCreated(w, repo, d)
		return nil
	}
	u := repodb.Upload{ID: newUploadID(), Repo: repo, StartedAt: time.Now().UTC()}
	if err := s.db.PutUpload(ctx, u); err != nil {
		return err
	}
	sess := s.uploads.get(u.ID, repo)
	sess.lastUsed = time.Now()
	uploadProgress(w, sess, 0, http.StatusAccepted)
	return nil
}

// mount links a blob of another repository into repo. from must be a
// repository the client may pull from; without from, any repository of
// this registry that holds the blob will do (distribution-spec 1.1), which
// leaks nothing because every user who may push here may pull everywhere.
func (s *Server) mount(ctx context.Context, r *http.Request, repo string, d digest.Digest, from string) (bool, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	var size int64
	var err error
	switch {
	case from != "":
		if !s.names.validName(from) {
			return false, nil
		}
		if s.opts.Auth != nil {
			if _, err := s.opts.Auth.Authorize(r, []auth.Access{auth.Repository(from, "pull")}); err != nil {
				return false, nil
			}
		}
		size, err = s.db.BlobSize(ctx, from, d)
	default:
		size, err = s.db.FindBlob(ctx, d)
	}
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if ok, err := content.Exists(ctx, s.store, d); err != nil || !ok {
		return false, err
	}
	if err := s.db.LinkBlob(ctx, repo, d, size, false); err != nil {
		return false, err
	}
	return true, nil
}

// putMonolithic stores a whole blob sent in one POST.
func (s *Server) putMonolithic(ctx context.Context, r *http.Request, repo string, d digest.Digest) error {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	desc := v1.Descriptor{Digest: d}
	if r.ContentLength > 0 {
		desc.Size = r.ContentLength
	}
	ref := ingestRef(newUploadID())
	w, err := s.store.Writer(ctx, ref, desc)
	if errdefs.IsAlreadyExists(err) {
		// Have it already; still check the client does too, so knowing a
		// digest is not enough to claim a blob.
		h := d.Algorithm().Hash()
		n, err := copyBody(h, r.Body)
		if err != nil {
			return fmt.Errorf("read blob: %w", err)
		}
		if digest.NewDigest(d.Algorithm(), h) != d {
			return errDigestInvalid.with(map[string]string{"digest": d.String()})
		}
		return s.db.LinkBlob(ctx, repo, d, n, false)
	}
	if err != nil {
		if errdefs.IsInvalidArgument(err) {
			return errDigestInvalid.with(map[string]string{"digest": d.String()})
		}
		return err
	}
	n, err := copyBody(w, r.Body)
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = newError(http.StatusBadRequest, codeSizeInvalid, "body length differs from Content-Length")
	}
	if err == nil {
		err = w.Commit(ctx, n, d)
		if errdefs.IsInvalidArgument(err) {
			err = errDigestInvalid.with(map[string]string{"digest": d.String()})
		}
	}
	if err != nil {
		w.Close()
		s.store.Abort(context.WithoutCancel(ctx), ref)
		if errdefs.IsInvalidArgument(err) {
			return errDigestInvalid.with(map[string]string{"digest": d.String()})
		}
		return err
	}
	return s.db.LinkBlob(ctx, repo, d, n, true)
}

// appendChunk writes the request body at the end of the upload. With
// Content-Range the chunk must start where the upload ends (else 416, the
// upload unchanged) and be exactly as long as the range says (else 400 and
// the bytes of the bad chunk are dropped again).
func (s *Server) appendChunk(w http.ResponseWriter, r *http.Request, sess *session) error {
	ctx := r.Context()
	wr, err := s.writer(ctx, sess)
	if err != nil {
		return err
	}
	start := wr.Offset()
	want := int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		from, to, ok := parseContentRange(cr)
		if !ok {
			return errUploadInvalid.with(map[string]string{"Content-Range": cr})
		}
		if from != start {
			h := w.Header()
			h.Set("Location", uploadLocation(sess.repo, sess.id))
			h.Set("Range", fmt.Sprintf("0-%d", max(start-1, 0)))
			h.Set("Docker-Upload-UUID", sess.id)
			return newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				fmt.Sprintf("chunk starts at %d, upload has %d bytes", from, start))
		}
		want = to - from + 1
		if r.ContentLength >= 0 && r.ContentLength != want {
			return newError(http.StatusBadRequest, codeSizeInvalid, "Content-Length differs from Content-Range")
		}
	}
	body := io.Reader(r.Body)
	if want >= 0 {
		// One byte more than announced is enough to notice a liar.
		body = io.LimitReader(r.Body, want+1)
	}
	n, err := copyBody(wr, body)
	if err == nil && want >= 0 && n != want {
		err = newError(http.StatusBadRequest, codeSizeInvalid, fmt.Sprintf("chunk has %d bytes, Content-Range says %d", n, want))
	}
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = newError(http.StatusBadRequest, codeSizeInvalid, "body length differs from Content-Length")
	}
	if err != nil {
		// Drop the partial chunk so the client can resend it whole.
		if terr := wr.Truncate(start); terr != nil {
			wr.Close()
			sess.w = nil
			return errors.Join(err, terr)
		}
		var ae *apiError
		if errors.As(err, &ae) {
			return err
		}
		return fmt.Errorf("upload %s: %w", sess.id, err)
	}
	return nil
}

// parseContentRange accepts "start-end" as the spec writes it, and the
// "bytes start-end/*" and "bytes=start-end" forms some clients send.
func parseContentRange(v string) (int64, int64, bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "bytes")
	v = strings.TrimLeft(v, " =")
	v, _, _ = strings.Cut(v, "/")
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, false
	}
	from, err1 := strconv.ParseInt(a, 10, 64)
	to, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || from < 0 || to < from {
		return 0, 0, false
	}
	return from, to, true
}

// finishUpload handles the closing PUT: an optional last chunk, then the
// digest check and commit.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, sess *session) error {
	ctx := r.Context()
	ds := r.URL.Query().Get("digest")
	d, ok := parseDigest(ds)
	if !ok {
		return newError(http.StatusBadRequest, codeDigestInvalid, "missing or invalid digest").with(map[string]string{"digest": ds})
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Range") != "" {
		if err := s.appendChunk(w, r, sess); err != nil {
			return err
		}
	}
	wr, err := s.writer(ctx, sess)
	if err != nil {
		return err
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	size := wr.Offset()
	existed, err := content.Exists(ctx, s.store, d)
	if err != nil {
		return err
	}
	if d.Algorithm() == digest.Canonical {
		err = wr.Commit(ctx, size, d)
	} else {
		err = s.commitOther(ctx, wr, size, d)
	}
	sess.w = nil // Commit ends the Writer, whatever the outcome
	if errdefs.IsInvalidArgument(err) {
		// The store discarded the bytes; the upload cannot be resumed.
		s.endSession(ctx, sess)
		return errDigestInvalid.with(map[string]string{"digest": d.String()})
	}
	if err != nil {
		return err
	}
	if err := s.db.LinkBlob(ctx, sess.repo, d, size, !existed); err != nil {
		return err
	}
	if err := s.endSession(ctx, sess); err != nil {
		return err
	}
	blobCreated(w, sess.repo, d)
	return nil
}

// commitOther commits an upload whose digest uses another algorithm than
// the ingest hashed with (sha512 pushes): the bytes are committed under
// their canonical digest, read back once to compute the wanted digest, and
// stored again under it. The canonical copy is registry-owned and left for
// garbage collection. A rare path, so simplicity wins over the second copy.
func (s *Server) commitOther(ctx context.Context, wr content.Writer, size int64, want digest.Digest) error {
	canonical := wr.Digest()
	existed, err := content.Exists(ctx, s.store, canonical)
	if err != nil {
		return err
	}
	if err := wr.Commit(ctx, size, ""); err != nil {
		return err
	}
	if !existed {
		if err := s.db.Own(ctx, canonical); err != nil {
			return err
		}
	}
	ra, err := s.store.ReaderAt(ctx, canonical)
	if err != nil {
		return err
	}
	defer ra.Close()
	h := want.Algorithm().Hash()
	if _, err := io.Copy(h, content.NewReader(ra)); err != nil {
		return err
	}
	if digest.NewDigest(want.Algorithm(), h) != want {
		return fmt.Errorf("upload hashes to another %s digest: %w", want.Algorithm(), errdefs.ErrInvalidArgument)
	}
	return s.writeBlob(ctx, v1.Descriptor{Digest: want, Size: size}, content.NewReader(ra))
}

// writeBlob stores a blob under an ingest ref of the registry's own. Not
// content.WriteBlob: that names the ingest after the digest, and a daemon
// sharing the store may be ingesting the same digest under that name in its
// own process, where the store's in-memory locks cannot see it.
func (s *Server) writeBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	ref := ingestRef(newUploadID())
	w, err := s.store.Writer(ctx, ref, desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := copyBody(w, r); err != nil {
		w.Close()
		s.store.Abort(context.WithoutCancel(ctx), ref)
		return err
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		w.Close()
		s.store.Abort(context.WithoutCancel(ctx), ref)
		return err
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyBody copies in full 1 MiB chunks: the content store hashes and writes
// large chunks in parallel, and network reads are much smaller than that.
func copyBody(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// janitor closes the files of idle uploads and drops expired ones.
func (s *Server) janitor(ctx context.Context) {
	defer close(s.janitorDone)
	t := time.NewTicker(min(s.opts.UploadIdle/2, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for _, sess := range s.uploads.list() {
			if !sess.mu.TryLock() {
				continue // a request is using it
			}
			if sess.w != nil && now.Sub(sess.lastUsed) > s.opts.UploadIdle {
				sess.w.Close()
				sess.w = nil
			}
			sess.mu.Unlock()
		}
		s.expireUploads(ctx, now)
	}
}

// expireUploads drops sessions untouched for longer than UploadExpiry.
func (s *Server) expireUploads(ctx context.Context, now time.Time) {
	ups, err := s.db.Uploads(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "list uploads", "err", err)
		return
	}
	for _, u := range ups {
		last := u.StartedAt
		if st, err := s.store.Status(ctx, ingestRef(u.ID)); err == nil {
			if st.Active {
				continue
			}
			last = st.UpdatedAt
		}
		if now.Sub(last) < s.opts.UploadExpiry {
			continue
		}
		s.log.InfoContext(ctx, "dropping expired upload", "id", u.ID, "repo", u.Repo)
		if err := s.store.Abort(ctx, ingestRef(u.ID)); err != nil && !errdefs.IsNotFound(err) {
			continue
		}
		s.db.DeleteUpload(ctx, u.ID)
		s.uploads.drop(u.ID)
	}
}
