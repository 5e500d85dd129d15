package lab

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// TestFlowStringSaysWhatHappened: a failure says why once (the detail that
// names the node or pod stands for the reason it restates), and a UDP
// exchange shows its bytes and duration.
func TestFlowStringSaysWhatHappened(t *testing.T) {
	base := plane.Flow{
		Protocol: "TCP", Client: netip.MustParseAddrPort("172.18.0.100:41834"),
		EntryNode: "node-1", Frontend: netip.MustParseAddrPort("172.18.0.2:30080"),
		Pod: "web-1", PodNode: "node-2", Backend: netip.MustParseAddrPort("10.244.2.2:8080"),
	}
	linkDown := base
	linkDown.Result, linkDown.Reason, linkDown.Detail = plane.FlowError, plane.ReasonNodeLinkDown, "node-2's link is down"
	stopped := base
	stopped.Result, stopped.Reason, stopped.Detail = plane.FlowReset, plane.ReasonAppStopped, "the app of pod web-1 is stopped"
	refused := base
	refused.Result, refused.Reason, refused.Detail = plane.FlowError, plane.ReasonPodRefused, "connect: connection refused"
	timedOut := base
	timedOut.Result, timedOut.Reason, timedOut.Detail = plane.FlowTimedOut, plane.ReasonPodTimeout, "dial tcp 10.244.2.2:8080: i/o timeout"
	udp := base
	udp.Protocol, udp.Result, udp.BytesIn, udp.BytesOut, udp.Duration = "UDP", plane.FlowOK, 8, 20, 2800*time.Microsecond
	hostPort := plane.Flow{Protocol: "TCP", Client: netip.MustParseAddrPort("172.18.0.100:41834"), EntryNode: "node-1",
		Frontend: netip.MustParseAddrPort("172.18.0.2:9090"), Pod: "hp", PodNode: "node-1", Backend: netip.MustParseAddrPort("10.244.1.2:8080"),
		SourceSeen: netip.MustParseAddr("172.18.0.100"), Result: plane.FlowOK, Kernel: true, HostPort: true}
	hostPortRefused := hostPort
	hostPortRefused.Result, hostPortRefused.Reason, hostPortRefused.Detail = plane.FlowRefused, plane.ReasonPodRefused, "no app of pod hp listens on TCP 8080"
	const path = "TCP 172.18.0.100:41834 → node-1 172.18.0.2:30080 → pod web-1 (node-2) 10.244.2.2:8080: "
	for _, tt := range []struct {
		f    plane.Flow
		want string
	}{
		{linkDown, path + string(plane.FlowError) + " (node-2's link is down)"},
		{stopped, path + string(plane.FlowReset) + " (the app of pod web-1 is stopped)"},
		{refused, path + string(plane.FlowError) + " (the pod refused the connection: connect: connection refused)"},
		{timedOut, path + "timed out (timeout waiting for the pod: dial tcp 10.244.2.2:8080: i/o timeout)"},
		{udp, "UDP" + path[3:] + "ok, 8 B in, 20 B out, 2.8ms"},
		{hostPort, "TCP 172.18.0.100:41834 → node-1 172.18.0.2:9090 (hostPort) → pod hp (node-1) 10.244.1.2:8080: ok, DNAT by node-1's kernel (CNI portmap), pod saw 172.18.0.100"},
		{hostPortRefused, "TCP 172.18.0.100:41834 → node-1 172.18.0.2:9090 (hostPort) → pod hp (node-1) 10.244.1.2:8080: refused (no app of pod hp listens on TCP 8080), DNAT by node-1's kernel (CNI portmap)"},
	} {
		if got := FlowString(&tt.f); got != tt.want {
			t.Errorf("FlowString:\n got %s\nwant %s", got, tt.want)
		}
	}
}
