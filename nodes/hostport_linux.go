//go:build linux

package nodes

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// hostPorts are the hostPort mappings of every node, as the CNI portmap
// plugin keeps them: per node, (protocol, hostIP, hostPort) → the pod's
// IP:containerPort. Each change rewrites the node's nftables table in one
// transaction (netsim.SetPortMaps).
type hostPorts struct {
	mu     sync.Mutex // serializes changes and the node's table
	byNode map[string]map[hostPortKey]hostPortTarget
}

type hostPortKey struct {
	proto  string
	hostIP netip.Addr
	port   uint16
}

type hostPortTarget struct {
	pod  string
	addr netip.AddrPort
}

// mapHostPorts maps p's hostPorts on its node. A hostPort another pod of
// the node holds is not mapped, with a Warning (the scheduler's NodePorts
// filter keeps such pods apart on a real cluster; nplab does not model it).
// A hostNetwork pod needs no mapping: its apps listen on the node.
func (c *Cluster) mapHostPorts(p *pod) error {
	if p.hostNet {
		return nil
	}
	var want []hostPortKey
	var targets []hostPortTarget
	for _, ctr := range p.obj.Spec.Containers {
		for _, cp := range ctr.Ports {
			if cp.HostPort <= 0 || cp.HostPort > 65535 || cp.ContainerPort <= 0 || cp.ContainerPort > 65535 {
				continue
			}
			k := hostPortKey{proto: strings.ToUpper(string(cp.Protocol)), port: uint16(cp.HostPort)}
			if k.proto == "" {
				k.proto = "TCP"
			}
			k.hostIP, _ = netip.ParseAddr(cp.HostIP)
			if k.hostIP.IsUnspecified() {
				k.hostIP = netip.Addr{}
			}
			want = append(want, k)
			targets = append(targets, hostPortTarget{pod: p.name, addr: netip.AddrPortFrom(p.ip, uint16(cp.ContainerPort))})
		}
	}
	if len(want) == 0 {
		return nil
	}
	node := p.node.spec.Name
	c.hp.mu.Lock()
	defer c.hp.mu.Unlock()
	if c.hp.byNode == nil {
		c.hp.byNode = map[string]map[hostPortKey]hostPortTarget{}
	}
	m := c.hp.byNode[node]
	if m == nil {
		m = map[hostPortKey]hostPortTarget{}
		c.hp.byNode[node] = m
	}
	for i, k := range want {
		if old, taken := m[k]; taken && old.pod != p.name {
			c.ctl.Warning(node, p.name, fmt.Sprintf("pod %s: hostPort %d/%s on %s is already pod %s's; not mapped (a real scheduler would not put both pods on one node)", p.name, k.port, k.proto, node, old.pod))
			continue
		}
		m[k] = targets[i]
		host := p.node.spec.IP.String()
		if k.hostIP.IsValid() {
			host = k.hostIP.String()
		}
		c.ctl.PodNotice(p.name, fmt.Sprintf("pod %s: hostPort %s:%d/%s → %s, as the CNI portmap plugin maps it: DNAT by %s's kernel (ip netns exec %s nft list table ip %s); only %s answers on it, unlike a NodePort",
			p.name, host, k.port, k.proto, targets[i].addr, node, p.node.host.Namespace(), netsim.PortMapTable, node))
	}
	c.watchHostPorts(p.node)
	return netsim.SetPortMaps(p.node.host, portMapsOf(m))
}

// unmapHostPorts removes p's mappings from its node.
func (c *Cluster) unmapHostPorts(p *pod) error {
	node := p.node.spec.Name
	c.hp.mu.Lock()
	defer c.hp.mu.Unlock()
	m := c.hp.byNode[node]
	changed := false
	for k, t := range m {
		if t.pod == p.name {
			delete(m, k)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	c.watchHostPorts(p.node)
	return netsim.SetPortMaps(p.node.host, portMapsOf(m))
}

func portMapsOf(m map[hostPortKey]hostPortTarget) []netsim.PortMap {
	out := make([]netsim.PortMap, 0, len(m))
	for k, t := range m {
		out = append(out, netsim.PortMap{Protocol: k.proto, HostIP: k.hostIP, HostPort: k.port, Pod: t.addr})
	}
	slices.SortFunc(out, func(a, b netsim.PortMap) int {
		if a.HostPort != b.HostPort {
			return int(a.HostPort) - int(b.HostPort)
		}
		return strings.Compare(a.Protocol, b.Protocol)
	})
	return out
}

// watchHostPorts makes node's observer watch its hostPorts (TCP SYNs, SCTP
// INITs, UDP datagrams to them), so that each attempt is a flow. c.hp.mu
// is held.
func (c *Cluster) watchHostPorts(n *node) {
	var ws []netsim.Watch
	for k := range c.hp.byNode[n.spec.Name] {
		a := netip.IPv4Unspecified()
		if k.hostIP.IsValid() {
			a = k.hostIP
		}
		ws = append(ws, netsim.Watch{Protocol: k.proto, Dst: netip.AddrPortFrom(a, k.port)})
	}
	slices.SortFunc(ws, func(a, b netsim.Watch) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		return a.Dst.Compare(b.Dst)
	})
	n.kernel.setHostPortWatch(ws)
}

// hostPortFlow reports an attempt the node's observer saw on one of its
// hostPorts as a flow (plane.Flow.HostPort): the node's kernel DNATed it
// to the pod. It reports whether frontend was a hostPort of the node.
func (c *Cluster) hostPortFlow(n *node, proto string, client, frontend netip.AddrPort, start time.Time) bool {
	c.hp.mu.Lock()
	var t hostPortTarget
	found := false
	for k, v := range c.hp.byNode[n.spec.Name] {
		if k.proto == proto && k.port == frontend.Port() && (!k.hostIP.IsValid() || k.hostIP == frontend.Addr()) {
			t, found = v, true
			break
		}
	}
	c.hp.mu.Unlock()
	if !found {
		return false
	}
	f := plane.Flow{Protocol: proto, Client: client, EntryNode: n.spec.Name, Frontend: frontend,
		Pod: t.pod, PodNode: n.spec.Name, Backend: t.addr, SourceSeen: client.Addr(),
		Result: plane.FlowOK, Kernel: true, HostPort: true, Start: start}
	c.mu.Lock()
	p := c.pods[t.pod]
	c.mu.Unlock()
	listens := false
	if p != nil && !p.isAppStopped() {
		for _, s := range p.specs {
			listens = listens || s.Listens(proto, t.addr.Port())
		}
	}
	if !listens {
		f.Result, f.Reason = plane.FlowRefused, plane.ReasonPodRefused
		f.Detail = fmt.Sprintf("no app of pod %s listens on %s %d", t.pod, proto, t.addr.Port())
	}
	f.Duration = time.Since(start)
	c.reportFlow(f)
	return true
}
