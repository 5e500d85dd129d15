package nodes

import (
	"fmt"
	"net/netip"
	"time"
)

// Topology is the planned shape of a lab's cluster: addresses are derived from
// the node index so every run (and every golden file) is the same.
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
	// every pod link is 10.244.N.1.
	PodCIDR netip.Prefix
}

// DefaultTopology plans n nodes named node-1..node-n with the addressing of
// the design (node-N at 172.18.0.(1+N), pods on 10.244.N.0/24, the client
// at 172.18.0.100, ClusterIPs from 10.96.0.0/12).
func DefaultTopology(lab string, n int) Topology {
	t := Topology{
		Lab:         lab,
		ClusterNet:  netip.MustParsePrefix("172.18.0.0/16"),
		Client:      netip.MustParseAddr("172.18.0.100"),
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"),
	}
	for i := 1; i <= n; i++ {
		t.Nodes = append(t.Nodes, NodeSpec{
			Name:    fmt.Sprintf("node-%d", i),
			IP:      netip.AddrFrom4([4]byte{172, 18, 0, byte(1 + i)}),
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		})
	}
	return t
}

// ProxyMode is how a node's proxy picks an endpoint for a new connection.
type ProxyMode string

const (
	// ProxyRandom picks uniformly at random, like kube-proxy's iptables and
	// nftables modes. The default.
	ProxyRandom ProxyMode = "random"
	// ProxyRoundRobin cycles through the endpoints, like IPVS's rr.
	ProxyRoundRobin ProxyMode = "roundrobin"
)

// ServicePort is what every node's proxy needs to know of one port of one
// Service: the lab computes these from Services and Endpoints and hands the
// whole set to Cluster.SyncServices on every change.
type ServicePort struct {
	Service  string // "default/web"
	PortName string // "" when unnamed
	Protocol string // "TCP", "UDP" or "SCTP"

	ClusterIP netip.Addr
	Port      uint16
	NodePort  uint16 // 0: none (type ClusterIP)

	// ExternalTrafficPolicy is "Cluster" or "Local".
	ExternalTrafficPolicy string
	// AffinityTimeout > 0 means sessionAffinity: ClientIP with that timeout.
	AffinityTimeout time.Duration

	Endpoints []Endpoint
}

// Endpoint is one backend of a ServicePort, with EndpointSlice conditions.
type Endpoint struct {
	Pod  string // pod name
	Node string // node the pod runs on
	Addr netip.AddrPort

	Ready, Serving, Terminating bool
}

// EventKind says what an Event reports.
type EventKind string

const (
	EventPodStarted EventKind = "PodStarted" // pod host and apps are up
	EventPodReady   EventKind = "PodReady"   // readiness became true
	EventPodUnready EventKind = "PodUnready" // readiness became false
	EventPodNotice  EventKind = "PodNotice"  // something a student should know (e.g. "nginx listens on 80")
	EventPodStopped EventKind = "PodStopped" // pod host removed
	EventFlow       EventKind = "Flow"       // one forwarded connection / UDP flow / SCTP association
	EventNodeLink   EventKind = "NodeLink"   // a node's link went up or down
	EventProxyError EventKind = "ProxyError" // a listener could not be opened, etc.
)

// Event is one thing that happened on a node. Agents call Config.OnEvent
// with them, in order per node.
type Event struct {
	Time    time.Time
	Kind    EventKind
	Node    string
	Pod     string
	Message string
	Flow    *Flow // for EventFlow
}

// FlowResult is how a forwarded connection ended.
type FlowResult string

const (
	FlowOK      FlowResult = "ok"
	FlowRefused FlowResult = "refused" // no usable endpoint (no listener: the kernel refuses)
	// FlowReset: the proxy accepted the connection, the pod refused the
	// proxy's own connection, and the proxy reset the client's (curl:
	// "Connection reset by peer"). A userspace proxy cannot un-accept; see
	// the package doc.
	FlowReset    FlowResult = "reset"
	FlowDropped  FlowResult = "dropped"   // Local policy and no local endpoint
	FlowTimedOut FlowResult = "timed out" // the endpoint did not answer
	FlowError    FlowResult = "error"
)

// Flow is one connection, UDP flow or SCTP association through a node's proxy.
type Flow struct {
	EntryNode string         // node whose proxy accepted it
	Client    netip.AddrPort // who connected
	Frontend  netip.AddrPort // address it was sent to (node IP:nodePort or ClusterIP:port)
	Service   string         // "default/web"
	PortName  string
	Protocol  string
	Pod       string // chosen endpoint's pod ("" if none)
	PodNode   string
	Backend   netip.AddrPort
	// SourceSeen is the source address the pod saw.
	SourceSeen netip.Addr
	Result     FlowResult
	BytesIn    int64 // client → pod
	BytesOut   int64 // pod → client
	Duration   time.Duration
}
