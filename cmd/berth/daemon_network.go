package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/network"
)

// openNetwork opens the daemon's network manager at <root>/network with the
// daemon.json settings: bridge, bip, ip-forward and berth's nft-table. A bad
// setting is an error; a host that cannot do bridges or nftables (no
// kernel support) gets a warning and no manager: containers then have a
// private namespace with loopback only, and the network API answers 501.
func openNetwork(ctx context.Context, cfg daemonConfig, log *slog.Logger) (*network.Manager, error) {
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
	if errdefs.IsInvalidArgument(err) || errdefs.IsConflict(err) {
		return nil, fmt.Errorf("daemon: networks: %w", err)
	}
	if err != nil {
		log.Error("networking disabled: containers get loopback only", "err", err)
		return nil, nil
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
