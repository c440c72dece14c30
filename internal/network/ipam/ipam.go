// Package ipam allocates IPv4 addresses for berth's networks. Pools (one per
// network) and their allocations are persisted to a JSON file written
// atomically, so a restarted daemon never hands out an address twice.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/berth-dev/berth/internal/errdefs"
)

// PoolConfig is what a user asks for: all fields optional except where noted.
type PoolConfig struct {
	Subnet  string // CIDR; empty: pick a free one from the default pools
	Gateway string // default: first usable address of Subnet
	IPRange string // CIDR inside Subnet to allocate container addresses from
}

// Pool is one network's address space and its allocations.
type Pool struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
	IPRange netip.Prefix
	// Allocated maps an address to its owner (an endpoint or container ID).
	Allocated map[netip.Addr]string
	// Last is the most recently allocated address; the next search starts
	// after it so that released addresses are not reused at once.
	Last netip.Addr
}

// Allocator holds every pool, guarded by one mutex, persisted to one file.
type Allocator struct {
	mu    sync.Mutex
	path  string
	pools map[string]*Pool
}

type fileState struct {
	Version int                  `json:"version"`
	Pools   map[string]*filePool `json:"pools"`
}

type filePool struct {
	Subnet    string            `json:"subnet"`
	Gateway   string            `json:"gateway"`
	IPRange   string            `json:"ipRange,omitempty"`
	Last      string            `json:"last,omitempty"`
	Allocated map[string]string `json:"allocated,omitempty"`
}

// Open loads (or starts) the allocator persisted at path.
func Open(path string) (*Allocator, error) {
	a := &Allocator{path: path, pools: map[string]*Pool{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	var st fileState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("ipam: decode %s: %w", path, err)
	}
	for name, fp := range st.Pools {
		p := &Pool{Allocated: map[netip.Addr]string{}}
		if p.Subnet, err = netip.ParsePrefix(fp.Subnet); err != nil {
			return nil, fmt.Errorf("ipam: pool %s: %w", name, err)
		}
		if p.Gateway, err = netip.ParseAddr(fp.Gateway); err != nil {
			return nil, fmt.Errorf("ipam: pool %s: %w", name, err)
		}
		if fp.IPRange != "" {
			if p.IPRange, err = netip.ParsePrefix(fp.IPRange); err != nil {
				return nil, fmt.Errorf("ipam: pool %s: %w", name, err)
			}
		}
		if fp.Last != "" {
			p.Last, _ = netip.ParseAddr(fp.Last)
		}
		for s, owner := range fp.Allocated {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("ipam: pool %s: %w", name, err)
			}
			p.Allocated[ip] = owner
		}
		a.pools[name] = p
	}
	return a, nil
}

// save writes the whole state atomically (temp file, rename).
func (a *Allocator) save() error {
	st := fileState{Version: 1, Pools: map[string]*filePool{}}
	for name, p := range a.pools {
		fp := &filePool{Subnet: p.Subnet.String(), Gateway: p.Gateway.String(), Allocated: map[string]string{}}
		if p.IPRange.IsValid() {
			fp.IPRange = p.IPRange.String()
		}
		if p.Last.IsValid() {
			fp.Last = p.Last.String()
		}
		for ip, owner := range p.Allocated {
			fp.Allocated[ip.String()] = owner
		}
		st.Pools[name] = fp
	}
	b, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(a.path, b, 0o600)
}

// WriteFileAtomic replaces path with data so that a daemon crash leaves
// either the old or the new content. There is no fsync: the state describes
// containers, bridges and rules that a machine crash takes with it (nothing
// runs after a reboot, and Restore releases what the file still names),
// while fsyncs cost milliseconds on every container start and stop.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Overlaps reports whether two prefixes share any address.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// DefaultPools are the address spaces automatic subnets are carved from, as
// docker's: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 in /20s.
func DefaultPools() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	for i := 0; i < 256; i += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 20))
	}
	return out
}

// AddPool registers the pool for network name. Its subnet must not overlap
// another pool nor any of avoid (the host's routes): errdefs.ErrConflict.
// With an empty Subnet, the first free default pool is taken.
func (a *Allocator) AddPool(name string, cfg PoolConfig, avoid []netip.Prefix) (Pool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pools[name]; ok {
		return Pool{}, fmt.Errorf("ipam: pool %q: %w", name, errdefs.ErrAlreadyExists)
	}
	p := &Pool{Allocated: map[netip.Addr]string{}}
	if cfg.Subnet == "" {
		if cfg.Gateway != "" || cfg.IPRange != "" {
			return Pool{}, fmt.Errorf("ipam: gateway or ip-range given without a subnet: %w", errdefs.ErrInvalidArgument)
		}
		found := false
		for _, c := range DefaultPools() {
			if a.overlapErr(c, avoid) == nil {
				p.Subnet, found = c, true
				break
			}
		}
		if !found {
			return Pool{}, fmt.Errorf("ipam: all predefined address pools have been fully subnetted: %w", errdefs.ErrUnavailable)
		}
	} else {
		sn, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil || !sn.Addr().Is4() {
			return Pool{}, fmt.Errorf("ipam: invalid subnet %q: %w", cfg.Subnet, errdefs.ErrInvalidArgument)
		}
		if sn.Bits() > 30 {
			return Pool{}, fmt.Errorf("ipam: subnet %s is too small: %w", sn, errdefs.ErrInvalidArgument)
		}
		p.Subnet = sn.Masked()
		if err := a.overlapErr(p.Subnet, avoid); err != nil {
			return Pool{}, err
		}
	}
	if cfg.IPRange != "" {
		r, err := netip.ParsePrefix(cfg.IPRange)
		if err != nil || !r.Addr().Is4() {
			return Pool{}, fmt.Errorf("ipam: invalid ip-range %q: %w", cfg.IPRange, errdefs.ErrInvalidArgument)
		}
		r = r.Masked()
		if r.Bits() < p.Subnet.Bits() || !p.Subnet.Contains(r.Addr()) {
			return Pool{}, fmt.Errorf("ipam: ip-range %s is not inside subnet %s: %w", r, p.Subnet, errdefs.ErrInvalidArgument)
		}
		p.IPRange = r
	}
	if cfg.Gateway != "" {
		gw, err := netip.ParseAddr(cfg.Gateway)
		if err != nil || !gw.Is4() {
			return Pool{}, fmt.Errorf("ipam: invalid gateway %q: %w", cfg.Gateway, errdefs.ErrInvalidArgument)
		}
		if !p.usable(gw) {
			return Pool{}, fmt.Errorf("ipam: gateway %s does not belong to subnet %s: %w", gw, p.Subnet, errdefs.ErrInvalidArgument)
		}
		p.Gateway = gw
	} else {
		p.Gateway = p.Subnet.Addr().Next()
	}
	a.pools[name] = p
	if err := a.save(); err != nil {
		delete(a.pools, name)
		return Pool{}, fmt.Errorf("ipam: %w", err)
	}
	return p.clone(), nil
}

func (a *Allocator) overlapErr(sn netip.Prefix, avoid []netip.Prefix) error {
	names := make([]string, 0, len(a.pools))
	for n := range a.pools {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if a.pools[n].Subnet.Overlaps(sn) {
			return fmt.Errorf("ipam: invalid pool request: Pool overlaps with other one on this address space (network %q, %s): %w", n, a.pools[n].Subnet, errdefs.ErrConflict)
		}
	}
	for _, r := range avoid {
		if r.Overlaps(sn) {
			return fmt.Errorf("ipam: subnet %s overlaps with the host route %s: %w", sn, r, errdefs.ErrConflict)
		}
	}
	return nil
}

// RemovePool forgets a pool and all its allocations.
func (a *Allocator) RemovePool(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pools[name]
	if !ok {
		return fmt.Errorf("ipam: pool %q: %w", name, errdefs.ErrNotFound)
	}
	delete(a.pools, name)
	if err := a.save(); err != nil {
		a.pools[name] = p
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}

// Pool returns a copy of the named pool.
func (a *Allocator) Pool(name string) (Pool, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pools[name]
	if !ok {
		return Pool{}, false
	}
	return p.clone(), true
}

// Pools returns the names of all pools, sorted.
func (a *Allocator) Pools() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.pools))
	for n := range a.pools {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (p *Pool) clone() Pool {
	c := *p
	c.Allocated = make(map[netip.Addr]string, len(p.Allocated))
	for k, v := range p.Allocated {
		c.Allocated[k] = v
	}
	return c
}

// usable: inside the subnet and neither its network nor broadcast address.
func (p *Pool) usable(ip netip.Addr) bool {
	if !ip.Is4() || !p.Subnet.Contains(ip) || ip == p.Subnet.Addr() {
		return false
	}
	return ip != Broadcast(p.Subnet)
}

// Broadcast returns the last address of an IPv4 prefix.
func Broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Allocate gives owner an address from pool. A valid want asks for that
// address (docker's --ip): outside the subnet is ErrInvalidArgument, taken
// is ErrConflict. Otherwise the next free address of the ip-range (or the
// subnet) after the last one handed out; none left is ErrUnavailable.
func (a *Allocator) Allocate(pool, owner string, want netip.Addr) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pools[pool]
	if !ok {
		return netip.Addr{}, fmt.Errorf("ipam: pool %q: %w", pool, errdefs.ErrNotFound)
	}
	var ip netip.Addr
	if want.IsValid() {
		if !p.usable(want) {
			return netip.Addr{}, fmt.Errorf("ipam: address %s does not belong to subnet %s: %w", want, p.Subnet, errdefs.ErrInvalidArgument)
		}
		if want == p.Gateway {
			return netip.Addr{}, fmt.Errorf("ipam: address %s is the gateway: %w", want, errdefs.ErrConflict)
		}
		if o, taken := p.Allocated[want]; taken {
			return netip.Addr{}, fmt.Errorf("ipam: address %s already in use (by %.12s): %w", want, o, errdefs.ErrConflict)
		}
		ip = want
	} else {
		r := p.Subnet
		if p.IPRange.IsValid() {
			r = p.IPRange
		}
		first, last := r.Masked().Addr(), Broadcast(r)
		start := first
		if p.Last.IsValid() && r.Contains(p.Last) {
			start = p.Last.Next()
		}
		size := uint64(1) << (32 - r.Bits())
		cur := start
		for i := uint64(0); i < size; i++ {
			if !r.Contains(cur) || !cur.IsValid() {
				cur = first
			}
			if p.usable(cur) && cur != p.Gateway {
				if _, taken := p.Allocated[cur]; !taken {
					ip = cur
					break
				}
			}
			if cur == last {
				cur = first
			} else {
				cur = cur.Next()
			}
		}
		if !ip.IsValid() {
			return netip.Addr{}, fmt.Errorf("ipam: no available addresses in %s: %w", r, errdefs.ErrUnavailable)
		}
	}
	p.Allocated[ip] = owner
	prevLast := p.Last
	if !want.IsValid() {
		p.Last = ip
	}
	if err := a.save(); err != nil {
		delete(p.Allocated, ip)
		p.Last = prevLast
		return netip.Addr{}, fmt.Errorf("ipam: %w", err)
	}
	return ip, nil
}

// Release frees an address; releasing a free address is not an error.
func (a *Allocator) Release(pool string, ip netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pools[pool]
	if !ok {
		return fmt.Errorf("ipam: pool %q: %w", pool, errdefs.ErrNotFound)
	}
	if _, ok := p.Allocated[ip]; !ok {
		return nil
	}
	owner := p.Allocated[ip]
	delete(p.Allocated, ip)
	if err := a.save(); err != nil {
		p.Allocated[ip] = owner
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}

// ReleaseOwner frees every address owner holds in pool (used on restore
// when a container disappeared while the daemon was down).
func (a *Allocator) ReleaseOwner(pool, owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pools[pool]
	if !ok {
		return fmt.Errorf("ipam: pool %q: %w", pool, errdefs.ErrNotFound)
	}
	changed := false
	for ip, o := range p.Allocated {
		if o == owner {
			delete(p.Allocated, ip)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return a.save()
}
