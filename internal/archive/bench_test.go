package archive

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/berth-dev/berth/internal/testutil"
)

// benchLayer is a generated layer shaped like a distro layer: 5,000 files in
// 100 directories, mostly small with a few large ones, content half random
// and half text so gzip shrinks it about 2:1 (~105 MB unpacked, ~52 MB gzip).
var benchLayer = sync.OnceValues(func() (gz []byte, tarSize int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := []byte("the quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet 0123456789\n")
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	now := time.Unix(1700000000, 0)
	content := make([]byte, 12<<20)
	for i := range content {
		if (i/4096)%2 == 0 {
			content[i] = byte(rng.Uint32())
		} else {
			content[i] = text[i%len(text)]
		}
	}
	for d := range 100 {
		dir := fmt.Sprintf("usr/share/pkg%03d/", d)
		if d == 0 {
			tw.WriteHeader(&tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now})
			tw.WriteHeader(&tar.Header{Name: "usr/share/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now})
		}
		tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now})
		for f := range 50 {
			size := 1024 + rng.IntN(14*1024)
			if f == 0 && d%2 == 0 {
				size = 256<<10 + rng.IntN(2<<20) // 50 large files
			}
			off := rng.IntN(len(content) - size)
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sfile%02d", dir, f), Typeflag: tar.TypeReg,
				Mode: 0o644, Size: int64(size), ModTime: now})
			tw.Write(content[off : off+size])
		}
	}
	tw.Close()
	var out bytes.Buffer
	zw, _ := kgzip.NewWriterLevel(&out, kgzip.DefaultCompression)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	return out.Bytes(), int64(tarBuf.Len())
})

// benchDir is where Apply benchmarks unpack: $BERTH_BENCH_DIR (to measure
// a given filesystem, e.g. a tmpfs for Apply's own CPU cost or a freshly
// made ext4) or a test temp dir.
func benchDir(b *testing.B) string {
	parent := os.Getenv("BERTH_BENCH_DIR")
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func BenchmarkGunzip(b *testing.B) {
	gz, size := benchLayer()
	buf := make([]byte, copyBufSize)
	run := func(b *testing.B, open func(io.Reader) (io.Reader, func())) {
		b.SetBytes(size)
		for b.Loop() {
			r, done := open(bytes.NewReader(gz))
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				b.Fatal(err)
			}
			done()
		}
	}
	b.Run("stdlib", func(b *testing.B) {
		run(b, func(r io.Reader) (io.Reader, func()) {
			zr, _ := stdgzip.NewReader(r)
			return zr, func() {}
		})
	})
	b.Run("klauspost", func(b *testing.B) {
		run(b, func(r io.Reader) (io.Reader, func()) {
			zr, _ := kgzip.NewReader(r)
			return zr, func() {}
		})
	})
	b.Run("DecompressStream", func(b *testing.B) {
		run(b, func(r io.Reader) (io.Reader, func()) {
			rc, _ := DecompressStream(r)
			return rc, func() { rc.Close() }
		})
	})
}

// BenchmarkApply unpacks the generated layer into a fresh directory; the
// MB/s are of unpacked bytes, comparable to BenchmarkGunzip's.
//
// Iterations keep their trees until the benchmark ends: on a journal-less
// ext4 (this machine's root) inode allocation skips inodes freed in the last
// minutes one by one (ext4's recently_deleted()), so deleting a tree makes
// the next one's file creation up to 100x slower, measuring the deletion
// rather than Apply.
func BenchmarkApply(b *testing.B) {
	testutil.RequireRoot(b)
	gz, size := benchLayer()
	zr, _ := kgzip.NewReader(bytes.NewReader(gz))
	raw, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		sync   bool
		reader func(io.Reader) (io.ReadCloser, error)
	}{
		{"DecompressStream", false, DecompressStream},
		{"DecompressStream+syncfs", true, DecompressStream},
		{"klauspost-inline", false, func(r io.Reader) (io.ReadCloser, error) { return kgzip.NewReader(r) }},
		{"uncompressed", false, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			base := benchDir(b)
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				b.StopTimer()
				dir := filepath.Join(base, fmt.Sprint(i))
				i++
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				var rc io.ReadCloser = io.NopCloser(bytes.NewReader(raw))
				b.StartTimer()
				if tc.reader != nil {
					var err error
					if rc, err = tc.reader(bytes.NewReader(gz)); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := Apply(context.Background(), dir, rc, ApplyOptions{NoSync: !tc.sync}); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}

// BenchmarkApplyVsGunzip times, in each iteration, one-core gunzip of the
// layer (klauspost, inline, to io.Discard) and a full Apply of it, and
// reports their ratio: the figure the pull target is stated in.
func BenchmarkApplyVsGunzip(b *testing.B) {
	testutil.RequireRoot(b)
	gz, size := benchLayer()
	base := benchDir(b)
	buf := make([]byte, copyBufSize)
	var tGunzip, tApply time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		zr, _ := kgzip.NewReader(bytes.NewReader(gz))
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{zr}, buf); err != nil {
			b.Fatal(err)
		}
		tGunzip += time.Since(start)

		dir := filepath.Join(base, fmt.Sprint(i))
		i++
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		rc, _ := DecompressStream(bytes.NewReader(gz))
		if _, err := Apply(context.Background(), dir, rc, ApplyOptions{NoSync: true}); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		tApply += time.Since(start)
	}
	n := float64(b.N)
	mb := float64(size) / 1e6
	b.ReportMetric(mb/(tGunzip.Seconds()/n), "gunzip-MB/s")
	b.ReportMetric(mb/(tApply.Seconds()/n), "apply-MB/s")
	b.ReportMetric(tApply.Seconds()/tGunzip.Seconds(), "apply/gunzip")
	b.ReportMetric(float64(len(gz))/1e6, "gz-MB")
}
