package content

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing a range of f to disk
// without waiting for it. Done every few MiB during an ingest, it lets the
// disk work while sha256 runs, so the fsync at Commit waits for the tail
// only instead of the whole blob.
func startWriteback(f *os.File, off, n int64) {
	// Only a hint: on failure Commit's fsync still does all the work.
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
