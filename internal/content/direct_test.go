package content

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestDirectIngest: a large blob goes through the O_DIRECT staging path in
// odd-sized writes; a Close half-way keeps every byte written (the staged
// tail included) for the next Writer, which resumes and commits a blob
// identical to the input.
func TestDirectIngest(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*directChunk+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	desc := v1.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}

	write := func(w Writer, b []byte) {
		t.Helper()
		for len(b) > 0 {
			n := min(len(b), 77777)
			if m, err := w.Write(b[:n]); err != nil || m != n {
				t.Fatalf("write: %d, %v", m, err)
			}
			b = b[n:]
		}
	}
	w, err := s.Writer(ctx, "", desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.(*writer).stage == nil {
		t.Skip("the test directory's filesystem has no O_DIRECT")
	}
	half := directChunk + 500000 // a full chunk written, a partial one staged
	write(w, data[:half])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.ingestDir(desc.Digest.String()), ingestDataFile))
	if err != nil || fi.Size() != int64(half) {
		t.Fatalf("ingest data after Close: %v, %v bytes; want %d", err, fi.Size(), half)
	}

	w, err = s.Writer(ctx, "", desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != int64(half) {
		t.Fatalf("resumed at %d, want %d", w.Offset(), half)
	}
	write(w, data[half:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBlob(ctx, s, desc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("committed blob differs from what was written")
	}

	// A fresh ingest through WriteBlob's copy loop.
	data[0] ^= 1
	desc = v1.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadBlob(ctx, s, desc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("WriteBlob: %v, equal %v", err, bytes.Equal(got, data))
	}
}

// TestSequentialReader: a large blob read through NewSequentialReader (its
// O_DIRECT path) in small reads gives back its bytes, as does a small one.
func TestSequentialReader(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1000, directMin, 2*directChunk + 4097} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*31 + n)
		}
		desc := v1.Descriptor{Digest: digest.FromBytes(data), Size: int64(n)}
		if err := WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		ra, err := s.ReaderAt(ctx, desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		sr := NewSequentialReader(ra)
		if _, direct := sr.(*directReader); direct != (n >= directMin) {
			t.Errorf("%d bytes: direct reader %v", n, direct)
		}
		var got bytes.Buffer
		buf := make([]byte, 33333)
		for {
			m, err := sr.Read(buf)
			got.Write(buf[:m])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%d bytes: read: %v", n, err)
			}
		}
		sr.Close()
		ra.Close()
		if !bytes.Equal(got.Bytes(), data) {
			t.Errorf("%d bytes: read back %d bytes, equal %v", n, got.Len(), bytes.Equal(got.Bytes(), data))
		}
	}
}
