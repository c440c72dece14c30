// Package contenttest is the conformance suite every content store
// implementation runs: the behaviour callers rely on, checked through the
// role interfaces only.
package contenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Store is what the suite needs from an implementation.
type Store interface {
	content.Provider
	content.Ingester
	content.Manager
	content.IngestManager
}

// Run runs the suite; newStore returns an empty store private to the test.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyBlob", testEmptyBlob},
		{"WrongDigest", testWrongDigest},
		{"WrongSize", testWrongSize},
		{"WriteBeyondSize", testWriteBeyondSize},
		{"AlreadyExists", testAlreadyExists},
		{"ConcurrentSameDigest", testConcurrentSameDigest},
		{"Resume", testResume},
		{"WriteBlobResumesSeekable", testWriteBlobResumesSeekable},
		{"TruncateRestarts", testTruncateRestarts},
		{"StatusAndAbort", testStatusAndAbort},
		{"UnknownDigestAtOpen", testUnknownDigestAtOpen},
		{"WalkDelete", testWalkDelete},
		{"InvalidDigest", testInvalidDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

// Blob returns n pseudo-random bytes and their descriptor.
func Blob(seed uint64, n int) ([]byte, v1.Descriptor) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(n)}
}

func mustRead(t *testing.T, s content.Provider, desc v1.Descriptor) []byte {
	t.Helper()
	b, err := content.ReadBlob(context.Background(), s, desc)
	if err != nil {
		t.Fatalf("read %s: %v", desc.Digest, err)
	}
	return b
}

func requireAbsent(t *testing.T, s Store, dgst digest.Digest) {
	t.Helper()
	if ok, err := content.Exists(context.Background(), s, dgst); err != nil || ok {
		t.Fatalf("%s: exists=%v err=%v, want absent", dgst, ok, err)
	}
	if _, err := s.ReaderAt(context.Background(), dgst); !errdefs.IsNotFound(err) {
		t.Fatalf("ReaderAt(%s) = %v, want NotFound", dgst, err)
	}
}

func testRoundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(1, 3<<20+17)
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != desc.Digest || info.Size != desc.Size || info.CreatedAt.IsZero() {
		t.Fatalf("info = %+v, want %s size %d", info, desc.Digest, desc.Size)
	}
	if got := mustRead(t, s, desc); !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
	ra, err := s.ReaderAt(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	part := make([]byte, 100)
	if _, err := ra.ReadAt(part, 1<<20); err != nil || !bytes.Equal(part, data[1<<20:1<<20+100]) {
		t.Fatalf("ReadAt mid-blob: %v", err)
	}
	if all, err := io.ReadAll(content.NewReader(ra)); err != nil || !bytes.Equal(all, data) {
		t.Fatalf("NewReader: %v", err)
	}
	if st, err := s.ListStatuses(ctx); err != nil || len(st) != 0 {
		t.Fatalf("ingests after commit = %v, %v; want none", st, err)
	}
}

func testEmptyBlob(t *testing.T, s Store) {
	ctx := context.Background()
	desc := v1.Descriptor{Digest: digest.FromBytes(nil), Size: 0}
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, s, desc); len(got) != 0 {
		t.Fatalf("empty blob read %d bytes", len(got))
	}
}

func testWrongDigest(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(2, 1<<20)
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 1 // one wrong bit
	err := content.WriteBlob(ctx, s, desc, bytes.NewReader(bad))
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("wrong byte: err = %v, want InvalidArgument", err)
	}
	requireAbsent(t, s, desc.Digest)
	requireAbsent(t, s, digest.FromBytes(bad))
	if _, err := s.Status(ctx, desc.Digest.String()); !errdefs.IsNotFound(err) {
		t.Fatalf("ingest kept after digest mismatch: %v", err)
	}
	// The store stays usable: the right bytes go in afterwards.
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func testWrongSize(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(3, 4096)
	// Truncated body: the digest of the full blob, the bytes of half of it.
	err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data[:2048]))
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("short body: err = %v, want InvalidArgument", err)
	}
	requireAbsent(t, s, desc.Digest)
	if _, err := s.Status(ctx, desc.Digest.String()); !errdefs.IsNotFound(err) {
		t.Fatalf("ingest kept after size mismatch: %v", err)
	}
	// A descriptor whose size lies about correct bytes.
	lying := desc
	lying.Size = desc.Size + 1
	if err := content.WriteBlob(ctx, s, lying, bytes.NewReader(data)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("wrong size: err = %v, want InvalidArgument", err)
	}
	requireAbsent(t, s, desc.Digest)
}

func testWriteBeyondSize(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(4, 1000)
	desc.Size = 10
	w, err := s.Writer(ctx, "", desc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("write past size: err = %v, want InvalidArgument", err)
	}
}

func testAlreadyExists(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(5, 100)
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(ctx, "", desc); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Writer for a present blob: err = %v, want AlreadyExists", err)
	}
	// Committing the same bytes under an unknown digest is not an error.
	w, err := s.Writer(ctx, "other", v1.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatalf("commit of bytes already present: %v", err)
	}
}

// countingReader counts how many times a body was read to its end.
type countingReader struct {
	r    io.Reader
	full *atomic.Int32
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.full.Add(1)
	}
	return n, err
}

func testConcurrentSameDigest(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(6, 8<<20)
	var full atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			errs <- content.WriteBlob(ctx, s, desc, &countingReader{r: bytes.NewReader(data), full: &full})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := full.Load(); n != 1 {
		t.Fatalf("body consumed fully %d times, want once", n)
	}
	if got := mustRead(t, s, desc); !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
}

func testResume(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(7, 5<<20+3)
	const ref = "pull-layer-7"
	half := len(data) / 2

	w, err := s.Writer(ctx, ref, desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil { // the pull is interrupted
		t.Fatal(err)
	}
	st, err := s.Status(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if st.Offset != int64(half) || st.Total != desc.Size || st.Expected != desc.Digest || st.Active {
		t.Fatalf("status = %+v, want offset %d of %d, inactive", st, half, desc.Size)
	}

	w, err = s.Writer(ctx, ref, desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != int64(half) {
		t.Fatalf("resumed offset = %d, want %d", w.Offset(), half)
	}
	if w.Digest() != digest.FromBytes(data[:half]) {
		t.Fatal("resumed digest does not cover the bytes on disk")
	}
	if st, err := s.Status(ctx, ref); err != nil || !st.Active {
		t.Fatalf("status while writing = %+v, %v; want active", st, err)
	}
	if _, err := w.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, s, desc); !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
	if _, err := s.Status(ctx, ref); !errdefs.IsNotFound(err) {
		t.Fatalf("ingest left after commit: %v", err)
	}
}

// seekCounter records where a body was read from.
type seekCounter struct {
	*bytes.Reader
	read int
}

func (s *seekCounter) Read(p []byte) (int, error) {
	n, err := s.Reader.Read(p)
	s.read += n
	return n, err
}

func testWriteBlobResumesSeekable(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(8, 1<<20)
	w, err := s.Writer(ctx, "", desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := &seekCounter{Reader: bytes.NewReader(data)}
	if err := content.WriteBlob(ctx, s, desc, r); err != nil {
		t.Fatal(err)
	}
	if r.read != len(data)-1000 {
		t.Fatalf("read %d bytes of the body, want %d (the rest only)", r.read, len(data)-1000)
	}
	// A body that cannot seek restarts the ingest instead.
	data2, desc2 := Blob(9, 1<<20)
	w, err = s.Writer(ctx, "", desc2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data2[:1000]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := content.WriteBlob(ctx, s, desc2, io.MultiReader(bytes.NewReader(data2))); err != nil {
		t.Fatal(err)
	}
}

func testTruncateRestarts(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(10, 10000)
	w, err := s.Writer(ctx, "", desc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(bytes.Repeat([]byte{'x'}, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Truncate(6000); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("truncate past offset: %v", err)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("second commit: %v, want FailedPrecondition", err)
	}
}

func testStatusAndAbort(t *testing.T, s Store) {
	ctx := context.Background()
	data, _ := Blob(11, 1000)
	if _, err := s.Status(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("status of unknown ref: %v", err)
	}
	if err := s.Abort(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("abort of unknown ref: %v", err)
	}
	var refs []string
	for i, ref := range []string{"b", "a"} {
		w, err := s.Writer(ctx, ref, v1.Descriptor{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[:100*(i+1)]); err != nil {
			t.Fatal(err)
		}
		w.Close()
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	st, err := s.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Ref != "a" || st[0].Offset != 200 || st[1].Ref != "b" || st[1].Offset != 100 {
		t.Fatalf("statuses = %+v", st)
	}

	w, err := s.Writer(ctx, "a", v1.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Abort(ctx, "a"); !errdefs.IsConflict(err) {
		t.Fatalf("abort of an active ingest: %v, want Conflict", err)
	}
	w.Close()
	for _, ref := range refs {
		if err := s.Abort(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := s.ListStatuses(ctx); err != nil || len(st) != 0 {
		t.Fatalf("statuses after abort = %+v, %v", st, err)
	}
}

func testUnknownDigestAtOpen(t *testing.T, s Store) {
	ctx := context.Background()
	data, desc := Blob(12, 70000)
	w, err := s.Writer(ctx, "push-manifest", v1.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, s, desc); !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
}

func testWalkDelete(t *testing.T, s Store) {
	ctx := context.Background()
	want := map[digest.Digest]int64{}
	for i := range 5 {
		data, desc := Blob(uint64(100+i), 1000*(i+1))
		if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		want[desc.Digest] = desc.Size
	}
	walk := func() map[digest.Digest]int64 {
		got := map[digest.Digest]int64{}
		if err := s.Walk(ctx, func(i content.Info) error { got[i.Digest] = i.Size; return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := walk(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("walk = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Walk(ctx, func(content.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("walk did not stop: err=%v calls=%d", err, calls)
	}
	for d := range want {
		if err := s.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		delete(want, d)
		if err := s.Delete(ctx, d); !errdefs.IsNotFound(err) {
			t.Fatalf("second delete: %v, want NotFound", err)
		}
		requireAbsent(t, s, d)
		break
	}
	if got := walk(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("walk after delete = %v, want %v", got, want)
	}
}

func testInvalidDigest(t *testing.T, s Store) {
	ctx := context.Background()
	for _, d := range []digest.Digest{"sha256:../../etc/passwd", "md5:abc", "sha256:0123", "garbage"} {
		if _, err := s.Info(ctx, d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Info(%q) = %v, want InvalidArgument", d, err)
		}
		if _, err := s.Writer(ctx, "", v1.Descriptor{Digest: d}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Writer(%q) = %v, want InvalidArgument", d, err)
		}
		if err := s.Delete(ctx, d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Delete(%q) = %v, want InvalidArgument", d, err)
		}
	}
}
