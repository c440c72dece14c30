package network

import (
	"os"

	"golang.org/x/sys/unix"
)

// hostLockPath is shared by every berth daemon on the host.
const hostLockPath = "/run/lock/berth-network.lock"

// hostLock serializes, across the daemons of one host, the choice of a
// subnet and the creation of its bridge: a new pool avoids the host's
// routes, and a bridge's route only appears once its address is set, so
// two daemons starting together (tests) could otherwise pick the same
// subnet. Best effort: without the lock file it does not lock.
func hostLock() (unlock func()) {
	_ = os.MkdirAll("/run/lock", 0o755)
	f, err := os.OpenFile(hostLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return func() {}
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}
