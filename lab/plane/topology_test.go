package plane

import (
	"net/netip"
	"testing"
)

// TestDefaultTopologyAddresses: every node of the largest default lab has
// an address of its own in the cluster network, none of them the
// client's, and the small labs keep 172.18.0.(1+N).
func TestDefaultTopologyAddresses(t *testing.T) {
	top := DefaultTopology("t", MaxNodes)
	seen := map[netip.Addr]string{top.Client: "the client"}
	for _, n := range top.Nodes {
		if other, dup := seen[n.IP]; dup {
			t.Errorf("%s has %v, which is %s's", n.Name, n.IP, other)
		}
		seen[n.IP] = n.Name
		if !top.ClusterNet.Contains(n.IP) {
			t.Errorf("%s's %v is outside the cluster network %v", n.Name, n.IP, top.ClusterNet)
		}
	}
	for _, tc := range []struct {
		node int
		want string
	}{{1, "172.18.0.2"}, {3, "172.18.0.4"}, {98, "172.18.0.99"}, {99, "172.18.0.101"}, {100, "172.18.0.102"}, {MaxNodes, "172.18.0.252"}} {
		if got := NodeIP(tc.node); got.String() != tc.want {
			t.Errorf("NodeIP(%d) = %v, want %s", tc.node, got, tc.want)
		}
	}
}
