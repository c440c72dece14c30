package archive

import (
	"context"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// TarEntry writes one entry of a tree as a tar stream under the name
// rename: base in directory dirfd (not followed if it is a symlink), and
// everything below it when it is a directory, as "rename/...". It is what
// docker cp sends out of a container; the format is Tar's (nothing
// translated, mtimes in whole seconds). A rename of "." gives "./" and
// "./child" entries, docker's form for "the content of"; "/" gives "/"
// and "/child", as docker's copy of a container's root.
func TarEntry(ctx context.Context, dirfd int, base, rename string, w io.Writer) error {
	t := &tarWalker{ctx: ctx}
	defer t.close()
	t.start(w)
	e := dirEnt{base: base, name: strings.TrimSuffix(rename, "/"), key: base}
	switch e.name {
	case "":
		if rename == "/" {
			e.name = "/" // "/", "/bin/", …: docker's names for a copy of "/"
			break
		}
		e.name = "."
	}
	if err := unix.Fstatat(dirfd, base, &e.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("archive: %s: %w", base, classify(err))
	}
	if err := t.entry(dirfd, &e); err != nil {
		return fmt.Errorf("archive: %s: %w", rename, err)
	}
	return t.tw.Close()
}
