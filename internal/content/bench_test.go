package content_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/content/contenttest"
)

const benchSize = 100 << 20

// BenchmarkWriteBlob100MB is one full ingest: hash, write, fsync, rename.
// Compare its MB/s with BenchmarkSHA256 (the hashing floor).
func BenchmarkWriteBlob100MB(b *testing.B) {
	data, desc := contenttest.Blob(1, benchSize)
	ctx := context.Background()
	b.SetBytes(benchSize)
	for b.Loop() {
		b.StopTimer()
		s, err := content.Open(ctx, b.TempDir(), content.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSHA256(b *testing.B) {
	data, _ := contenttest.Blob(1, benchSize)
	b.SetBytes(benchSize)
	for b.Loop() {
		sha256.Sum256(data)
	}
}

// BenchmarkVerify100MB rehashes a committed blob from the page cache.
func BenchmarkVerify100MB(b *testing.B) {
	data, desc := contenttest.Blob(1, benchSize)
	ctx := context.Background()
	s, err := content.Open(ctx, b.TempDir(), content.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := s.Verify(ctx, desc.Digest); err != nil {
			b.Fatal(err)
		}
	}
}
