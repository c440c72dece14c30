package network_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/nat"
)

// TestMeasure (BERTH_MEASURE=1) prints the cost of networking a container:
// netns creation, Connect (the start path) and DisconnectAll + netns removal
// (the stop path: ReleaseAll, the kernel deletes the veths), on the default bridge and a user network, with and
// without a published port.
func TestMeasure(t *testing.T) {
	if os.Getenv("BERTH_MEASURE") == "" {
		t.Skip("set BERTH_MEASURE=1")
	}
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.m.CreateNetwork(ctx, network.NetworkSpec{Name: "tnet", Subnet: "172.30.201.0/24", BridgeName: e.userBr}); err != nil {
		t.Fatal(err)
	}
	for _, net := range []string{"bridge", "tnet"} {
		for _, ports := range [][]nat.PortMapping{nil, {{Proto: "tcp", ContainerPort: 80}}} {
			var tc, td, tn time.Duration
			const N = 50
			for i := 0; i < N; i++ {
				p := t.TempDir() + "/ns"
				t0 := time.Now()
				if err := network.CreateNetns(p); err != nil {
					t.Fatal(err)
				}
				t1 := time.Now()
				id := fmt.Sprintf("%064d", i)
				if _, err := e.m.Connect(ctx, net, network.EndpointSpec{ContainerID: id, Name: fmt.Sprint("c", i), NetnsPath: p, Ports: ports}); err != nil {
					t.Fatal(err)
				}
				t2 := time.Now()
				if err := e.m.ReleaseAll(ctx, id); err != nil { // the engine's exit path
					t.Fatal(err)
				}
				network.DeleteNetns(p)
				t3 := time.Now()
				tn += t1.Sub(t0)
				tc += t2.Sub(t1)
				td += t3.Sub(t2)
			}
			t.Logf("%s ports=%d: netns %v connect %v disconnect+del %v", net, len(ports), tn/N, tc/N, td/N)
		}
	}
}
