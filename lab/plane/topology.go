package plane

import (
	"fmt"
	"net/netip"
)

// Host names in a lab's network besides the nodes and pods.
const (
	// ClientHost is the outside "laptop": it reaches node IPs, never pod IPs.
	ClientHost = "client"
	// BridgeHost is the namespace that holds the cluster bridge.
	BridgeHost = "net"
)

// NamespaceName is the network namespace of host in lab:
// "nplab-<lab>-<host>", what `ip netns list` shows.
func NamespaceName(lab, host string) string { return "nplab-" + lab + "-" + host }

// The default addressing plan (design.md, "Addressing").
var (
	// DefaultClusterNet is the bridge network the nodes and the client share.
	DefaultClusterNet = netip.MustParsePrefix("172.18.0.0/16")
	// DefaultClient is the outside client's address.
	DefaultClient = netip.MustParseAddr("172.18.0.100")
	// DefaultServiceCIDR is --service-cluster-ip-range: where ClusterIPs
	// come from.
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
)

// DefaultNodePortRange is --service-node-port-range's default.
const DefaultNodePortRange = "30000-32767"

// MaxNodes is the most nodes the plan has room for: node-N's pods are
// 10.244.N.0/24, so N fits in one byte.
const MaxNodes = 250

// NodeIP is node-N's address in the default plan: 172.18.0.(1+N), except
// that the client keeps 172.18.0.100, so node-99 and the nodes after it
// are one further up (node-99 is 172.18.0.101, node-250 172.18.0.252).
// Without that hole a lab of 99 nodes or more gave node-99 the client's
// address, and requests between nodes timed out.
func NodeIP(n int) netip.Addr {
	last := 1 + n
	if last >= int(DefaultClient.As4()[3]) {
		last++
	}
	return netip.AddrFrom4([4]byte{172, 18, 0, byte(last)})
}

// Topology is the planned shape of a lab's cluster: addresses are derived
// from the node index, so every run (and every golden file) is the same.
type Topology struct {
	Lab string
	// ClusterNet is the bridge network the nodes and the client share
	// (172.18.0.0/16).
	ClusterNet netip.Prefix
	Nodes      []NodeSpec
	// Client is the outside "laptop": it reaches node IPs, never pod IPs.
	Client netip.Addr
	// ServiceCIDR is where ClusterIPs come from (10.96.0.0/12).
	ServiceCIDR netip.Prefix
}

// NodeSpec is one node of a Topology.
type NodeSpec struct {
	Name string     // "node-1"
	IP   netip.Addr // 172.18.0.(1+N)
	// PodCIDR is the node's pod range, 10.244.N.0/24; the node side of
	// every pod link is 10.244.N.1 (Gateway).
	PodCIDR netip.Prefix
}

// Gateway is the node side of every pod link on this node: 10.244.N.1.
func (n NodeSpec) Gateway() netip.Addr { return n.PodCIDR.Masked().Addr().Next() }

// DefaultTopology plans n nodes named node-1..node-n: node-N at
// 172.18.0.(1+N), its pods on 10.244.N.0/24, the client at 172.18.0.100,
// ClusterIPs from 10.96.0.0/12.
func DefaultTopology(lab string, n int) Topology {
	t := Topology{
		Lab:         lab,
		ClusterNet:  DefaultClusterNet,
		Client:      DefaultClient,
		ServiceCIDR: DefaultServiceCIDR,
	}
	for i := 1; i <= n; i++ {
		t.Nodes = append(t.Nodes, NodeSpec{
			Name:    fmt.Sprintf("node-%d", i),
			IP:      NodeIP(i),
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		})
	}
	return t
}

// Node returns the node named name.
func (t Topology) Node(name string) (NodeSpec, bool) {
	for _, n := range t.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodeSpec{}, false
}

// NodeByIP returns the node whose IP is a.
func (t Topology) NodeByIP(a netip.Addr) (NodeSpec, bool) {
	for _, n := range t.Nodes {
		if n.IP == a {
			return n, true
		}
	}
	return NodeSpec{}, false
}

// IsPodIP reports whether a is in some node's pod range.
func (t Topology) IsPodIP(a netip.Addr) bool {
	for _, n := range t.Nodes {
		if n.PodCIDR.Contains(a) {
			return true
		}
	}
	return false
}

// Namespace is the network namespace of host in this lab.
func (t Topology) Namespace(host string) string { return NamespaceName(t.Lab, host) }
