package runconfig

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
)

// Publish reads docker's -p values, [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]
// with port ranges on either side and IPv6 addresses in brackets, into the
// ports to expose and their host bindings.
func Publish(specs []string) (network.PortSet, network.PortMap, error) {
	exposed, bindings := network.PortSet{}, network.PortMap{}
	for _, spec := range specs {
		if err := publishOne(spec, exposed, bindings); err != nil {
			return nil, nil, fmt.Errorf("invalid argument %q for \"-p, --publish\" flag: %w", spec, err)
		}
	}
	return exposed, bindings, nil
}

func publishOne(spec string, exposed network.PortSet, bindings network.PortMap) error {
	rest, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	var ip, host, ctr string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return fmt.Errorf("invalid IP address in %q", spec)
		}
		ip, rest = rest[1:end], rest[end+2:]
		var ok bool
		if host, ctr, ok = strings.Cut(rest, ":"); !ok {
			return fmt.Errorf("no container port")
		}
	} else {
		switch parts := strings.Split(rest, ":"); len(parts) {
		case 1:
			ctr = parts[0]
		case 2:
			host, ctr = parts[0], parts[1]
		case 3:
			ip, host, ctr = parts[0], parts[1], parts[2]
		default:
			return fmt.Errorf("too many colons")
		}
	}
	var addr netip.Addr
	if ip != "" {
		var err error
		if addr, err = netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("invalid IP address: %s", ip)
		}
	}
	cr, err := network.ParsePortRange(ctr + "/" + proto)
	if err != nil {
		return err
	}
	hostStart, hostEnd, err := hostRange(host)
	if err != nil {
		return err
	}
	n := int(cr.End()) - int(cr.Start()) + 1
	if host != "" && hostEnd-hostStart+1 != n && n != 1 {
		return fmt.Errorf("port ranges don't match in length")
	}
	for i := 0; i < n; i++ {
		p := network.MustParsePort(fmt.Sprintf("%d/%s", int(cr.Start())+i, proto))
		exposed[p] = struct{}{}
		hp := host
		if host != "" && n > 1 {
			hp = strconv.Itoa(hostStart + i)
		}
		bindings[p] = append(bindings[p], network.PortBinding{HostIP: addr, HostPort: hp})
	}
	return nil
}

// hostRange parses "", "8080" or "8080-8090".
func hostRange(s string) (start, end int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	if start, err = strconv.Atoi(a); err != nil || start < 1 || start > 65535 {
		return 0, 0, fmt.Errorf("invalid hostPort: %s", s)
	}
	end = start
	if isRange {
		if end, err = strconv.Atoi(b); err != nil || end < start || end > 65535 {
			return 0, 0, fmt.Errorf("invalid hostPort: %s", s)
		}
	}
	return start, end, nil
}
