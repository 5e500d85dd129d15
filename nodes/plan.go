package nodes

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// Policy-routing tables and priorities the proxy uses on a node.
const (
	// tproxyTable is the routing table that delivers pod replies to the
	// proxy's transparent sockets under externalTrafficPolicy: Local.
	tproxyTable = 100
	// localTable is the kernel's local routing table (RT_TABLE_LOCAL).
	localTable = 255
	// tproxyRulePriority puts the reply rules after the local table
	// (which netsim moves to 100 once a blackhole exists) and before the
	// main table.
	tproxyRulePriority = 200
	// blackholePriority puts the Local-policy drop rules before the local
	// table, so a packet to the node's own address:nodePort is dropped
	// before it is delivered.
	blackholePriority = 10
	// podBypassPriority puts, just before each blackhole rule, one rule
	// per pod range of the cluster that sends pod traffic to the local
	// table anyway: under Local policy traffic from pods (on any node)
	// still goes to cluster-wide endpoints (spec §5.3 4(a), §5.6), and a
	// pod on another node reaches this node over eth0 like an external
	// client does.
	podBypassPriority = blackholePriority - 1
)

// frontKey is one socket of a node's proxy: a protocol and the address it
// listens on (0.0.0.0:nodePort, or ClusterIP:port).
type frontKey struct {
	proto string // "TCP", "UDP", "SCTP"
	addr  netip.AddrPort
}

func (k frontKey) String() string { return k.addr.String() + "/" + k.proto }

// svcKey names one service port: "default/web:http/TCP".
func svcKey(sp *plane.ServicePort) string {
	return sp.Service + ":" + sp.PortName + "/" + sp.Protocol
}

// planEnv is what the plan of one node's proxy depends on besides the
// service ports: plain data, so planProxy is a pure function.
type planEnv struct {
	node string
	// podCIDRs are every node's pod range (the cluster CIDR, piece by
	// piece): the sources that bypass Local policy's blackhole rules.
	podCIDRs []netip.Prefix
	// transparent: under Local policy the proxy dials local endpoints
	// with the client's address, and needs the tproxy reply rules.
	transparent bool
	// pods are the pods this cluster runs, with what their apps listen on
	// (the image catalog). An endpoint whose pod is not here (not started
	// yet, or gone) counts as listening. Nil: every endpoint listens.
	pods map[string]podFacts
}

// podFacts is what the plan knows of one running pod.
type podFacts struct {
	ip    netip.Addr
	specs []apps.Spec
}

// listens reports whether e's pod has an app listening on e's port for
// protocol, as the image catalog says (nginx listens on 80 only, whatever
// containerPort says).
func (env planEnv) listens(e plane.Endpoint, protocol string) bool {
	if env.pods == nil {
		return true
	}
	p, ok := env.pods[e.Pod]
	if !ok || p.ip != e.Addr.Addr() {
		return true
	}
	for _, s := range p.specs {
		if s.Listens(protocol, e.Addr.Port()) {
			return true
		}
	}
	return false
}

// planFront is one wanted listener.
type planFront struct {
	svc      string // svcKey of the service port it serves
	service  string // "default/web"
	nodePort bool   // 0.0.0.0:nodePort: external traffic policy applies
}

// verdict is what a node's kernel does, without any proxy socket, with a
// new connection or datagram to a service address the node knows of:
// refuse it (no listener: TCP RST, ICMP port unreachable, SCTP ABORT) or,
// for external traffic under externalTrafficPolicy: Local, drop it (the
// blackhole rule).
type verdict struct {
	Service  string
	PortName string
	Result   plane.FlowResult // FlowRefused or FlowDropped
	Reason   plane.FlowReason
	// ExternalOnly: the verdict holds for traffic from outside the
	// cluster only (Local policy); pods and the node itself are proxied.
	ExternalOnly bool
}

// proxyPlan is the wanted state of one node's proxy.
type proxyPlan struct {
	// ports are the service ports by svcKey, protocols upper-cased; keys
	// lists them in the order given.
	ports map[string]plane.ServicePort
	keys  []string
	// fronts are the listeners to have.
	fronts map[frontKey]planFront
	// rules are the ip rules to have: Local-policy blackholes with their
	// pod-range bypasses, and the tproxy reply rules.
	rules map[netsim.Rule]bool
	// verdicts say, for every (protocol, nodePort or ClusterIP:port) the
	// node knows of and will not proxy, why (and, for a Local nodePort
	// without local endpoint, that external traffic is dropped).
	verdicts map[frontKey]verdict
	// warnings are conflicts to report (two services on one address).
	warnings []string
}

// planProxy computes what one node's proxy should listen on and which
// rules it needs for ports, following kube-proxy (kubernetes-nodeport.md
// §5):
//
//   - no usable endpoint: no listener, the kernel refuses (REJECT);
//   - usable endpoints, none of which has an app listening on its port:
//     no listener either, so the kernel refuses as the pods' kernels
//     would after kube-proxy's DNAT;
//   - otherwise a listener on ClusterIP:port and on 0.0.0.0:nodePort;
//   - externalTrafficPolicy: Local without a local endpoint: a blackhole
//     rule for external traffic to the nodePort, and a bypass before it
//     for every pod range; with local endpoints, the tproxy rules that
//     deliver their replies to transparent sockets.
//
// It is pure: no sockets, no netlink, no locks.
func planProxy(ports []plane.ServicePort, env planEnv) proxyPlan {
	pl := proxyPlan{
		ports:    map[string]plane.ServicePort{},
		fronts:   map[frontKey]planFront{},
		rules:    map[netsim.Rule]bool{},
		verdicts: map[frontKey]verdict{},
	}
	setVerdict := func(k frontKey, v verdict) {
		if _, ok := pl.verdicts[k]; !ok {
			pl.verdicts[k] = v
		}
	}
	addFront := func(k frontKey, f planFront, what string) bool {
		if other, dup := pl.fronts[k]; dup {
			pl.warnings = append(pl.warnings, fmt.Sprintf("%s and %s both want %s %s; keeping %s", other.svc, f.svc, what, k, other.svc))
			return false
		}
		pl.fronts[k] = f
		return true
	}
	for i := range ports {
		sp := ports[i]
		sp.Protocol = strings.ToUpper(sp.Protocol)
		if sp.Protocol == "" {
			sp.Protocol = "TCP"
		}
		k := svcKey(&sp)
		if _, dup := pl.ports[k]; dup {
			pl.warnings = append(pl.warnings, fmt.Sprintf("service port %s is listed twice; keeping the first", k))
			continue
		}
		pl.ports[k] = sp
		pl.keys = append(pl.keys, k)

		var cip, np frontKey
		hasCIP := sp.ClusterIP.IsValid() && sp.Port > 0
		if hasCIP {
			cip = frontKey{sp.Protocol, netip.AddrPortFrom(sp.ClusterIP, sp.Port)}
		}
		if sp.NodePort > 0 {
			np = frontKey{sp.Protocol, netip.AddrPortFrom(netip.IPv4Unspecified(), sp.NodePort)}
		}
		refuse := func(reason plane.FlowReason) {
			v := verdict{Service: sp.Service, PortName: sp.PortName, Result: plane.FlowRefused, Reason: reason}
			if hasCIP {
				setVerdict(cip, v)
			}
			if sp.NodePort > 0 {
				setVerdict(np, v)
			}
		}
		usable := usableEndpoints(sp.Endpoints, "")
		if len(usable) == 0 {
			// No usable endpoint anywhere: the node's kernel refuses,
			// like kube-proxy's REJECT rule.
			refuse(plane.ReasonNoEndpoints)
			continue
		}
		if !slices.ContainsFunc(usable, func(e plane.Endpoint) bool { return env.listens(e, sp.Protocol) }) {
			// Endpoints, but no app listens on their port (nginx behind
			// targetPort 8080): kube-proxy would DNAT and every pod's
			// kernel would refuse. Without a listener the node's kernel
			// refuses the same way, where a proxy that accepted could
			// only reset.
			refuse(plane.ReasonNoListener)
			continue
		}
		front := planFront{svc: k, service: sp.Service}
		if hasCIP {
			addFront(cip, front, "")
		}
		if sp.NodePort == 0 {
			continue
		}
		front.nodePort = true
		if !addFront(np, front, "nodePort") || sp.ExternalTrafficPolicy != "Local" {
			continue
		}
		proto := strings.ToLower(sp.Protocol)
		local := usableEndpoints(sp.Endpoints, env.node)
		if len(local) == 0 {
			// Endpoints elsewhere but none here: external traffic is
			// dropped (the client times out), while pods and the node
			// itself still get through.
			pl.rules[netsim.Rule{Priority: blackholePriority, IIF: "eth0", Proto: proto, DPort: sp.NodePort, Blackhole: true}] = true
			for _, pc := range env.podCIDRs {
				pl.rules[netsim.Rule{Priority: podBypassPriority, IIF: "eth0", From: pc.Masked(), Proto: proto, DPort: sp.NodePort, Table: localTable}] = true
			}
			pl.verdicts[np] = verdict{Service: sp.Service, PortName: sp.PortName, Result: plane.FlowDropped,
				Reason: plane.ReasonLocalPolicy, ExternalOnly: true}
		}
		if env.transparent && sp.Protocol != "SCTP" {
			for _, e := range local {
				pl.rules[netsim.Rule{Priority: tproxyRulePriority, From: netip.PrefixFrom(e.Addr.Addr(), 32),
					Proto: proto, SPort: e.Addr.Port(), Table: tproxyTable}] = true
			}
		}
	}
	// A refusal verdict for an address another service port listens on
	// does not hold: the listener takes the traffic. That includes a
	// ClusterIP:P when some nodePort P of the same protocol listens on
	// 0.0.0.0:P, which accepts every local address.
	for k, v := range pl.verdicts {
		if v.ExternalOnly {
			continue
		}
		_, exact := pl.fronts[k]
		_, wildcard := pl.fronts[frontKey{k.proto, netip.AddrPortFrom(netip.IPv4Unspecified(), k.addr.Port())}]
		if exact || wildcard {
			delete(pl.verdicts, k)
		}
	}
	return pl
}

// kernelWatches is what a node's observer watches for verdicts: each
// frontend the node will not proxy, as the packets to it look (TCP
// 0.0.0.0:nodePort, UDP ClusterIP:port). A nodePort whose port some
// ClusterIP:port of the same protocol listens on (listened, from the
// plan's fronts) is watched on the node's own addresses only, so that no
// watch ever matches a listening socket; the one exception is
// externalTrafficPolicy: Local on a node without a local endpoint, whose
// 0.0.0.0:nodePort listens for pods and the node while the blackhole
// rule drops external traffic (see verdict.ExternalOnly). The result is
// sorted.
func kernelWatches(verdicts map[frontKey]verdict, listened map[frontKey]bool, own []netip.Addr) []netsim.Watch {
	type protoPort struct {
		proto string
		port  uint16
	}
	specific := map[protoPort]bool{} // some ClusterIP:port listens
	for l := range listened {
		if !l.addr.Addr().IsUnspecified() {
			specific[protoPort{l.proto, l.addr.Port()}] = true
		}
	}
	ws := make([]netsim.Watch, 0, len(verdicts))
	for k := range verdicts {
		if k.addr.Addr().IsUnspecified() && specific[protoPort{k.proto, k.addr.Port()}] {
			for _, a := range own {
				ws = append(ws, netsim.Watch{Protocol: k.proto, Dst: netip.AddrPortFrom(a, k.addr.Port())})
			}
			continue
		}
		ws = append(ws, netsim.Watch{Protocol: k.proto, Dst: k.addr})
	}
	slices.SortFunc(ws, func(a, b netsim.Watch) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		return a.Dst.Compare(b.Dst)
	})
	return ws
}

// steadyVerdicts are the verdicts of next whose frontend the kernel
// treats the same way under prev and next (refused both times, or
// dropped for external clients both times): what a node may keep
// watching while a sync moves its listeners and rules from prev to next.
func steadyVerdicts(prev, next map[frontKey]verdict) map[frontKey]verdict {
	out := map[frontKey]verdict{}
	for k, v := range next {
		if p, ok := prev[k]; ok && p.Result == v.Result && p.ExternalOnly == v.ExternalOnly {
			out[k] = v
		}
	}
	return out
}

// listeners is the plan's listener set as the control plane sees it,
// sorted by protocol and address.
func listenerSet(fronts map[frontKey]planFront) []plane.Listener {
	ls := make([]plane.Listener, 0, len(fronts))
	for k, f := range fronts {
		ls = append(ls, plane.Listener{Protocol: k.proto, Addr: k.addr, Service: f.service, NodePort: f.nodePort})
	}
	slices.SortFunc(ls, func(a, b plane.Listener) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	return ls
}
