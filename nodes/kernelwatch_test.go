package nodes

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// TestKernelWatches: a node's observer watches exactly the frontends its
// plan will not proxy, and never an address a listener takes, except the
// 0.0.0.0:nodePort of a Local Service on a node without a local endpoint
// (listened for pods and the node, blackholed for external clients).
func TestKernelWatches(t *testing.T) {
	remote := ep("b", "node-2", "10.244.2.10:8080", true, true, false)
	ports := []plane.ServicePort{
		// No endpoints: refused on its ClusterIP and nodePort.
		{Service: "default/empty", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30090},
		{Service: "default/empty", PortName: "udp", Protocol: "UDP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 81, NodePort: 30091},
		// Local, endpoint elsewhere: the nodePort listens and is watched.
		{Service: "default/local", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.12"), Port: 80, NodePort: 30085,
			ExternalTrafficPolicy: "Local", Endpoints: []plane.Endpoint{remote}},
		// A ClusterIP listening on port 30092, where another Service's
		// nodePort refuses: that nodePort is watched on the node's own
		// addresses only.
		{Service: "default/odd", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.13"), Port: 30092, Endpoints: []plane.Endpoint{remote}},
		{Service: "default/gone", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.14"), Port: 80, NodePort: 30092},
		// No endpoints on ClusterIP port 30085, which the Local nodePort
		// above listens on for every local address: the listener takes
		// it, so it is neither refused nor watched.
		{Service: "default/shadow", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.15"), Port: 30085},
	}
	pl := planProxy(ports, planEnv{node: "node-1"})
	if _, ok := pl.verdicts[frontKey{"TCP", netip.MustParseAddrPort("10.96.0.15:30085")}]; ok {
		t.Errorf("a verdict for 10.96.0.15:30085/TCP, which 0.0.0.0:30085 listens for: %+v", pl.verdicts)
	}
	listened := map[frontKey]bool{}
	for k := range pl.fronts {
		listened[k] = true
	}
	own := []netip.Addr{netip.MustParseAddr("172.18.0.2"), netip.MustParseAddr("10.244.1.1"), netip.MustParseAddr("127.0.0.1")}
	got := kernelWatches(pl.verdicts, listened, own)
	w := func(proto, dst string) netsim.Watch {
		return netsim.Watch{Protocol: proto, Dst: netip.MustParseAddrPort(dst)}
	}
	want := []netsim.Watch{
		w("TCP", "0.0.0.0:30085"),
		w("TCP", "0.0.0.0:30090"),
		w("TCP", "10.96.0.11:80"),
		w("TCP", "10.96.0.14:80"),
		w("TCP", "10.244.1.1:30092"),
		w("TCP", "127.0.0.1:30092"),
		w("TCP", "172.18.0.2:30092"),
		w("UDP", "0.0.0.0:30091"),
		w("UDP", "10.96.0.11:81"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("kernelWatches =\n %v\nwant\n %v", got, want)
	}
	// No watch matches a listener, except the Local nodePort's.
	for _, wa := range got {
		for k := range pl.fronts {
			if k.proto != wa.Protocol || k.addr.Port() != wa.Dst.Port() {
				continue
			}
			if k.addr.Addr().IsUnspecified() || k.addr.Addr() == wa.Dst.Addr() || wa.Dst.Addr().IsUnspecified() {
				if v := pl.verdicts[k]; !v.ExternalOnly {
					t.Errorf("watch %v matches the listener %v", wa, k)
				}
			}
		}
	}
}

// TestSteadyVerdicts: while a sync moves listeners and rules, only the
// frontends the kernel answers the same way before and after stay
// watched.
func TestSteadyVerdicts(t *testing.T) {
	k := func(s string) frontKey { return frontKey{"TCP", netip.MustParseAddrPort(s)} }
	refusedNo := verdict{Service: "default/a", Result: plane.FlowRefused, Reason: plane.ReasonNoEndpoints}
	refusedListener := verdict{Service: "default/a", Result: plane.FlowRefused, Reason: plane.ReasonNoListener}
	dropped := verdict{Service: "default/a", Result: plane.FlowDropped, Reason: plane.ReasonLocalPolicy, ExternalOnly: true}
	prev := map[frontKey]verdict{k("0.0.0.0:1"): refusedNo, k("0.0.0.0:2"): refusedNo, k("0.0.0.0:3"): refusedNo, k("0.0.0.0:4"): dropped}
	next := map[frontKey]verdict{k("0.0.0.0:1"): refusedListener, k("0.0.0.0:3"): dropped, k("0.0.0.0:4"): dropped, k("0.0.0.0:5"): refusedNo}
	got := steadyVerdicts(prev, next)
	want := map[frontKey]verdict{k("0.0.0.0:1"): refusedListener, k("0.0.0.0:4"): dropped}
	if !mapsEqual(got, want) {
		t.Errorf("steadyVerdicts = %v, want %v", got, want)
	}
}
