package content

import (
	"errors"
	"io"
	"os"
)

// NewSequentialReader reads ra from its start to its end, like NewReader,
// and Close releases what it holds (not ra). For a blob of this package's
// Store of at least directMin bytes it reads through its own O_DIRECT
// descriptor into a pooled aligned buffer: unpacking reads a layer once,
// so the page cache would only cost a copy and fresh pages (see
// stagedWrite). Anything else, or a filesystem refusing direct reads,
// reads through ra.
func NewSequentialReader(ra ReaderAt) io.ReadCloser {
	fr, ok := ra.(*fileReaderAt)
	if !ok || fr.size < directMin {
		return io.NopCloser(NewReader(ra))
	}
	f, err := openDirect(fr.File)
	if err != nil {
		return io.NopCloser(NewReader(ra))
	}
	return &directReader{ra: ra, f: f, buf: stagePool.Get().(*[]byte), size: fr.size}
}

// directReader reads whole aligned chunks with O_DIRECT and serves them.
type directReader struct {
	ra   ReaderAt
	f    *os.File // nil once closed or fallen back to ra
	buf  *[]byte
	size int64
	off  int64 // file offset of the byte after the chunk in buf
	r, n int   // served and filled bytes of buf
	rest io.Reader
}

func (d *directReader) Read(p []byte) (int, error) {
	if d.rest != nil {
		return d.rest.Read(p)
	}
	if d.r == d.n {
		if d.off >= d.size {
			return 0, io.EOF
		}
		if d.f == nil {
			return 0, os.ErrClosed
		}
		n, err := d.f.ReadAt(*d.buf, d.off)
		if errors.Is(err, io.EOF) && d.off+int64(n) == d.size {
			err = nil
		}
		if err != nil && n == 0 && isDirectRefused(err) {
			// Direct reads refused after all: the rest through ra.
			d.rest = io.NewSectionReader(d.ra, d.off, d.size-d.off)
			d.release()
			return d.rest.Read(p)
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.ErrUnexpectedEOF
		}
		d.off += int64(n)
		d.r, d.n = 0, n
	}
	c := copy(p, (*d.buf)[d.r:d.n])
	d.r += c
	return c, nil
}

func (d *directReader) release() {
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
	if d.buf != nil {
		stagePool.Put(d.buf)
		d.buf = nil
	}
}

func (d *directReader) Close() error {
	d.release()
	return nil
}
