package content

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setDirect turns O_DIRECT on or off for f. Turning it on fails (EINVAL) on
// filesystems without direct I/O; the caller then stays buffered.
func setDirect(f *os.File, on bool) error {
	flags := 0
	if on {
		flags = unix.O_DIRECT
	}
	// F_SETFL changes only the status flags (O_APPEND, O_DIRECT, O_NOATIME,
	// O_NONBLOCK...); an ingest's data file uses none of the others.
	_, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, flags)
	return err
}

// isDirectRefused says whether a write failed because direct I/O does not
// suit it (alignment, or a filesystem that took the flag but not the write).
func isDirectRefused(err error) bool {
	return errors.Is(err, unix.EINVAL)
}

// openDirect opens f's file again, read-only with O_DIRECT: a descriptor
// of its own, so f's reads are not subject to direct I/O's alignment.
func openDirect(f *os.File) (*os.File, error) {
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
