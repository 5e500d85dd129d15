package tui

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// Chain names as kube-proxy's iptables mode makes them
// (pkg/proxy/iptables/proxier.go): the first 16 characters of the base32
// SHA-256 of the service port name ("default/web:http") and the lowercase
// protocol, and for an endpoint chain the endpoint "IP:port" too.
func portProtoHash(svcPort, proto string) string {
	h := sha256.Sum256([]byte(svcPort + strings.ToLower(proto)))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

func svcChain(svcPort, proto string) string { return "KUBE-SVC-" + portProtoHash(svcPort, proto) }
func extChain(svcPort, proto string) string { return "KUBE-EXT-" + portProtoHash(svcPort, proto) }
func svlChain(svcPort, proto string) string { return "KUBE-SVL-" + portProtoHash(svcPort, proto) }
func sepChain(svcPort, proto, ep string) string {
	h := sha256.Sum256([]byte(svcPort + strings.ToLower(proto) + ep))
	return "KUBE-SEP-" + base32.StdEncoding.EncodeToString(h[:])[:16]
}

func flowTitle(f *plane.Flow) string {
	if f == nil {
		return "the event in full"
	}
	return fmt.Sprintf("%s %s → %s %s", f.Protocol, f.Client, f.EntryNode, f.Frontend)
}

// explainLines is a flow hop by hop, each hop named by the rule kube-proxy
// would have put in the node's kernel, then what nplab did instead.
func (m Model) explainLines(e lab.Event, w int) []string {
	f := e.Flow
	if f == nil {
		// Not a flow: the event in full, wrapped.
		out := wrap(fmt.Sprintf("%s %s %s", e.Time.Format("15:04:05"), e.Type, e.Object), w)
		return append(append(out, ""), wrap(m.eventText(e), w)...)
	}
	s := m.state
	var out []string
	n := 0
	hop := func(name, text string) {
		n++
		if w >= 90 {
			out = append(out, wrapHang(fmt.Sprintf("%d %-26s ", n, name), text, w)...)
			return
		}
		// Narrow: the hop's name on its own line, its text under it.
		out = append(out, fmt.Sprintf("%d %s", n, name))
		out = append(out, wrapHang("    ", text, w)...)
	}
	svcName := strings.TrimPrefix(f.Service, lab.Namespace+"/")
	svc, known := s.Services[svcName]
	svcPort := f.Service
	if f.PortName != "" {
		svcPort += ":" + f.PortName
	}
	proto := strings.ToLower(f.Protocol)
	nodePort := false
	if known {
		for _, p := range svc.Ports {
			if p.NodePort != 0 && uint16(p.NodePort) == f.Frontend.Port() && string(p.Protocol) == f.Protocol {
				nodePort = true
			}
		}
	}
	entryIP := f.Frontend.Addr()
	if node, ok := s.Node(f.EntryNode); ok {
		entryIP = node.IP
	}

	// 1. The frontend rule.
	if f.HostPort {
		hop(f.EntryNode, fmt.Sprintf("nat PREROUTING → CNI-HOSTPORT-DNAT: dport %d/%s to a local address of %s matches pod %s's hostPort (the CNI portmap plugin's chain; no Service, no kube-proxy)", f.Frontend.Port(), proto, f.EntryNode, shortPod(s, f.Pod)))
		hop("DNAT", fmt.Sprintf("→ %s; no masquerade, so the pod sees the client's own address %s; only %s answers on this port", f.Backend, f.SourceSeen, f.EntryNode))
		hop("result", string(f.Result))
		out = append(out, "")
		out = append(out, wrapHang("", "nplab: this is kernel DNAT in "+f.EntryNode+"'s namespace, as on a cluster (`nft list table ip nplab-hostport` there); the bytes are not counted.", w)...)
		return out
	}
	switch {
	case f.Service == "":
		hop(f.EntryNode, fmt.Sprintf("nat PREROUTING → KUBE-SERVICES: no rule matches %s/%s; the kernel finds no socket and refuses (TCP RST / ICMP port unreachable)", f.Frontend, proto))
	case nodePort:
		hop(f.EntryNode, fmt.Sprintf("nat PREROUTING → KUBE-SERVICES → KUBE-NODEPORTS: dport %d/%s matches %s", f.Frontend.Port(), proto, svcPort))
	default:
		hop(f.EntryNode, fmt.Sprintf("nat PREROUTING (or OUTPUT) → KUBE-SERVICES: -d %s/%s matches %s", f.Frontend, proto, svcPort))
	}
	local := known && svc.ExternalTrafficPolicy == "Local" && nodePort
	ready := readyEndpoints(svc, f.Protocol)
	if f.Service != "" {
		switch {
		case f.Reason == plane.ReasonNoEndpoints || (known && len(ready) == 0 && f.Pod == ""):
			hop("KUBE-SERVICES", fmt.Sprintf("%s has no endpoints: the rule is -j REJECT; the client gets %s", svcPort, rejectText(f.Protocol)))
		case local:
			var mine []plane.Endpoint
			for _, ep := range ready {
				if ep.Node == f.EntryNode {
					mine = append(mine, ep)
				}
			}
			if len(mine) == 0 || f.Reason == plane.ReasonLocalPolicy {
				hop(extChain(svcPort, proto), fmt.Sprintf("policy Local → %s: no endpoint on %s, so the chain is KUBE-MARK-DROP: the packet is dropped and the client times out (it is not refused)", svlChain(svcPort, proto), f.EntryNode))
			} else {
				hop(extChain(svcPort, proto), fmt.Sprintf("policy Local → %s: only the %d endpoint(s) on %s; no KUBE-MARK-MASQ, so the client's address is kept", svlChain(svcPort, proto), len(mine), f.EntryNode))
				ready = mine
			}
		case nodePort:
			hop(extChain(svcPort, proto), "policy Cluster: KUBE-MARK-MASQ (mark the packet for SNAT), then "+svcChain(svcPort, proto)+": every ready endpoint in the cluster")
		}
	}
	if f.Pod != "" {
		ep := f.Backend.String()
		hop(svcChain(svcPort, proto), m.choiceText(ready, f.Pod)+" → "+sepChain(svcPort, proto, ep))
		where := "on " + f.EntryNode + " itself: no hop"
		if f.PodNode != "" && f.PodNode != f.EntryNode {
			where = "on " + f.PodNode + ": one hop across the bridge to that node, then its pod route"
		}
		hop(sepChain(svcPort, proto, ep), fmt.Sprintf("DNAT → %s (%s, %s)", ep, shortPod(s, f.Pod), where))
		if !local {
			hop("KUBE-POSTROUTING", "the packet is marked: MASQUERADE → "+m.masqText(f, entryIP))
		}
	}
	// The outcome.
	switch f.Result {
	case plane.FlowOK:
		saw := "nothing reported"
		if f.SourceSeen.IsValid() {
			saw = f.SourceSeen.String()
			switch {
			case f.SourceSeen == s.Client:
				saw += ", the client itself"
			case f.SourceSeen == entryIP:
				saw += ", the entry node, not the client"
			case f.SourceSeen == podGateway(s, f.EntryNode):
				saw += ", the entry node's address on its pod network, not the client"
			}
		}
		hop(shortPod(s, f.Pod), fmt.Sprintf("answered in %s; it saw %s", f.Duration.Round(100_000), saw))
	default:
		why := string(f.Reason)
		if f.Detail != "" {
			if why != "" {
				why += ": "
			}
			why += f.Detail
		}
		if why == "" {
			why = "no reason reported"
		}
		hop("result", fmt.Sprintf("%s (%s)", f.Result, why))
	}

	out = append(out, "")
	var diff string
	switch {
	case f.Kernel:
		diff = fmt.Sprintf("nplab: no proxy socket was involved here: %s's kernel answered (or dropped) the attempt itself, which is what the client sees with kube-proxy's rules.", f.EntryNode)
	case f.Pod != "":
		diff = fmt.Sprintf("nplab did steps 1–%d in userspace: %s's proxy accepted the %s connection on %s and opened its own to %s", min(n-1, 5), f.EntryNode, f.Protocol, f.Frontend, f.Backend)
		if local {
			diff += " keeping the client's address, as Local policy does."
		} else {
			diff += fmt.Sprintf(" from %s, as the masquerade would. ", masqAddr(s, f, entryIP))
		}
		diff += " The client and the pod see the addresses the kernel's rules give them; conntrack, the packet counters and `iptables -t nat -L` are not there to look at."
		if f.Protocol == "UDP" {
			diff += " UDP flows are pinned to their endpoint like a conntrack entry, and flushed when it goes."
		}
	default:
		diff = "nplab: the proxy found no endpoint to use and the attempt ended as kube-proxy's rules end it."
	}
	return append(out, wrap(diff, w)...)
}

// podGateway is node's own address on its pod network (10.244.N.1, the
// pods' gateway), or the zero Addr.
func podGateway(s lab.State, node string) netip.Addr {
	if n, ok := s.Node(node); ok && n.PodCIDR.IsValid() {
		return n.PodCIDR.Addr().Next()
	}
	return netip.Addr{}
}

// masqAddr is the source MASQUERADE gives the packet: the address of the
// interface it leaves by. For a pod on another node that is the entry
// node's eth0 (its node IP); for a pod on the entry node itself, the
// node's side of the pod network. What the pod saw, when reported, says
// which.
func masqAddr(s lab.State, f *plane.Flow, entryIP netip.Addr) netip.Addr {
	if f.SourceSeen.IsValid() && f.SourceSeen != s.Client {
		return f.SourceSeen
	}
	if f.PodNode == f.EntryNode {
		if gw := podGateway(s, f.EntryNode); gw.IsValid() {
			return gw
		}
	}
	return entryIP
}

// masqText is the masquerade hop: the new source, and why that address.
func (m Model) masqText(f *plane.Flow, entryIP netip.Addr) string {
	a := masqAddr(m.state, f, entryIP)
	if a != entryIP && a == podGateway(m.state, f.EntryNode) {
		return fmt.Sprintf("its source becomes %s, %s's own address on its pod network: the pod is on %s itself, so the packet leaves by the pod's interface, not eth0, and MASQUERADE takes that interface's address; the reply comes back through %s", a, f.EntryNode, f.EntryNode, f.EntryNode)
	}
	return fmt.Sprintf("its source becomes %s (%s's eth0, the interface the packet leaves by), so the reply comes back through it", a, f.EntryNode)
}

// wrapHang wraps text after a fixed-width label, continuation lines
// indented under the text.
func wrapHang(label, text string, w int) []string {
	lines := wrap(text, max(20, w-len([]rune(label))))
	pad := strings.Repeat(" ", len([]rune(label)))
	for i := range lines {
		if i == 0 {
			lines[i] = label + lines[i]
		} else {
			lines[i] = pad + lines[i]
		}
	}
	return lines
}

func readyEndpoints(svc lab.ServiceState, proto string) []plane.Endpoint {
	var out []plane.Endpoint
	for _, p := range svc.Ports {
		if string(p.Protocol) != proto {
			continue
		}
		for _, e := range p.Endpoints {
			if e.Ready {
				out = append(out, e)
			}
		}
		break
	}
	return out
}

// choiceText is how the endpoint was chosen among ready: iptables' chain
// of statistic-random rules (1/n, 1/(n-1), ..., the rest), or IPVS's
// round robin.
func (m Model) choiceText(ready []plane.Endpoint, pod string) string {
	k := len(ready)
	if k == 0 {
		return "no ready endpoint now (it was ready when the flow began) → " + shortPod(m.state, pod)
	}
	if m.proxyMode() == plane.ProxyRoundRobin {
		return fmt.Sprintf("round robin over %d ready endpoints (IPVS rr; iptables mode would pick at random) → %s", k, shortPod(m.state, pod))
	}
	idx := -1
	for i, e := range ready {
		if e.Pod == pod {
			idx = i
		}
	}
	if k == 1 {
		return "one ready endpoint: its rule matches always → " + shortPod(m.state, pod)
	}
	var probs []string
	for i := 0; i < k-1; i++ {
		probs = append(probs, fmt.Sprintf("1/%d", k-i))
	}
	rule := "; " + shortPod(m.state, pod) + " was ready then, and is not now"
	if idx >= 0 {
		rule = fmt.Sprintf("; it is rule %d of %d", idx+1, k)
	}
	return fmt.Sprintf("random over %d ready endpoints: -m statistic --mode random --probability %s, then the rest (each one 1/%d overall)%s → %s",
		k, strings.Join(probs, ", "), k, rule, shortPod(m.state, pod))
}

func rejectText(proto string) string {
	switch proto {
	case "TCP":
		return "a TCP RST (connection refused)"
	case "SCTP":
		return "an ICMP port unreachable (the association is refused)"
	}
	return "an ICMP port unreachable"
}
