package plane

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"
)

// ErrNotSupported is wrapped by every error of an operation that this
// platform or kernel cannot do: a data plane on a system other than Linux,
// delay or loss without the netem qdisc, SCTP without the sctp module.
var ErrNotSupported = errors.New("not supported here")

// ErrLabRunning is wrapped by what cleaning a lab returns when the lab's
// process is still running: it is not left over, and is not removed.
var ErrLabRunning = errors.New("lab is still running")

// NotFoundError is an unknown node, pod or host of a lab.
type NotFoundError struct {
	Kind string // "node", "pod", "host"
	Name string
	Lab  string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s %q not found in lab %q", e.Kind, e.Name, e.Lab)
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

// ParseProxyMode checks a --proxy-mode value; "" is ProxyRandom.
func ParseProxyMode(s string) (ProxyMode, error) {
	switch ProxyMode(s) {
	case "", ProxyRandom:
		return ProxyRandom, nil
	case ProxyRoundRobin:
		return ProxyRoundRobin, nil
	}
	return "", fmt.Errorf("unknown proxy mode %q: must be %q or %q", s, ProxyRandom, ProxyRoundRobin)
}

// ServicePort is what every node's proxy needs to know of one port of one
// Service. The control plane computes the whole set from Services and
// EndpointSlices and hands it to DataPlane.SyncServices after every change.
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

// Endpoint is one backend of a ServicePort, with its EndpointSlice
// conditions.
type Endpoint struct {
	Pod  string // pod name
	Node string // node the pod runs on
	Addr netip.AddrPort

	Ready, Serving, Terminating bool
}

// Listener is one socket a node's proxy listens on.
type Listener struct {
	Protocol string         // "TCP", "UDP", "SCTP"
	Addr     netip.AddrPort // 0.0.0.0:nodePort, or ClusterIP:port
	Service  string         // "default/web"
	NodePort bool           // a nodePort (external traffic policy applies)
}

// FlowResult is how an attempt through a node ended, as the client saw it.
type FlowResult string

const (
	FlowOK FlowResult = "ok"
	// FlowRefused: the client got a refusal (TCP RST to its SYN, ICMP port
	// unreachable, SCTP ABORT): no endpoint could answer.
	FlowRefused FlowResult = "refused"
	// FlowReset: the proxy had accepted the connection, its endpoint
	// refused, and the proxy reset the client's connection (curl:
	// "Connection reset by peer").
	FlowReset FlowResult = "reset"
	// FlowDropped: the packet was dropped (externalTrafficPolicy: Local on
	// a node without a local endpoint); the client times out.
	FlowDropped FlowResult = "dropped"
	// FlowTimedOut: the endpoint did not answer in time.
	FlowTimedOut FlowResult = "timed out"
	// FlowError: anything else; Flow.Detail says what.
	FlowError FlowResult = "error"
)

// FlowReason says why a flow ended the way it did. The empty reason goes
// with FlowOK.
type FlowReason string

const (
	ReasonNone FlowReason = ""
	// ReasonNoEndpoints: the Service has no usable endpoint; kube-proxy
	// would REJECT, and the node's kernel refuses.
	ReasonNoEndpoints FlowReason = "no endpoints"
	// ReasonNoListener: there are endpoints, but no pod's app listens on
	// the target port (nginx on 80 behind targetPort: 8080).
	ReasonNoListener FlowReason = "nothing listens on the target port"
	// ReasonLocalPolicy: externalTrafficPolicy: Local, and no endpoint on
	// the node the client reached: kube-proxy drops.
	ReasonLocalPolicy FlowReason = "externalTrafficPolicy: Local and no local endpoint on this node"
	// ReasonPodRefused: the chosen pod refused the proxy's connection.
	ReasonPodRefused FlowReason = "the pod refused the connection"
	// ReasonPodReset: the pod reset an established connection.
	ReasonPodReset FlowReason = "connection reset by the pod"
	// ReasonPodTimeout: the chosen pod did not answer in time.
	ReasonPodTimeout FlowReason = "timeout waiting for the pod"
	// ReasonAppStopped: the chosen pod's app was stopped.
	ReasonAppStopped FlowReason = "the pod's app is stopped"
	// ReasonNodeLinkDown: the link of the node on the path (the entry
	// node, or the chosen pod's node) is down.
	ReasonNodeLinkDown FlowReason = "node link down"
	// ReasonNoReply: the pod answered nothing (UDP, SCTP).
	ReasonNoReply FlowReason = "no reply from the pod"
)

// Flow is one attempt through a node: a TCP connection, a UDP flow or an
// SCTP association that the node's proxy forwarded, or that the node's
// kernel answered itself (refused, dropped), observed on the node. One
// that never reached the node, because a link on its way was down, is
// reported by the control plane for the requests it sent (Reason
// ReasonNodeLinkDown, Kernel false, no Pod).
type Flow struct {
	Protocol string         // "TCP", "UDP", "SCTP"
	Client   netip.AddrPort // who connected, as the node saw it
	// EntryNode is the node the client reached; Frontend the address it
	// reached there (node IP:nodePort, or ClusterIP:port).
	EntryNode string
	Frontend  netip.AddrPort
	Service   string // "default/web"; "" when the node knows no Service there
	PortName  string
	// Pod is the chosen endpoint ("" when none was chosen), PodNode its
	// node and Backend its IP:port.
	Pod     string
	PodNode string
	Backend netip.AddrPort
	// SourceSeen is the source address the pod saw: the client's under
	// Local policy, the node's (masquerade) under Cluster.
	SourceSeen netip.Addr

	Result FlowResult
	// Reason says why it ended that way; Detail is the human detail
	// ("node-3's link is down", the error text).
	Reason FlowReason
	Detail string
	// Kernel is set when the node's kernel answered (or dropped) the
	// attempt and no proxy socket was involved: no listener, a Local
	// policy drop. The client saw exactly what kube-proxy's rules give.
	Kernel bool
	// HostPort is set for an attempt on a pod's hostPort (Kernel too): the
	// node's kernel DNATed it to Pod's Backend, as the CNI portmap plugin
	// does; no Service and no proxy took part. Result is what the pod's
	// app would do with it (ok when it listens on the port, else refused);
	// the bytes are not counted.
	HostPort bool

	BytesIn  int64 // client → pod
	BytesOut int64 // pod → client
	// Start is when the attempt began; Duration how long it lasted.
	Start    time.Time
	Duration time.Duration
}

// Request is one use of a traffic tool (curl for TCP, nc for UDP and SCTP)
// from a host of the lab.
type Request struct {
	// From is "client", a node name ("node-1") or a pod name.
	From     string
	Protocol string // "TCP" (HTTP GET), "UDP" or "SCTP"
	Target   netip.AddrPort
	// Message is, for TCP, the HTTP path ("/hostname"); for UDP and SCTP,
	// a netexec command ("hostname", "echo hi", "clientip").
	Message string
	// LocalPort fixes the UDP source port (0: any).
	LocalPort uint16
	// Timeout bounds the whole exchange; 0 means DefaultSendTimeout.
	Timeout time.Duration
}

// DefaultSendTimeout is Request.Timeout's default.
const DefaultSendTimeout = 3 * time.Second

// Reply is what the tool saw.
type Reply struct {
	Body   string
	Status int         // HTTP status (TCP only)
	Header http.Header // HTTP headers (TCP only)
	// Result is ok, refused (the kernel's TCP RST to the SYN / ICMP port
	// unreachable), reset (accepted by a proxy, then reset: its endpoint
	// refused), timed out, or error (e.g. "network is unreachable").
	Result FlowResult
	Err    error
	// Local is the source address the tool used.
	Local netip.AddrPort
	// Flow is the flow the request made through a node, when the data
	// plane saw one (nil for a request to a pod IP, or one that never
	// reached a node).
	Flow *Flow
}

// Impairment is what a node's link suffers, in each direction (netem and
// tbf). The zero value is a healthy link.
type Impairment struct {
	Delay  time.Duration
	Jitter time.Duration
	// LossPercent is 0..100.
	LossPercent float64
	// RateBitsPerSec limits the rate; 0 is no limit.
	RateBitsPerSec uint64
}

// IsZero reports whether im is a healthy link.
func (im Impairment) IsZero() bool { return im == Impairment{} }

// String is tc's wording: "delay 100ms 10ms loss 5% rate 1000000bit".
func (im Impairment) String() string {
	if im.IsZero() {
		return "none"
	}
	s := ""
	add := func(f string, a ...any) {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf(f, a...)
	}
	if im.Delay > 0 || im.Jitter > 0 {
		add("delay %s", im.Delay)
		if im.Jitter > 0 {
			add("%s", im.Jitter)
		}
	}
	if im.LossPercent > 0 {
		add("loss %g%%", im.LossPercent)
	}
	if im.RateBitsPerSec > 0 {
		add("rate %dbit", im.RateBitsPerSec)
	}
	return s
}
