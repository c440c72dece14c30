// Package nettest gives test daemons their own bridge and nftables table,
// so that daemons of concurrent tests (and of other checkouts on the same
// host) never share or rebuild each other's, and removes and checks what
// they leave.
package nettest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/network"
)

var seq atomic.Int32

// Names of one test daemon's network objects.
type Names struct {
	Bridge string // the default bridge's interface
	Table  string // berth's nftables table
}

// New returns fresh names: "bt" + the process ID and a counter in base 36
// (interface names have at most 15 bytes).
func New() Names {
	suffix := strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.FormatInt(int64(seq.Add(1)), 36)
	return Names{Bridge: "bt" + suffix, Table: "berth_t" + suffix}
}

// Config are the daemon.json keys for them; ip-forward stays as the host
// has it (tests only talk to loopback and their own containers).
func (n Names) Config() map[string]any {
	return map[string]any{"bridge": n.Bridge, "nft-table": n.Table, "ip-forward": false}
}

// ConfigJSON is Config as a daemon.json body.
func (n Names) ConfigJSON() string {
	return fmt.Sprintf(`{"bridge": %q, "nft-table": %q, "ip-forward": false}`, n.Bridge, n.Table)
}

// Cleanup is for after the daemon stopped with every container removed:
// it reports veths still on the daemon's bridges (endpoints a removal
// missed) as errors, removes the bridges and the table, and checks they
// are gone.
func (n Names) Cleanup(t testing.TB, root string) {
	t.Helper()
	state := filepath.Join(root, "network")
	bridges := bridgesOf(state)
	veths, err := network.Purge(state, n.Table)
	if err != nil {
		t.Errorf("purge networks: %v", err)
	}
	if len(veths) > 0 {
		t.Errorf("veths left on the daemon's bridges: %v", veths)
	}
	for _, br := range bridges {
		if _, err := netlink.LinkByName(br); err == nil {
			t.Errorf("bridge %s left behind", br)
		}
	}
	if c, err := nftables.New(); err == nil {
		if _, err := c.ListTableOfFamily(n.Table, nftables.TableFamilyIPv4); err == nil {
			t.Errorf("nftables table %s left behind", n.Table)
		}
	}
}

// bridgesOf reads the bridge names from the manager's state file.
func bridgesOf(state string) []string {
	b, err := os.ReadFile(filepath.Join(state, "networks.json"))
	if err != nil {
		return nil
	}
	var out []string
	for _, part := range strings.Split(string(b), `"bridge": "`)[1:] {
		if i := strings.IndexByte(part, '"'); i > 0 {
			out = append(out, part[:i])
		}
	}
	return out
}
