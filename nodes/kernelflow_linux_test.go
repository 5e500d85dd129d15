//go:build linux

package nodes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// kernelFlowsOf waits up to d for the flows recorded for client and then a
// little longer, so that a second one (a retransmission reported again)
// would show, and returns them all.
func kernelFlowsOf(log *recorder, proto string, client netip.AddrPort, d time.Duration) []plane.Flow {
	match := func(f plane.Flow) bool { return f.Protocol == proto && f.Client == client }
	deadline := time.Now().Add(d)
	for len(log.flows(match)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return log.flows(match)
}

// checkKernelFlow checks that exactly one flow was recorded for the
// request's client, that it is the kernel's with the given outcome, and
// that Send's Reply.Flow is that flow.
func checkKernelFlow(t *testing.T, log *recorder, proto string, rep plane.Reply, entry string, frontend netip.AddrPort,
	service string, result plane.FlowResult, reason plane.FlowReason) {
	t.Helper()
	if !rep.Local.IsValid() {
		t.Fatalf("Send did not say its source address: %+v", rep)
	}
	fs := kernelFlowsOf(log, proto, rep.Local, 2*time.Second)
	if len(fs) != 1 {
		t.Fatalf("%d flows for %s %s, want exactly 1: %+v", len(fs), proto, rep.Local, fs)
	}
	f := fs[0]
	if !f.Kernel || f.Result != result || f.Reason != reason || f.Service != service || f.EntryNode != entry ||
		f.Client != rep.Local || f.Frontend != frontend || f.Pod != "" {
		t.Errorf("flow %+v, want the kernel's %s (%s) of %s at %s %s from %s", f, result, reason, service, entry, frontend, rep.Local)
	}
	if rep.Flow == nil || *rep.Flow != f {
		t.Errorf("Reply.Flow = %+v, want the kernel's flow %+v", rep.Flow, f)
	}
}

// TestKernelFlows: the attempts a node's kernel answers itself, the three
// a student hits, are flow events with the reason, and the client sees
// exactly what it saw before (refused at once; a Local drop times out).
func TestKernelFlows(t *testing.T) {
	c, log := newCluster(t, 2, plane.ProxyRandom)
	if !c.kernelFlows {
		t.Fatalf("the cluster does not observe its nodes' kernels: %+v", log.all())
	}
	web := startPod(t, c, log, 2, 10, agnhost("web-2"), true)
	caller := startPod(t, c, log, 1, 10, agnhost("caller-1"), true)
	ng := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "frontend-pod", Namespace: "default", Labels: map[string]string{"app": "frontend"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}
	nginx := startPod(t, c, log, 2, 20, ng, true)
	c.SyncServices([]plane.ServicePort{
		// A selector that matches no pod: no endpoints.
		{Service: "default/empty", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30090, ExternalTrafficPolicy: "Cluster"},
		{Service: "default/empty", PortName: "udp", Protocol: "UDP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 81, NodePort: 30091, ExternalTrafficPolicy: "Cluster"},
		// The docs' frontend-service: targetPort 8080, in front of nginx
		// (which listens on 80).
		{Service: "default/frontend-service", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.12"), Port: 80, NodePort: 30080,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, nginx)},
		// Local, with its only endpoint on node-2.
		{Service: "default/local", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.13"), Port: 80, NodePort: 30085,
			ExternalTrafficPolicy: "Local", Endpoints: endpoints(8080, web)},
	})

	t.Run("no endpoints: refused, flow says no endpoints", func(t *testing.T) {
		start := time.Now()
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30090), Message: "/hostname"})
		if rep.Result != plane.FlowRefused || !errors.Is(rep.Err, syscall.ECONNREFUSED) {
			t.Errorf("TCP to a Service without endpoints: %s (%v), want connection refused", rep.Result, rep.Err)
		}
		checkKernelFlow(t, log, "TCP", rep, "node-1", nodeAddr(1, 30090), "default/empty", plane.FlowRefused, plane.ReasonNoEndpoints)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("refused request and its flow took %v", d)
		}

		rep = send(t, c, plane.Request{From: "client", Protocol: "UDP", Target: nodeAddr(2, 30091), Message: "hostname"})
		if rep.Result != plane.FlowRefused {
			t.Errorf("UDP to a Service without endpoints: %s (%v), want refused (ICMP port unreachable)", rep.Result, rep.Err)
		}
		checkKernelFlow(t, log, "UDP", rep, "node-2", nodeAddr(2, 30091), "default/empty", plane.FlowRefused, plane.ReasonNoEndpoints)

		// From a pod to the ClusterIP: its own node's kernel refuses.
		rep = send(t, c, plane.Request{From: caller.name, Protocol: "TCP", Target: netip.MustParseAddrPort("10.96.0.11:80"), Message: "/hostname"})
		if rep.Result != plane.FlowRefused {
			t.Errorf("TCP from a pod to a ClusterIP without endpoints: %s (%v), want refused", rep.Result, rep.Err)
		}
		checkKernelFlow(t, log, "TCP", rep, "node-1", netip.MustParseAddrPort("10.96.0.11:80"), "default/empty", plane.FlowRefused, plane.ReasonNoEndpoints)
	})

	t.Run("nginx behind targetPort 8080: refused, flow says nothing listens", func(t *testing.T) {
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30080), Message: "/"})
		if rep.Result != plane.FlowRefused || !errors.Is(rep.Err, syscall.ECONNREFUSED) {
			t.Errorf("frontend-service: %s %q (%v), want connection refused", rep.Result, rep.Body, rep.Err)
		}
		checkKernelFlow(t, log, "TCP", rep, "node-1", nodeAddr(1, 30080), "default/frontend-service", plane.FlowRefused, plane.ReasonNoListener)
	})

	t.Run("Local without a local endpoint: the client times out, one flow says dropped", func(t *testing.T) {
		// 2.5 s: the SYN and its retransmission after 1 s (and nothing
		// answers either).
		start := time.Now()
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30085), Message: "/hostname", Timeout: 2500 * time.Millisecond})
		if rep.Result != plane.FlowTimedOut {
			t.Errorf("Local nodePort on node-1 (no local endpoint): %s %q (%v), want timed out", rep.Result, rep.Body, rep.Err)
		}
		if d := time.Since(start); d < 2*time.Second || d > 5*time.Second {
			t.Errorf("the dropped request returned after %v, want its 2.5 s timeout", d)
		}
		checkKernelFlow(t, log, "TCP", rep, "node-1", nodeAddr(1, 30085), "default/local", plane.FlowDropped, plane.ReasonLocalPolicy)

		// A pod on node-1 is proxied to the endpoint anyway: the proxy's
		// flow, never a kernel one.
		rep = send(t, c, plane.Request{From: caller.name, Protocol: "TCP", Target: nodeAddr(1, 30085), Message: "/hostname"})
		if rep.Result != plane.FlowOK || rep.Body != "web-2" {
			t.Fatalf("pod to Local nodePort: %s %q (%v)", rep.Result, rep.Body, rep.Err)
		}
		fs := kernelFlowsOf(log, "TCP", rep.Local, 2*time.Second)
		if len(fs) != 1 || fs[0].Kernel || fs[0].Result != plane.FlowOK {
			t.Errorf("pod to Local nodePort: flows %+v, want the proxy's one", fs)
		}
	})

	t.Run("proxied traffic makes no kernel flow", func(t *testing.T) {
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(2, 30085), Message: "/hostname"})
		if rep.Result != plane.FlowOK {
			t.Fatalf("Local nodePort on node-2: %s (%v)", rep.Result, rep.Err)
		}
		if rep.Flow == nil || rep.Flow.Kernel {
			t.Errorf("Reply.Flow %+v, want the proxy's", rep.Flow)
		}
		if fs := log.flows(func(f plane.Flow) bool {
			return f.Kernel && f.Service != "default/empty" && f.Service != "default/frontend-service" && f.Service != "default/local"
		}); len(fs) != 0 {
			t.Errorf("kernel flows of other services: %+v", fs)
		}
	})

	t.Run("endpoints appear: the frontend is proxied and no longer watched", func(t *testing.T) {
		c.SyncServices([]plane.ServicePort{{Service: "default/empty", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80,
			NodePort: 30090, ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, web)}})
		for i := range 3 {
			rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30090), Message: "/hostname"})
			if rep.Result != plane.FlowOK || rep.Flow == nil || rep.Flow.Kernel {
				t.Errorf("try %d: %s (%v), flow %+v, want ok through the proxy", i, rep.Result, rep.Err, rep.Flow)
			}
		}
		for _, n := range c.order {
			n.proxy.syncMu.Lock()
			_, watched := n.proxy.watching[frontKey{"TCP", netip.MustParseAddrPort("0.0.0.0:30090")}]
			n.proxy.syncMu.Unlock()
			if watched {
				t.Errorf("%s still watches 0.0.0.0:30090/TCP, which it proxies", n.spec.Name)
			}
		}
	})
}

// TestKernelFlowsWithoutObserver: a cluster whose nodes cannot observe
// warns once and goes on; clients see the same.
func TestKernelFlowsWithoutObserver(t *testing.T) {
	saved := observeHost
	observeHost = func(ctx context.Context, h netsim.Host) (netsim.Observer, error) {
		return nil, fmt.Errorf("observe in host %q: %w", h.Name(), netsim.ErrNotSupported)
	}
	t.Cleanup(func() { observeHost = saved })
	c, log := newCluster(t, 2, plane.ProxyRandom)
	observeHost = saved
	warnings := 0
	for _, r := range log.all() {
		if r.Kind == recWarning && strings.Contains(r.Message, "cannot observe") {
			warnings++
		}
	}
	if warnings != 1 || c.kernelFlows {
		t.Errorf("%d warnings, kernelFlows %v; want one warning and no kernel flows: %+v", warnings, c.kernelFlows, log.all())
	}
	c.SyncServices([]plane.ServicePort{{Service: "default/empty", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30090}})
	start := time.Now()
	rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30090), Message: "/hostname"})
	if rep.Result != plane.FlowRefused || rep.Flow != nil || time.Since(start) > time.Second {
		t.Errorf("without observers: %s (%v), flow %+v after %v; want refused at once, no flow", rep.Result, rep.Err, rep.Flow, time.Since(start))
	}
}
