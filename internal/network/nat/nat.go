// Package nat keeps berth's nftables table: masquerade for traffic leaving
// bridge subnets, DNAT for published ports (from other hosts, from the host
// itself including 127.0.0.1, and hairpin from containers), and isolation of
// internal networks. It never touches other tables: berth owns "ip <name>"
// (default "berth") and rebuilds it from scratch on daemon start.
package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// DefaultTable is the name of berth's nftables table (family ip).
const DefaultTable = "berth"

const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPorts       = "ports"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
)

// Network is what the NAT rules of one bridge network need.
type Network struct {
	Name     string
	Bridge   string
	Subnet   netip.Prefix
	Internal bool // no masquerade, no traffic to or from outside the bridge
}

// Table is berth's nftables table.
type Table struct {
	mu    sync.Mutex
	name  string
	table *nftables.Table
	ch    map[string]*nftables.Chain
	// bridges is the set of every network's bridge, for isolation between
	// networks; bridgeOf maps a network to its element.
	bridges  *nftables.Set
	bridgeOf map[string]string
}

const setBridges = "bridges"

// Open (re)creates the table: any previous table of that name is deleted
// (stale rules of a crashed daemon) and the base chains are made. The daemon
// then adds every network and every running container's ports again.
func Open(name string) (*Table, error) {
	if name == "" {
		name = DefaultTable
	}
	t := &Table{name: name, table: &nftables.Table{Family: nftables.TableFamilyIPv4, Name: name}, ch: map[string]*nftables.Chain{}, bridgeOf: map[string]string{}}
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.ListTableOfFamily(name, nftables.TableFamilyIPv4); err == nil {
		c.DelTable(t.table)
		if err := c.Flush(); err != nil {
			return nil, fmt.Errorf("nftables: delete stale table %s: %w", name, err)
		}
	}
	c.AddTable(t.table)
	accept := nftables.ChainPolicyAccept
	add := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) {
		ch := &nftables.Chain{Name: name, Table: t.table}
		if hook != nil {
			ch.Type, ch.Hooknum, ch.Priority, ch.Policy = typ, hook, prio, &accept
		}
		t.ch[name] = c.AddChain(ch)
	}
	add(chainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	add(chainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	add(chainPorts, "", nil, nil)
	add(chainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	add(chainForward, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	// Traffic to any local address (incl. 127.0.0.1 from the host itself)
	// goes through the published ports.
	for _, chn := range []string{chainPrerouting, chainOutput} {
		c.AddRule(&nftables.Rule{Table: t.table, Chain: t.ch[chn], Exprs: []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: chainPorts},
		}})
	}
	if err := c.AddSet(&nftables.Set{Table: t.table, Name: setBridges, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}, nil); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: create table %s: %w", name, err)
	}
	if t.bridges, err = c.GetSetByName(t.table, setBridges); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return t, nil
}

// Name is the table's name.
func (t *Table) Name() string { return t.name }

// Destroy deletes the whole table (daemon shutdown without live restore, tests).
func (t *Table) Destroy() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if _, err := c.ListTableOfFamily(t.name, nftables.TableFamilyIPv4); err != nil {
		return nil
	}
	c.DelTable(t.table)
	return c.Flush()
}

func netTag(name string) []byte { return []byte("net:" + name) }
func ctrTag(id string) []byte   { return []byte("ctr:" + id) }

// AddNetwork adds the rules of one bridge network (idempotent: its old rules
// are replaced).
//
//	postrouting: ip saddr SUBNET oifname != BR masquerade      (not internal)
//	             oifname BR ip saddr 127.0.0.0/8 masquerade    (host's 127.0.0.1 → container)
//	             oifname BR ip saddr SUBNET ct status dnat masquerade   (hairpin)
//	forward:     iifname BR oifname != BR oifname @bridges ct status != dnat drop
//	                                     (no traffic between networks but to published ports)
//	             iifname BR oifname != BR drop                  (internal)
//	             oifname BR iifname != BR drop                  (internal)
func (t *Table) AddNetwork(n Network) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() || n.Bridge == "" {
		return fmt.Errorf("nat: network %q: %w", n.Name, errdefs.ErrInvalidArgument)
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := t.deleteTagged(c, netTag(n.Name), chainPostrouting, chainForward); err != nil {
		return err
	}
	tag := netTag(n.Name)
	rule := func(chain string, ex ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: t.table, Chain: t.ch[chain], Exprs: ex, UserData: tag})
	}
	if !n.Internal {
		rule(chainPostrouting, cat(saddrIn(n.Subnet), ifname(expr.MetaKeyOIFNAME, n.Bridge, false), []expr.Any{&expr.Masq{}})...)
	}
	rule(chainPostrouting, cat(ifname(expr.MetaKeyOIFNAME, n.Bridge, true), saddrIn(netip.MustParsePrefix("127.0.0.0/8")), []expr.Any{&expr.Masq{}})...)
	rule(chainPostrouting, cat(ifname(expr.MetaKeyOIFNAME, n.Bridge, true), saddrIn(n.Subnet), ctStatusDNAT(true), []expr.Any{&expr.Masq{}})...)
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	if old, ok := t.bridgeOf[n.Name]; ok && old != n.Bridge {
		if err := c.SetDeleteElements(t.bridges, []nftables.SetElement{{Key: ifnameKey(old)}}); err != nil {
			return err
		}
		delete(t.bridgeOf, n.Name)
	}
	if _, ok := t.bridgeOf[n.Name]; !ok {
		if err := c.SetAddElements(t.bridges, []nftables.SetElement{{Key: ifnameKey(n.Bridge)}}); err != nil {
			return err
		}
	}
	// Published ports stay reachable from other networks (through a host
	// address): DNAT'd connections are not dropped.
	rule(chainForward, cat(ifname(expr.MetaKeyIIFNAME, n.Bridge, true), ifname(expr.MetaKeyOIFNAME, n.Bridge, false),
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: t.bridges.Name, SetID: t.bridges.ID},
		}, ctStatusDNAT(false), []expr.Any{drop})...)
	if n.Internal {
		rule(chainForward, cat(ifname(expr.MetaKeyIIFNAME, n.Bridge, true), ifname(expr.MetaKeyOIFNAME, n.Bridge, false), []expr.Any{drop})...)
		rule(chainForward, cat(ifname(expr.MetaKeyOIFNAME, n.Bridge, true), ifname(expr.MetaKeyIIFNAME, n.Bridge, false), []expr.Any{drop})...)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nat: network %s: %w", n.Name, err)
	}
	t.bridgeOf[n.Name] = n.Bridge
	return nil
}

// RemoveNetwork deletes the rules AddNetwork made.
func (t *Table) RemoveNetwork(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := t.deleteTagged(c, netTag(name), chainPostrouting, chainForward); err != nil {
		return err
	}
	if br, ok := t.bridgeOf[name]; ok {
		if err := c.SetDeleteElements(t.bridges, []nftables.SetElement{{Key: ifnameKey(br)}}); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return err
	}
	delete(t.bridgeOf, name)
	return nil
}

// Publish adds the DNAT rules of a container's mappings (HostPort and
// ContainerIP must be set; reserve host ports first with Reserve). Per
// mapping, in chain ports (reached for any local destination address):
//
//	[ip daddr HOSTIP] meta l4proto P th dport HOSTPORT dnat to CIP:CPORT
//
// Rules are tagged with the container ID and replaced if present.
func (t *Table) Publish(containerID string, maps []PortMapping) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range maps {
		if m.HostPort == 0 || m.ContainerPort == 0 || !m.ContainerIP.Is4() || (m.Proto != "tcp" && m.Proto != "udp") {
			return fmt.Errorf("nat: incomplete mapping %s: %w", m, errdefs.ErrInvalidArgument)
		}
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := t.deleteTagged(c, ctrTag(containerID), chainPorts); err != nil {
		return err
	}
	for _, m := range maps {
		var ex []expr.Any
		if m.HostIP.IsValid() && !m.HostIP.IsUnspecified() {
			ex = append(ex,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m.HostIP.AsSlice()})
		}
		proto := byte(unix.IPPROTO_TCP)
		if m.Proto == "udp" {
			proto = unix.IPPROTO_UDP
		}
		ip4 := m.ContainerIP.As4()
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(m.HostPort)},
			&expr.Immediate{Register: 1, Data: ip4[:]},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(m.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
		)
		c.AddRule(&nftables.Rule{Table: t.table, Chain: t.ch[chainPorts], Exprs: ex, UserData: ctrTag(containerID)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nat: publish %.12s: %w", containerID, err)
	}
	return nil
}

// Unpublish deletes the container's DNAT rules (none is not an error).
func (t *Table) Unpublish(containerID string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := t.deleteTagged(c, ctrTag(containerID), chainPorts); err != nil {
		return err
	}
	return c.Flush()
}

// Rules returns the tags of the rules in a chain (for tests and debugging).
func (t *Table) Rules(chain string) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	rs, err := c.GetRules(t.table, t.ch[chain])
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, string(r.UserData))
	}
	return out, nil
}

func (t *Table) deleteTagged(c *nftables.Conn, tag []byte, chains ...string) error {
	for _, chn := range chains {
		rs, err := c.GetRules(t.table, t.ch[chn])
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("nat: list %s: %w", chn, err)
		}
		for _, r := range rs {
			if string(r.UserData) == string(tag) {
				if err := c.DelRule(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func saddrIn(p netip.Prefix) []expr.Any {
	p = p.Masked()
	mask := make([]byte, 4)
	copy(mask, maskBytes(p.Bits()))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}

func maskBytes(bits int) []byte {
	m := make([]byte, 4)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, strings.TrimSpace(name))
	return b
}

func ifname(key expr.MetaKey, name string, eq bool) []expr.Any {
	b := ifnameKey(name)
	op := expr.CmpOpEq
	if !eq {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// ctStatusDNAT matches connections that were (dnat) or were not (!dnat)
// destination-NATed.
func ctStatusDNAT(dnat bool) []expr.Any {
	op := expr.CmpOpNeq
	if !dnat {
		op = expr.CmpOpEq
	}
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(0x20 /* IPS_DST_NAT */), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

// DeleteTable deletes the table of that name if it exists, without
// rebuilding it first (Open does): cleanup of a daemon that is gone.
func DeleteTable(name string) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t, err := c.ListTableOfFamily(name, nftables.TableFamilyIPv4)
	if err != nil {
		return nil
	}
	c.DelTable(t)
	return c.Flush()
}
