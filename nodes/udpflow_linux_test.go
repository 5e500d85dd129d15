//go:build linux

package nodes

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// TestUDPFlowBytes checks the byte counts of UDP flows both ways (issue
// 13: flow events said "0 B out" though the pod replied): for a
// NodePort exchange that hops to a pod on another node (Cluster policy),
// one that stays on the pod's node with the client's address kept (Local
// policy, a transparent socket), and a pod calling a ClusterIP, the flow
// the control plane is told of, and Reply.Flow, count exactly the
// datagram sent and the answer the client got.
func TestUDPFlowBytes(t *testing.T) {
	c, log := newCluster(t, 2, plane.ProxyRandom)
	web := startPod(t, c, log, 1, 10, agnhost("udp-web"), true)
	caller := startPod(t, c, log, 2, 10, agnhost("udp-caller"), true)
	svc := func(name, cip string, nodePort uint16, policy string) plane.ServicePort {
		return plane.ServicePort{Service: "default/" + name, PortName: "udp", Protocol: "UDP", ClusterIP: netip.MustParseAddr(cip),
			Port: 81, NodePort: nodePort, ExternalTrafficPolicy: policy, Endpoints: endpoints(8081, web)}
	}
	c.SyncServices([]plane.ServicePort{svc("cluster", "10.96.0.20", 30081, "Cluster"), svc("local", "10.96.0.21", 30082, "Local")})

	for _, tc := range []struct {
		name    string
		from    string
		target  netip.AddrPort
		service string
		seen    netip.Addr // the source address the pod saw
	}{
		{"NodePort, Cluster policy, hop to node-1", "client", nodeAddr(2, 30081), "default/cluster", netip.MustParseAddr("172.18.0.3")},
		{"NodePort, Local policy, client address kept", "client", nodeAddr(1, 30082), "default/local", netip.MustParseAddr("172.18.0.100")},
		{"ClusterIP from a pod on node-2", caller.name, netip.MustParseAddrPort("10.96.0.20:81"), "default/cluster", netip.MustParseAddr("172.18.0.3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, msg := range []string{"hostname", "echo " + fmt.Sprint(make([]int, 40))} {
				rep := send(t, c, plane.Request{From: tc.from, Protocol: "UDP", Target: tc.target, Message: msg})
				if rep.Result != plane.FlowOK || rep.Flow == nil || rep.Body == "" {
					t.Fatalf("datagram %d: %s %q %v, flow %+v", i, rep.Result, rep.Body, rep.Err, rep.Flow)
				}
				// What the control plane was told, not only Reply.Flow.
				told := log.wait(t, time.Second, "the flow of "+rep.Local.String(), func(r record) bool {
					return r.Kind == recFlow && r.Flow.Protocol == "UDP" && r.Flow.Client == rep.Local
				}).Flow
				for _, f := range []plane.Flow{*rep.Flow, told} {
					if f.Result != plane.FlowOK || f.Service != tc.service || f.Pod != web.name || f.SourceSeen != tc.seen {
						t.Errorf("datagram %d: flow %+v; want ok to %s via %s, the pod seeing %s", i, f, web.name, tc.service, tc.seen)
					}
					if f.BytesIn != int64(len(msg)) || f.BytesOut != int64(len(rep.Body)) {
						t.Errorf("datagram %d: the flow counted %d B in, %d B out; the client sent %d and got %d (%q)",
							i, f.BytesIn, f.BytesOut, len(msg), len(rep.Body), rep.Body)
					}
				}
			}
		})
	}
}
