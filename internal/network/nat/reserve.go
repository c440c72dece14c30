package nat

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Reservation holds a host port for a published mapping: a bound socket
// (bound, never listening nor reading), so that no other process takes the
// port while the container publishes it and a port already in use is
// refused up front. DNAT happens before socket lookup, so traffic to the
// port goes to the container, not to this socket.
type Reservation struct {
	fd int
	// Port is the reserved port: the requested one, or the kernel's pick
	// when 0 was requested.
	Port uint16
}

// Reserve binds proto (tcp|udp) on hostIP:port (zero hostIP: 0.0.0.0). With
// port 0 a free port is picked (the -P case). A port in use is
// errdefs.ErrConflict with docker's wording.
func Reserve(proto string, hostIP netip.Addr, port uint16) (*Reservation, error) {
	typ := unix.SOCK_STREAM
	switch proto {
	case "tcp":
	case "udp":
		typ = unix.SOCK_DGRAM
	default:
		return nil, fmt.Errorf("protocol %q: %w", proto, errdefs.ErrInvalidArgument)
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var sa unix.SockaddrInet4
	if hostIP.IsValid() {
		sa.Addr = hostIP.As4()
	}
	sa.Port = int(port)
	if err := unix.Bind(fd, &sa); err != nil {
		unix.Close(fd)
		h := "0.0.0.0"
		if hostIP.IsValid() {
			h = hostIP.String()
		}
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("Bind for %s:%d failed: port is already allocated: %w", h, port, errdefs.ErrConflict)
		}
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return nil, fmt.Errorf("Bind for %s:%d failed: address not available on this host: %w", h, port, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("Bind for %s:%d failed: %w", h, port, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Reservation{fd: fd, Port: uint16(got.(*unix.SockaddrInet4).Port)}, nil
}

// Close releases the port.
func (r *Reservation) Close() error {
	if r == nil || r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}
