package engine

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// logWatch wakes a log follower when its log directory changes: the file
// written (IN_MODIFY), or a rotation (a file created or renamed into
// place). It replaces polling; the follower keeps a slow tick as a
// fallback, so a watch that cannot be made (inotify limits) only costs
// latency.
type logWatch struct {
	f *os.File
	C chan struct{}
}

func newLogWatch(path string) (*logWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path),
		unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Non-blocking, so the file is polled by the runtime: a waiting
	// follower parks a goroutine, not a thread.
	w := &logWatch{f: os.NewFile(uintptr(fd), "inotify"), C: make(chan struct{}, 1)}
	go w.run()
	return w, nil
}

func (w *logWatch) run() {
	buf := make([]byte, 4096)
	for {
		if _, err := w.f.Read(buf); err != nil {
			close(w.C)
			return
		}
		select {
		case w.C <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// Close stops the watch; C is closed soon after.
func (w *logWatch) Close() { w.f.Close() }
