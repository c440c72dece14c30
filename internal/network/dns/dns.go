// Package dns is berth's embedded DNS server for user-defined networks.
//
// Design: docker answers at 127.0.0.11:53 inside each container. berth
// creates that container's UDP and TCP sockets inside its network namespace
// (on a locked OS thread that setns'd into it and then back), and serves
// them from ordinary goroutines of the daemon: a socket stays in the
// namespace it was created in. No extra process, no thread parked in the
// container's namespace; forwarding to the host's resolvers happens from the
// daemon's own (host) namespace, so even a loopback resolver such as
// 127.0.0.53 works. Like docker, the sockets use random ports and a DNAT
// inside the container's namespace maps port 53 to them, so a DNS server in
// the container can still bind 0.0.0.0:53.
//
// Names are scoped: a container resolves the names of the containers that
// share at least one network with it (container name, aliases, service
// names, as registered). Several containers under one name give several A
// records, rotated on each answer (round-robin). Other names are forwarded.
package dns

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/internal/network/nat"
)

// Address is where containers find the server.
const Address = "127.0.0.11"

// Record is one container's entry on one network.
type Record struct {
	Network     string
	ContainerID string
	Names       []string // container name, aliases, service names; case-insensitive
	IP          netip.Addr
}

// Config of a Server.
type Config struct {
	// Upstreams are host:port resolvers for names that are not containers';
	// see UpstreamsFromResolvConf.
	Upstreams []string
	Timeout   time.Duration // per upstream exchange; default 2s
	TTL       uint32        // of container answers; default 600 like docker
}

// Server resolves for every container of the daemon.
type Server struct {
	cfg       Config
	mu        sync.RWMutex
	records   map[string]map[string]Record // network → containerID → record
	listeners map[string]*listener         // containerID → its sockets
	upstreams map[string][]string          // containerID → its own forwarders (--dns)
	rr        uint32
}

type listener struct {
	udp, tcp *mdns.Server
	pc       net.PacketConn
	ln       net.Listener
}

// New returns a Server with no records and no listeners.
func New(cfg Config) *Server {
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.TTL == 0 {
		cfg.TTL = 600
	}
	return &Server{cfg: cfg, records: map[string]map[string]Record{}, listeners: map[string]*listener{}, upstreams: map[string][]string{}}
}

// SetUpstreams replaces the forwarders (e.g. after /etc/resolv.conf changed).
func (s *Server) SetUpstreams(up []string) {
	s.mu.Lock()
	s.cfg.Upstreams = append([]string(nil), up...)
	s.mu.Unlock()
}

// SetContainerUpstreams gives one container its own forwarders (--dns on a
// user-defined network); nil restores the server's.
func (s *Server) SetContainerUpstreams(containerID string, up []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(up) == 0 {
		delete(s.upstreams, containerID)
		return
	}
	s.upstreams[containerID] = append([]string(nil), up...)
}

// Add registers (or replaces) a container's names on a network.
func (s *Server) Add(r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.records[r.Network]
	if m == nil {
		m = map[string]Record{}
		s.records[r.Network] = m
	}
	names := make([]string, 0, len(r.Names))
	for _, n := range r.Names {
		if n = canon(n); n != "" {
			names = append(names, n)
		}
	}
	r.Names = names
	m[r.ContainerID] = r
}

// Remove forgets a container's names on a network.
func (s *Server) Remove(network, containerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records[network], containerID)
	if len(s.records[network]) == 0 {
		delete(s.records, network)
	}
}

func canon(n string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".") }

// Lookup returns the addresses name has for a container asking (scoped to
// the networks it is on), in round-robin order. Exported for tests and for
// the engine's own uses.
func (s *Server) Lookup(asker, name string) []netip.Addr {
	name = canon(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	nets := make([]string, 0, len(s.records))
	for n, m := range s.records {
		if _, ok := m[asker]; ok {
			nets = append(nets, n)
		}
	}
	sort.Strings(nets)
	for _, n := range nets {
		ids := make([]string, 0, len(s.records[n]))
		for id := range s.records[n] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			r := s.records[n][id]
			for _, rn := range r.Names {
				if rn == name && !seen[r.IP] {
					seen[r.IP] = true
					out = append(out, r.IP)
					break
				}
			}
		}
	}
	if len(out) > 1 {
		k := int(s.rr % uint32(len(out)))
		s.rr++
		out = append(out[k:], out[:k]...)
	}
	return out
}

// reverse finds the name of a container address, scoped like Lookup.
func (s *Server) reverse(asker string, ip netip.Addr) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, m := range s.records {
		if _, ok := m[asker]; !ok {
			continue
		}
		for _, r := range m {
			if r.IP == ip && len(r.Names) > 0 {
				return r.Names[0]
			}
		}
	}
	return ""
}

// Handler returns the DNS handler answering for the container asker.
func (s *Server) Handler(asker string) mdns.Handler {
	return mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) {
		s.serve(asker, w, q)
	})
}

func (s *Server) serve(asker string, w mdns.ResponseWriter, q *mdns.Msg) {
	if len(q.Question) != 1 || q.Opcode != mdns.OpcodeQuery {
		m := new(mdns.Msg)
		m.SetRcode(q, mdns.RcodeNotImplemented)
		w.WriteMsg(m)
		return
	}
	qq := q.Question[0]
	if qq.Qclass == mdns.ClassINET {
		switch qq.Qtype {
		case mdns.TypeA, mdns.TypeAAAA:
			if ips := s.Lookup(asker, qq.Name); len(ips) > 0 {
				m := new(mdns.Msg)
				m.SetReply(q)
				m.Authoritative = true
				m.RecursionAvailable = true
				if qq.Qtype == mdns.TypeA { // AAAA: no IPv6 yet, NODATA
					for _, ip := range ips {
						m.Answer = append(m.Answer, &mdns.A{
							Hdr: mdns.RR_Header{Name: qq.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: s.cfg.TTL},
							A:   net.IP(ip.AsSlice()),
						})
					}
				}
				w.WriteMsg(m)
				return
			}
		case mdns.TypePTR:
			if ip, ok := ptrAddr(qq.Name); ok {
				if n := s.reverse(asker, ip); n != "" {
					m := new(mdns.Msg)
					m.SetReply(q)
					m.Authoritative = true
					m.Answer = append(m.Answer, &mdns.PTR{
						Hdr: mdns.RR_Header{Name: qq.Name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: s.cfg.TTL},
						Ptr: mdns.Fqdn(n),
					})
					w.WriteMsg(m)
					return
				}
			}
		}
	}
	s.forward(asker, w, q)
}

func ptrAddr(name string) (netip.Addr, bool) {
	name = canon(name)
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	p := strings.Split(rest, ".")
	if len(p) != 4 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(p[3] + "." + p[2] + "." + p[1] + "." + p[0])
	return a, err == nil
}

func (s *Server) forward(asker string, w mdns.ResponseWriter, q *mdns.Msg) {
	s.mu.RLock()
	ups := s.cfg.Upstreams
	if u, ok := s.upstreams[asker]; ok {
		ups = u
	}
	s.mu.RUnlock()
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	for _, up := range ups {
		c := &mdns.Client{Net: proto, Timeout: s.cfg.Timeout}
		r, _, err := c.Exchange(q, up)
		if err == nil && r != nil && r.Truncated && proto == "udp" {
			c.Net = "tcp"
			if r2, _, err2 := c.Exchange(q, up); err2 == nil {
				r = r2
			}
		}
		if err != nil || r == nil {
			continue
		}
		r.Id = q.Id
		w.WriteMsg(r)
		return
	}
	m := new(mdns.Msg)
	m.SetRcode(q, mdns.RcodeServerFailure)
	w.WriteMsg(m)
}

// Start serves asker's queries at 127.0.0.11:53 (UDP and TCP) inside the
// network namespace at netnsPath; lo must be up there (Attach does that).
// The sockets listen on random ports of 127.0.0.11 and an nftables DNAT in
// that namespace (nat.RedirectDNS) sends port 53 to them, so that port 53
// stays free for the container's own programs.
// Starting twice for one container is a no-op.
func (s *Server) Start(asker, netnsPath string) error {
	s.mu.Lock()
	if _, ok := s.listeners[asker]; ok {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	var pc net.PacketConn
	var ln net.Listener
	err := InNetns(netnsPath, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", Address+":0"); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", Address+":0"); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dns: listen in %s: %w", netnsPath, err)
	}
	up, tp := pc.LocalAddr().(*net.UDPAddr).Port, ln.Addr().(*net.TCPAddr).Port
	if err := nat.RedirectDNS(netnsPath, netip.MustParseAddr(Address), uint16(up), uint16(tp)); err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	h := s.Handler(asker)
	l := &listener{
		udp: &mdns.Server{PacketConn: pc, Handler: h},
		tcp: &mdns.Server{Listener: ln, Handler: h},
		pc:  pc,
		ln:  ln,
	}
	s.mu.Lock()
	if _, ok := s.listeners[asker]; ok { // lost a race: keep the first
		s.mu.Unlock()
		pc.Close()
		ln.Close()
		return nil
	}
	s.listeners[asker] = l
	s.mu.Unlock()
	go l.udp.ActivateAndServe()
	go l.tcp.ActivateAndServe()
	return nil
}

// Stop closes asker's listeners (none is not an error).
func (s *Server) Stop(asker string) {
	s.mu.Lock()
	l := s.listeners[asker]
	delete(s.listeners, asker)
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.udp.Shutdown()
	l.tcp.Shutdown()
	// Shutdown fails if the server has not started yet: close the sockets
	// regardless, they hold the container's netns alive.
	l.pc.Close()
	l.ln.Close()
}

// Close stops every listener.
func (s *Server) Close() {
	s.mu.RLock()
	ids := make([]string, 0, len(s.listeners))
	for id := range s.listeners {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	for _, id := range ids {
		s.Stop(id)
	}
}

// InNetns runs fn on a fresh locked OS thread switched into the network
// namespace at path, then switches back. Sockets fn creates stay in that
// namespace. If the thread cannot be switched back it is never unlocked, so
// the Go runtime destroys it when the goroutine ends instead of reusing it.
func InNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("restore netns: %w", err) // stays locked: thread discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// UpstreamsFromResolvConf returns host:53 for each nameserver line of a
// resolv.conf (IPv6 bracketed).
func UpstreamsFromResolvConf(content []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.WithZone(""), 53).String())
	}
	return out
}
