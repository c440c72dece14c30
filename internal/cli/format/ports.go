package format

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// Ports is docker's PORTS column. A port published on the same host port
// number (or not published) joins a run of consecutive ports with the same
// address and protocol, shown as "0.0.0.0:80-81->80-81/tcp" or "80-81/tcp";
// a port published on another number is listed alone after the runs.
func Ports(ports []container.PortSummary) string {
	ps := slices.Clone(ports)
	slices.SortFunc(ps, func(a, b container.PortSummary) int {
		switch {
		case a.PrivatePort != b.PrivatePort:
			return int(a.PrivatePort) - int(b.PrivatePort)
		case a.IP != b.IP:
			return strings.Compare(a.IP.String(), b.IP.String())
		case a.PublicPort != b.PublicPort:
			return int(a.PublicPort) - int(b.PublicPort)
		}
		return strings.Compare(a.Type, b.Type)
	})
	type run struct {
		ip         string
		proto      string
		first, end uint16
	}
	var (
		closed, moved []string
		open          = map[string]*run{}
		keys          []string // the order runs were first opened in
	)
	show := func(r *run) string {
		span := strconv.Itoa(int(r.first))
		if r.end != r.first {
			span += "-" + strconv.Itoa(int(r.end))
		}
		if r.ip != "" {
			return net.JoinHostPort(r.ip, span) + "->" + span + "/" + r.proto
		}
		return span + "/" + r.proto
	}
	for _, p := range ps {
		proto, ip := p.Type, ""
		if p.IP.IsValid() {
			if p.PublicPort != p.PrivatePort {
				moved = append(moved, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.IP.String(), strconv.Itoa(int(p.PublicPort))), p.PrivatePort, proto))
				continue
			}
			ip = p.IP.String()
		}
		key := ip + "/" + proto
		r, ok := open[key]
		switch {
		case !ok:
			open[key] = &run{ip: ip, proto: proto, first: p.PrivatePort, end: p.PrivatePort}
			keys = append(keys, key)
		case p.PrivatePort == r.end+1:
			r.end = p.PrivatePort
		default:
			closed = append(closed, show(r))
			open[key] = &run{ip: ip, proto: proto, first: p.PrivatePort, end: p.PrivatePort}
		}
	}
	for _, k := range keys {
		closed = append(closed, show(open[k]))
	}
	return strings.Join(append(closed, moved...), ", ")
}
