//go:build linux

package nodes

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab/plane"
)

// TestSCTP runs the TCP checks over SCTP. This machine's kernel has no
// SCTP, so it skips here and runs in the qemu VM test (NPLAB_REQUIRE=sctp).
func TestSCTP(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireSCTP(t)
	c, log := newCluster(t, 3, plane.ProxyRandom)
	var web []testPod
	var names []string
	for i := 1; i <= 3; i++ {
		p := agnhost(fmt.Sprintf("sctp-%d", i), "--sctp-port=8082")
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 8082, Protocol: corev1.ProtocolSCTP})
		web = append(web, startPod(t, c, log, i, 10, p, true))
		names = append(names, p.Name)
	}
	svc := plane.ServicePort{Service: "default/sctp", Protocol: "SCTP", ClusterIP: clusterIP, Port: 82, NodePort: 30082,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8082, web...)}
	local := plane.ServicePort{Service: "default/sctp-local", Protocol: "SCTP", ClusterIP: netip.MustParseAddr("10.96.0.20"), Port: 82, NodePort: 30083,
		ExternalTrafficPolicy: "Local", Endpoints: endpoints(8082, web[1])}
	sticky := svc
	sticky.Service, sticky.ClusterIP, sticky.NodePort, sticky.AffinityTimeout = "default/sctp-sticky", netip.MustParseAddr("10.96.0.21"), 30084, time.Hour
	empty := plane.ServicePort{Service: "default/sctp-empty", Protocol: "SCTP", ClusterIP: netip.MustParseAddr("10.96.0.22"), Port: 82, NodePort: 30085, ExternalTrafficPolicy: "Cluster"}
	c.SyncServices([]plane.ServicePort{svc, local, sticky, empty})

	t.Run("every node reaches every pod", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			r := plane.Request{From: "client", Protocol: "SCTP", Target: nodeAddr(i, 30082), Message: "hostname"}
			seen := fanOut(t, c, r, 40, 3)
			for body := range seen {
				if !slices.Contains(names, body) {
					t.Errorf("%s answered %q, not one of the pods", r.Target, body)
				}
			}
			if len(seen) != 3 {
				t.Errorf("%s: 40 tries reached only %v", r.Target, seen)
			}
		}
	})
	t.Run("a pod reaches the ClusterIP", func(t *testing.T) {
		rep := send(t, c, plane.Request{From: "sctp-1", Protocol: "SCTP", Target: netip.AddrPortFrom(clusterIP, 82), Message: "hostname"})
		if rep.Result != plane.FlowOK || !slices.Contains(names, rep.Body) {
			t.Errorf("pod → ClusterIP: %s %q %v", rep.Result, rep.Body, rep.Err)
		}
	})
	t.Run("no endpoints refuses", func(t *testing.T) {
		rep := send(t, c, plane.Request{From: "client", Protocol: "SCTP", Target: nodeAddr(1, 30085), Message: "hostname"})
		if rep.Result != plane.FlowRefused {
			t.Errorf("no endpoints: %s %v, want refused", rep.Result, rep.Err)
		}
	})
	t.Run("Local policy", func(t *testing.T) {
		rep := send(t, c, plane.Request{From: "client", Protocol: "SCTP", Target: nodeAddr(1, 30083), Message: "hostname", Timeout: time.Second})
		if rep.Result != plane.FlowTimedOut {
			t.Errorf("via node-1 without local endpoint: %s %v, want timed out", rep.Result, rep.Err)
		}
		rep = send(t, c, plane.Request{From: "client", Protocol: "SCTP", Target: nodeAddr(2, 30083), Message: "clientip"})
		// Linux SCTP cannot send from a foreign address, so unlike TCP and
		// UDP the pod sees node-2's own address on its pod link
		// (netsim.ErrTransparentSCTP), as MASQUERADE would give.
		if rep.Result != plane.FlowOK || !strings.HasPrefix(rep.Body, "10.244.2.1:") {
			t.Errorf("via node-2: %s %q %v, want node-2's pod-side address 10.244.2.1", rep.Result, rep.Body, rep.Err)
		}
	})
	t.Run("ClientIP affinity", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 15; i++ {
			rep := send(t, c, plane.Request{From: "client", Protocol: "SCTP", Target: nodeAddr(3, 30084), Message: "hostname"})
			seen[rep.Body]++
		}
		if len(seen) != 1 {
			t.Errorf("15 associations hit %v, want one pod", seen)
		}
	})
}
