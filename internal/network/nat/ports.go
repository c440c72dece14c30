package nat

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// PortMapping publishes one container port on one host port.
type PortMapping struct {
	Proto         string     // "tcp" or "udp"
	HostIP        netip.Addr // zero: every host address
	HostPort      uint16     // 0: pick a free one (see Reserve)
	ContainerIP   netip.Addr // filled in by the engine when the address is known
	ContainerPort uint16
}

func (m PortMapping) String() string {
	h := "0.0.0.0"
	if m.HostIP.IsValid() {
		h = m.HostIP.String()
	}
	return fmt.Sprintf("%s:%d->%d/%s", h, m.HostPort, m.ContainerPort, m.Proto)
}

// ParsePortSpec parses docker's -p syntax:
//
//	[ip:][hostPort[-hostPortEnd]:]containerPort[-containerPortEnd][/tcp|/udp]
//
// into one mapping per port. "80" and "ip::80" leave HostPort 0 (a free
// port is picked when published); a host range with a single container port
// is not supported (docker picks one port of the range), a range needs a
// range of the same length.
func ParsePortSpec(spec string) ([]PortMapping, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid port specification %q: %s: %w", spec, why, errdefs.ErrInvalidArgument)
	}
	proto := "tcp"
	rest := spec
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		proto = strings.ToLower(rest[i+1:])
		rest = rest[:i]
		if proto != "tcp" && proto != "udp" {
			return nil, bad("protocol must be tcp or udp")
		}
	}
	var ipPart, hostPart, ctrPart string
	// An IPv6 host address is bracketed: [::1]:80:80.
	if strings.HasPrefix(rest, "[") {
		j := strings.Index(rest, "]:")
		if j < 0 {
			return nil, bad("unterminated [")
		}
		ipPart, rest = rest[1:j], rest[j+2:]
		hostPart, ctrPart, _ = strings.Cut(rest, ":")
		if ctrPart == "" {
			return nil, bad("missing container port")
		}
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctrPart = parts[0]
		case 2:
			hostPart, ctrPart = parts[0], parts[1]
		case 3:
			ipPart, hostPart, ctrPart = parts[0], parts[1], parts[2]
		default:
			return nil, bad("too many colons")
		}
	}
	var hostIP netip.Addr
	if ipPart != "" {
		var err error
		if hostIP, err = netip.ParseAddr(ipPart); err != nil {
			return nil, bad("invalid host IP")
		}
		if !hostIP.Is4() {
			return nil, bad("only IPv4 host addresses are supported")
		}
		if hostIP.IsUnspecified() {
			hostIP = netip.Addr{}
		}
	}
	cLo, cHi, err := parseRange(ctrPart)
	if err != nil || cLo == 0 {
		return nil, bad("invalid container port")
	}
	var hLo, hHi uint16
	if hostPart != "" {
		if hLo, hHi, err = parseRange(hostPart); err != nil || hLo == 0 {
			return nil, bad("invalid host port")
		}
		if hHi-hLo != cHi-cLo {
			return nil, bad("host and container port ranges differ in length")
		}
	}
	out := make([]PortMapping, 0, int(cHi-cLo)+1)
	for i := 0; i <= int(cHi-cLo); i++ {
		m := PortMapping{Proto: proto, HostIP: hostIP, ContainerPort: cLo + uint16(i)}
		if hLo != 0 {
			m.HostPort = hLo + uint16(i)
		}
		out = append(out, m)
	}
	return out, nil
}

func parseRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	l, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, 0, err
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(b, 10, 16); err != nil {
			return 0, 0, err
		}
		if h < l {
			return 0, 0, fmt.Errorf("reversed range")
		}
	}
	return uint16(l), uint16(h), nil
}

// ExposedToMappings is the -P helper: one mapping with HostPort 0 (a free
// port, picked by Reserve) for each EXPOSE'd port ("80/tcp", "53/udp", "8080").
func ExposedToMappings(exposed []string) ([]PortMapping, error) {
	var out []PortMapping
	for _, e := range exposed {
		ms, err := ParsePortSpec(e)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}
