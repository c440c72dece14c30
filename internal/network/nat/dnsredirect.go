package nat

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DNSTable is the nftables table berth keeps inside a container's netns.
const DNSTable = "berth_dns"

// RedirectDNS makes, inside the network namespace at netnsPath, queries to
// addr:53 go to addr:udpPort (UDP) and addr:tcpPort (TCP), where the
// embedded DNS server listens: a program in the container may then use port
// 53 itself (a DNS server on 0.0.0.0:53), as with docker, which does the same.
// The table lives and dies with the namespace; calling again replaces it.
//
//	table ip berth_dns { chain output { type nat hook output priority -100;
//	  ip daddr ADDR udp dport 53 dnat to ADDR:UDPPORT
//	  ip daddr ADDR tcp dport 53 dnat to ADDR:TCPPORT } }
func RedirectDNS(netnsPath string, addr netip.Addr, udpPort, tcpPort uint16) error {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("dns redirect: %w", err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("dns redirect: %w", err)
	}
	tb := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: DNSTable}
	if _, err := c.ListTableOfFamily(DNSTable, nftables.TableFamilyIPv4); err == nil {
		c.DelTable(tb)
	}
	c.AddTable(tb)
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "output", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	a4 := addr.As4()
	for _, p := range []struct {
		proto byte
		port  uint16
	}{{unix.IPPROTO_UDP, udpPort}, {unix.IPPROTO_TCP, tcpPort}} {
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a4[:]},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
			&expr.Immediate{Register: 1, Data: a4[:]},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("dns redirect in %s: %w", netnsPath, err)
	}
	return nil
}
