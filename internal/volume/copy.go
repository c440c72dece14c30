package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/berth-dev/berth/internal/archive"
)

// Populate fills the volume called name, if it is empty, with the content
// the image has at src (a path in a starting container's mounted rootfs):
// docker's copy-up of a new volume. Two containers starting on the same new
// volume copy one after the other, so the second finds it full.
func (s *Store) Populate(ctx context.Context, name, src string) (bool, error) {
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	v, err := s.Get(name)
	if err != nil {
		return false, err
	}
	return copyUp(ctx, src, v.Mountpoint)
}

// copyUp fills an empty directory dst with the tree at src: files,
// ownership, modes, links and xattrs go through the layer tar code, and
// dst takes src's own owner and mode. It reports whether it copied:
// nothing happens when dst is not empty or src is not a directory.
func copyUp(ctx context.Context, src, dst string) (bool, error) {
	fi, err := os.Lstat(src)
	if err != nil || !fi.IsDir() {
		return false, nil
	}
	empty, err := isEmptyDir(dst)
	if err != nil || !empty {
		return false, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Tar(ctx, src, pw)) }()
	_, err = archive.Apply(ctx, dst, pr, archive.ApplyOptions{})
	pr.CloseWithError(err) // ends Tar if Apply stopped early
	if err != nil {
		return false, fmt.Errorf("copy %s into volume: %w", src, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return true, fmt.Errorf("copy %s into volume: %w", src, err)
		}
	}
	if err := os.Chmod(dst, fi.Mode().Perm()|fi.Mode()&(os.ModeSticky|os.ModeSetgid|os.ModeSetuid)); err != nil {
		return true, fmt.Errorf("copy %s into volume: %w", src, err)
	}
	return true, nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}
