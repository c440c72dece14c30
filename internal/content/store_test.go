package content_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/content/contenttest"
	"github.com/berth-dev/berth/internal/errdefs"
)

func openStore(t testing.TB, root string) *content.Store {
	t.Helper()
	s, err := content.Open(context.Background(), root, content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	contenttest.Run(t, func(t *testing.T) contenttest.Store { return openStore(t, t.TempDir()) })
}

// files lists the regular files under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLayoutAndMode(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	data, desc := contenttest.Blob(1, 1234)
	if err := content.WriteBlob(context.Background(), s, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "blobs", "sha256", desc.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("blob mode %v, want 0444", fi.Mode().Perm())
	}
	if got := files(t, filepath.Join(root, "ingest")); len(got) != 0 {
		t.Fatalf("ingest/ after commit holds %v", got)
	}
}

// TestMismatchLeavesNothing checks on disk what the conformance suite checks
// through the API: no file in blobs/, no temp file in ingest/.
func TestMismatchLeavesNothing(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	ctx := context.Background()
	data, desc := contenttest.Blob(2, 100000)

	bad := append([]byte(nil), data...)
	bad[0] ^= 0xff
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(bad)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("wrong digest: %v", err)
	}
	wrongSize := desc
	wrongSize.Size--
	w, err := s.Writer(ctx, "short", wrongSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:wrongSize.Size]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, wrongSize.Size, desc.Digest); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("wrong size: %v", err)
	}
	if got := files(t, root); len(got) != 0 {
		t.Fatalf("files left after rejected ingests: %v", got)
	}
}

// TestCrashLeftovers simulates what a crash can leave in ingest/ and checks
// Open keeps only what can be resumed and nothing shows up as a blob.
func TestCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	s := openStore(t, root)
	data, desc := contenttest.Blob(3, 50000)

	// A resumable ingest, as an interrupted pull leaves it.
	w, err := s.Writer(ctx, "resumable", desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:20000]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// An expired one.
	w, err = s.Writer(ctx, "old", v1.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:10])
	w.Close()
	old := time.Now().Add(-48 * time.Hour)
	oldDir := filepath.Join(root, "ingest", digest.FromString("old").Encoded())
	if err := os.Chtimes(filepath.Join(oldDir, "data"), old, old); err != nil {
		t.Fatal(err)
	}

	ingest := filepath.Join(root, "ingest")
	// A full temp file named like a blob but never committed.
	full := filepath.Join(ingest, "deadbeef")
	os.Mkdir(full, 0o700)
	os.WriteFile(filepath.Join(full, "data"), data, 0o600)
	// Torn metadata, stray files, a dir left by a crash after commit's rename.
	torn := filepath.Join(ingest, digest.FromString("torn").Encoded())
	os.Mkdir(torn, 0o700)
	os.WriteFile(filepath.Join(torn, "ingest.json"), []byte(`{"ref":"to`), 0o600)
	os.WriteFile(filepath.Join(torn, "data"), data, 0o600)
	os.WriteFile(filepath.Join(ingest, "stray.tmp"), data, 0o600)
	committed := filepath.Join(ingest, digest.FromString("committed").Encoded())
	os.Mkdir(committed, 0o700)
	os.WriteFile(filepath.Join(committed, "ingest.json"), []byte(`{"ref":"committed"}`), 0o600)

	s = openStore(t, root) // the restart
	if ok, _ := content.Exists(ctx, s, desc.Digest); ok {
		t.Fatal("partial ingest visible as a blob")
	}
	if n := 0; s.Walk(ctx, func(content.Info) error { n++; return nil }) != nil || n != 0 {
		t.Fatalf("walk after crash found %d blobs", n)
	}
	st, err := s.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Ref != "resumable" || st[0].Offset != 20000 {
		t.Fatalf("ingests after restart = %+v, want only the resumable one", st)
	}
	entries, _ := os.ReadDir(ingest)
	if len(entries) != 1 {
		t.Fatalf("ingest/ holds %d entries after Open, want 1", len(entries))
	}
	// And it resumes.
	w, err = s.Writer(ctx, "resumable", desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 20000 {
		t.Fatalf("offset %d after restart", w.Offset())
	}
	w.Write(data[20000:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
}

// TestResumeRejectsCorruptPartial: bytes damaged while the ingest sat on
// disk are rehashed on resume, so Commit catches them.
func TestResumeRejectsCorruptPartial(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	s := openStore(t, root)
	data, desc := contenttest.Blob(4, 10000)
	w, _ := s.Writer(ctx, "", desc)
	w.Write(data[:5000])
	w.Close()
	p := filepath.Join(root, "ingest", digest.FromString(desc.Digest.String()).Encoded(), "data")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{data[10] ^ 1}, 10)
	f.Close()
	w, err = s.Writer(ctx, "", desc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[5000:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("commit of corrupt partial: %v", err)
	}
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
		t.Fatalf("retry after discard: %v", err)
	}
}

func TestVerify(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	s := openStore(t, root)
	data, desc := contenttest.Blob(5, 3<<20)
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "blobs", "sha256", desc.Digest.Encoded())
	os.Chmod(p, 0o644)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{data[2<<20] ^ 0x80}, 2<<20) // one flipped bit
	f.Close()
	if err := s.Verify(ctx, desc.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("verify of corrupt blob: %v, want FailedPrecondition", err)
	}
	if err := s.Verify(ctx, digest.FromString("absent")); !errdefs.IsNotFound(err) {
		t.Fatalf("verify of absent blob: %v", err)
	}
}

func TestWriterWaitHonoursContext(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	_, desc := contenttest.Blob(6, 10)
	w, err := s.Writer(ctx, "", desc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	// Another ref, same digest: waits on the digest lock, then gives up.
	if _, err := s.Writer(cctx, "other", desc); err == nil || cctx.Err() == nil {
		t.Fatalf("second writer: %v, want a context error", err)
	}
}
