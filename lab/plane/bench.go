package plane

import (
	"context"
	"net/netip"
	"time"
)

// The paths `nplab bench` measures, each from the outside client to one
// bench pod (BenchTarget).
const (
	// PathDirect: client → pod IP, through a route to the pod's range that
	// exists only while the bench runs; the pod's node only routes.
	PathDirect = "direct"
	// PathNodePortLocal: client → the pod's node, nodePort, nplab's proxy.
	PathNodePortLocal = "nodeport-local"
	// PathNodePortHop: client → another node's nodePort; its proxy dials
	// the pod across the cluster network.
	PathNodePortHop = "nodeport-hop"
	// PathKernelDNAT: client → the pod's node, nodePort, where nftables
	// (or iptables) DNAT rules as kube-proxy's would install them rewrite
	// the packets to the pod: the kernel's own fast path.
	PathKernelDNAT = "kernel-dnat"
	// PathHAProxy and PathSocat: those userspace proxies run in the pod's
	// node, forwarding to the pod (BenchSpec.Peers).
	PathHAProxy = "haproxy"
	PathSocat   = "socat"
	// PathGoCopy: a plain Go forwarder in the pod's node (io.Copy each
	// way, which splices between two TCP sockets), the baseline every Go
	// proxy starts from (BenchSpec.Peers).
	PathGoCopy = "go-copy"
)

// BenchPaths lists every path in the order a report shows them.
var BenchPaths = []string{PathDirect, PathNodePortLocal, PathNodePortHop, PathKernelDNAT, PathHAProxy, PathSocat, PathGoCopy}

// Metric is one figure a bench path is measured by.
type Metric string

const (
	// MetricTCPBulk: TCP bulk throughput, in bits per second the pod
	// received over one connection.
	MetricTCPBulk Metric = "tcp_bulk_bps"
	// MetricConnPerS: new TCP connections per second, one small request
	// and answer each.
	MetricConnPerS Metric = "conn_per_s"
	// MetricUDPPPS: 64-byte UDP datagrams per second the pod received, at
	// the fixed offered rate BenchSpec.UDPRate.
	MetricUDPPPS Metric = "udp_pps"
	// MetricUDPLoss: the percentage of those datagrams that never arrived.
	MetricUDPLoss Metric = "udp_loss"
	// MetricRRP50 and MetricRRP99: the median and 99th percentile of one
	// request/response round trip on a kept-open TCP connection, in
	// microseconds, with every thread of the path pinned to one CPU:
	// client, pod server and forwarder (nplab's proxy, a peer).
	MetricRRP50 Metric = "rr_p50_us"
	MetricRRP99 Metric = "rr_p99_us"
)

// Metrics lists every metric in the order a report shows them.
var Metrics = []Metric{MetricTCPBulk, MetricConnPerS, MetricUDPPPS, MetricUDPLoss, MetricRRP50, MetricRRP99}

// BenchSpec is what a bench measures and for how long.
type BenchSpec struct {
	// Duration is how long each figure is measured on each path; 0 means
	// DefaultBenchDuration.
	Duration time.Duration
	// UDPRate is the offered rate of 64-byte datagrams per second; 0 means
	// DefaultUDPRate.
	UDPRate int
	// Peers adds the haproxy and socat paths where those programs are
	// installed.
	Peers bool
}

// Defaults of BenchSpec.
const (
	DefaultBenchDuration = 2 * time.Second
	DefaultUDPRate       = 50000
)

// WithDefaults fills in the zero fields.
func (s BenchSpec) WithDefaults() BenchSpec {
	if s.Duration <= 0 {
		s.Duration = DefaultBenchDuration
	}
	if s.UDPRate <= 0 {
		s.UDPRate = DefaultUDPRate
	}
	return s
}

// BenchTarget is the pod a bench reaches, and how: the control plane
// resolves it from a NodePort Service whose one endpoint runs nplab's
// bench server (image BenchImage).
type BenchTarget struct {
	Pod     string // the bench pod's name
	PodNode string // the node it runs on
	// HopNode is another node, for PathNodePortHop.
	HopNode string
	// TCP and UDP are the pod's bench server (pod IP:targetPort).
	TCP, UDP netip.AddrPort
	// TCPNodePort and UDPNodePort are the Service's nodePorts.
	TCPNodePort, UDPNodePort uint16
}

// BenchImage is the image of nplab's bench server: a pod running it
// listens on its containerPort for TCP and UDP and serves the bench's load
// (package nodes/loadgen). It is nplab's own, not an image of a registry.
const BenchImage = "nplab/loadgen"

// BenchPath is what one path measured, or why it was skipped.
type BenchPath struct {
	Path string
	// Skipped says why the path was not measured ("nft and iptables are
	// not installed"); Values is then empty.
	Skipped string
	// Values has a value for every metric the path was measured by; a
	// metric it cannot carry (UDP through haproxy) is absent and NA says
	// why.
	Values map[Metric]float64
	NA     map[Metric]string
	// Errors has the metrics whose measurement failed, with why: a path
	// that should carry the load and did not.
	Errors map[Metric]string
	// Detail is how the path was built ("nft: dnat to 10.244.1.2:5201").
	Detail string
}

// Bencher is a data plane that can measure its own paths: DataPlane
// implementations may implement it (package nodes on Linux does).
type Bencher interface {
	// Bench measures every path to target, one after the other, and
	// removes what it added for them (routes, nft tables, peer processes)
	// before it returns, on success or error.
	Bench(ctx context.Context, target BenchTarget, spec BenchSpec) ([]BenchPath, error)
}
