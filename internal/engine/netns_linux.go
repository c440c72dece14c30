package engine

import (
	"fmt"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// loopbackUp brings up lo in the network namespace of pid. It runs on a
// thread of its own that enters the namespace and is thrown away after
// (the goroutine ends still locked), so no other goroutine ever runs in the
// container's namespace.
func loopbackUp(pid int) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		errc <- func() error {
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open netns of %d: %w", pid, err)
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter netns of %d: %w", pid, err)
			}
			s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket in netns: %w", err)
			}
			defer unix.Close(s)
			ifr, err := unix.NewIfreq("lo")
			if err != nil {
				return err
			}
			if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
				return fmt.Errorf("lo flags: %w", err)
			}
			ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
			if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
				return fmt.Errorf("lo up: %w", err)
			}
			return nil
		}()
	}()
	return <-errc
}
