package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/network"
)

// openNetwork opens the daemon's network manager at <root>/network with the
// daemon.json settings: bridge, bip, ip-forward and berth's nft-table.
func openNetwork(ctx context.Context, cfg daemonConfig) (*network.Manager, error) {
	nc := network.Config{
		StateDir: filepath.Join(cfg.Root, "network"), DefaultBridge: cfg.Bridge,
		NATTable: cfg.NFTable, EnableIPForward: cfg.IPForward == nil || *cfg.IPForward,
	}
	if nc.DefaultBridge == "" {
		nc.DefaultBridge = network.DefaultBridge
	}
	if nc.NATTable == "" {
		nc.NATTable = defaultNFTable(nc.DefaultBridge)
	}
	if cfg.BIP != "" {
		p, err := netip.ParsePrefix(cfg.BIP)
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("bip %q: want an IPv4 address with a prefix length (172.17.0.1/16): %w", cfg.BIP, errdefs.ErrInvalidArgument)
		}
		nc.DefaultSubnet = p.Masked().String()
		if p.Addr() != p.Masked().Addr() {
			nc.DefaultGateway = p.Addr().String()
		}
	}
	m, err := network.Open(ctx, nc)
	if err != nil {
		return nil, fmt.Errorf("daemon: networks: %w", err)
	}
	return m, nil
}

// defaultNFTable is "berth" for the default bridge, and a name derived
// from the bridge otherwise, so that daemons with their own bridges (tests,
// benchmarks) never rebuild each other's table.
func defaultNFTable(bridge string) string {
	if bridge == network.DefaultBridge {
		return "berth"
	}
	return "berth_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, bridge)
}
