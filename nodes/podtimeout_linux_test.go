//go:build linux

package nodes

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// TestFlowSaysThePodTimedOut: a pod that gets the proxy's SYN but whose
// answer never comes back — its default route is gone, a broken pod
// network and not a fault the lab knows of (no link down, its app runs) —
// times the proxy's dial out, and the flow says so: timed out, "timeout
// waiting for the pod", not a bare error. Issue 11's "the reason for every
// failure".
func TestFlowSaysThePodTimedOut(t *testing.T) {
	// Shorter than the 5 s default, set before the cluster's goroutines
	// start (and put back after it is closed: cleanups run last first).
	old := backendDialTimeout
	backendDialTimeout = 1500 * time.Millisecond
	t.Cleanup(func() { backendDialTimeout = old })

	c, log := newCluster(t, 2, plane.ProxyRandom)
	pod := startPod(t, c, log, 2, 10, agnhost("pt-1"), true)
	c.SyncServices([]plane.ServicePort{{Service: "default/pt", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.20"),
		Port: 80, NodePort: 30090, ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, pod)}})
	// The client reaches node-1; the proxy masquerades as node-1
	// (172.18.0.2), which the pod on node-2 answers through its default
	// route.
	req := plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30090), Message: "/hostname", Timeout: 5 * time.Second}
	if rep := send(t, c, req); rep.Result != plane.FlowOK || rep.Body != "pt-1" {
		t.Fatalf("before the fault: %s %q %v; want ok from pt-1", rep.Result, rep.Body, rep.Err)
	}

	c.mu.Lock()
	h := c.pods["pt-1"].host
	c.mu.Unlock()
	def := netsim.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: c.Topology().Nodes[1].Gateway()}
	if err := netsim.DelRoute(h, def); err != nil {
		t.Fatalf("ip -n <pt-1> route del default: %v", err)
	}

	start := time.Now()
	rep := send(t, c, req)
	if rep.Result == plane.FlowOK {
		t.Fatalf("with pt-1's replies unroutable the request succeeded: %q", rep.Body)
	}
	got := log.wait(t, backendDialTimeout+5*time.Second, "a failed TCP flow to pt-1", func(r record) bool {
		return r.Kind == recFlow && r.Flow.Protocol == "TCP" && r.Flow.Pod == "pt-1" && r.Flow.Start.After(start) && r.Flow.Result != plane.FlowOK
	}).Flow
	t.Logf("client: %s (%v); flow: %s (%s: %s)", rep.Result, rep.Err, got.Result, got.Reason, got.Detail)
	if got.Result != plane.FlowTimedOut || got.Reason != plane.ReasonPodTimeout || got.EntryNode != "node-1" || got.PodNode != "node-2" ||
		!strings.Contains(got.Detail, "timeout") {
		t.Errorf("flow %+v; want timed out, reason %q, node-1 → pt-1 on node-2, and the dial's timeout as the detail", got, plane.ReasonPodTimeout)
	}

	// The route back: the same request answers again, so the route was
	// the cause.
	if err := h.AddRoute(def); err != nil {
		t.Fatal(err)
	}
	if rep := send(t, c, req); rep.Result != plane.FlowOK || rep.Body != "pt-1" {
		t.Errorf("after the route is back: %s %q %v; want ok from pt-1", rep.Result, rep.Body, rep.Err)
	}
}
