//go:build linux

package nodes

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// TestDataPlane checks the plane.DataPlane side of a Cluster on one
// 3-node cluster: typed errors, Reply.Flow, listener reports, the app and
// link faults and the reasons flows give, impairments, StopPod.
func TestDataPlane(t *testing.T) {
	c, log := newCluster(t, 3, plane.ProxyRandom)
	dp1 := startPod(t, c, log, 1, 10, agnhost("dp-1"), true)
	dp3 := startPod(t, c, log, 3, 10, agnhost("dp-3"), true)
	svc := func(name string, proto string, cip string, port, nodePort uint16, targetPort uint16, pods ...testPod) plane.ServicePort {
		return plane.ServicePort{Service: "default/" + name, Protocol: proto, ClusterIP: netip.MustParseAddr(cip), Port: port,
			NodePort: nodePort, ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(targetPort, pods...)}
	}
	ports := []plane.ServicePort{
		svc("one", "TCP", "10.96.0.10", 80, 30080, 8080, dp1),
		svc("one", "UDP", "10.96.0.10", 81, 30081, 8081, dp1),
		svc("three", "TCP", "10.96.0.11", 80, 30082, 8080, dp3),
		svc("three", "UDP", "10.96.0.11", 81, 30083, 8081, dp3),
	}
	ports[1].PortName, ports[3].PortName = "udp", "udp"
	c.SyncServices(ports)

	t.Run("unknown names are *plane.NotFoundError", func(t *testing.T) {
		ip := podIP(1, 99)
		for _, tc := range []struct {
			kind, name string
			err        error
		}{
			{"node", "node-9", c.SetNodeLink("node-9", false)},
			{"node", "node-9", c.SetImpairment("node-9", plane.Impairment{Delay: time.Millisecond})},
			{"node", "node-9", c.StartPod(context.Background(), "node-9", agnhost("x"), ip)},
			{"pod", "nope", c.SetPodUnready("nope", true)},
			{"pod", "nope", c.SetAppRunning("nope", false)},
			{"host", "nope", func() error {
				_, err := c.Send(context.Background(), plane.Request{From: "nope", Target: nodeAddr(1, 30080)})
				return err
			}()},
		} {
			var nf *plane.NotFoundError
			if !errors.As(tc.err, &nf) || nf.Kind != tc.kind || nf.Name != tc.name || nf.Lab != c.Topology().Lab {
				t.Errorf("error %v (%T), want a *plane.NotFoundError for %s %q", tc.err, tc.err, tc.kind, tc.name)
			}
		}
		// StopPod has no error: it warns, and reports the pod stopped.
		c.StopPod("nope", 30*time.Second)
		log.wait(t, time.Second, "PodStopped nope", func(r record) bool { return r.Kind == recPodStopped && r.Pod == "nope" })
		if !log.has(func(r record) bool { return r.Kind == recWarning && r.Pod == "nope" }) {
			t.Errorf("StopPod of an unknown pod: no warning")
		}
	})

	t.Run("each node reports what it listens on", func(t *testing.T) {
		want := []plane.Listener{
			{Protocol: "TCP", Addr: netip.MustParseAddrPort("0.0.0.0:30080"), Service: "default/one", NodePort: true},
			{Protocol: "TCP", Addr: netip.MustParseAddrPort("0.0.0.0:30082"), Service: "default/three", NodePort: true},
			{Protocol: "TCP", Addr: netip.MustParseAddrPort("10.96.0.10:80"), Service: "default/one"},
			{Protocol: "TCP", Addr: netip.MustParseAddrPort("10.96.0.11:80"), Service: "default/three"},
			{Protocol: "UDP", Addr: netip.MustParseAddrPort("0.0.0.0:30081"), Service: "default/one", NodePort: true},
			{Protocol: "UDP", Addr: netip.MustParseAddrPort("0.0.0.0:30083"), Service: "default/three", NodePort: true},
			{Protocol: "UDP", Addr: netip.MustParseAddrPort("10.96.0.10:81"), Service: "default/one"},
			{Protocol: "UDP", Addr: netip.MustParseAddrPort("10.96.0.11:81"), Service: "default/three"},
		}
		for _, n := range []string{"node-1", "node-2", "node-3"} {
			if got := lastListening(log, n); !slices.Equal(got, want) {
				t.Errorf("%s listens on %+v, want %+v", n, got, want)
			}
		}
		// Without endpoints "three" is closed: every node reports the
		// smaller set, and only then.
		before := len(log.all())
		less := slices.Clone(ports)
		less[2].Endpoints, less[3].Endpoints = nil, nil
		c.SyncServices(less)
		c.SyncServices(less) // unchanged: no report
		n := 0
		for _, r := range log.all()[before:] {
			if r.Kind == recListening {
				n++
				if len(r.Listeners) != 4 || slices.ContainsFunc(r.Listeners, func(l plane.Listener) bool { return l.Service == "default/three" }) {
					t.Errorf("%s after three lost its endpoints: %+v", r.Node, r.Listeners)
				}
			}
		}
		if n != 3 {
			t.Errorf("%d Listening reports after one change on 3 nodes, want 3", n)
		}
		c.SyncServices(ports)
	})

	t.Run("Reply.Flow is the flow the request made", func(t *testing.T) {
		for _, r := range []plane.Request{
			{From: "client", Protocol: "TCP", Target: nodeAddr(2, 30080), Message: "/hostname"},
			{From: "client", Protocol: "UDP", Target: nodeAddr(2, 30081), Message: "hostname"},
		} {
			rep := send(t, c, r)
			f := rep.Flow
			if rep.Result != plane.FlowOK || rep.Body != "dp-1" || f == nil {
				t.Fatalf("%s via node-2: %s %q %v, flow %+v", r.Protocol, rep.Result, rep.Body, rep.Err, f)
			}
			if !rep.Local.IsValid() || rep.Local.Addr() != netip.MustParseAddr("172.18.0.100") {
				t.Errorf("%s: Reply.Local = %v, want the client's address and port", r.Protocol, rep.Local)
			}
			if f.Protocol != r.Protocol || f.Client != rep.Local || f.EntryNode != "node-2" || f.Frontend != r.Target ||
				f.Service != "default/one" || f.Pod != "dp-1" || f.PodNode != "node-1" || f.Backend.Addr() != dp1.ip ||
				f.Result != plane.FlowOK || f.Reason != plane.ReasonNone || f.Kernel {
				t.Errorf("%s: flow %+v does not describe the request", r.Protocol, f)
			}
			if f.SourceSeen != netip.MustParseAddr("172.18.0.3") {
				t.Errorf("%s: SourceSeen %v, want node-2's address (Cluster policy masquerades)", r.Protocol, f.SourceSeen)
			}
			if f.BytesIn <= 0 || f.BytesOut <= 0 || f.Start.IsZero() || f.Duration <= 0 {
				t.Errorf("%s: flow %+v lacks bytes or times", r.Protocol, f)
			}
			if r.Protocol == "UDP" && (f.BytesIn != int64(len(r.Message)) || f.BytesOut != int64(len(rep.Body))) {
				t.Errorf("UDP flow counted %d B in, %d B out; the exchange was %d and %d", f.BytesIn, f.BytesOut, len(r.Message), len(rep.Body))
			}
		}
		// A node calling a ClusterIP shows its own address, not the
		// ClusterIP.
		for _, proto := range []string{"TCP", "UDP"} {
			r := plane.Request{From: "node-2", Protocol: proto, Target: netip.MustParseAddrPort("10.96.0.10:80"), Message: "/hostname"}
			if proto == "UDP" {
				r.Target, r.Message = netip.MustParseAddrPort("10.96.0.10:81"), "hostname"
			}
			rep := send(t, c, r)
			if rep.Result != plane.FlowOK || rep.Flow == nil || rep.Flow.Client != rep.Local || rep.Local.Addr() != netip.MustParseAddr("172.18.0.3") {
				t.Errorf("%s node-2 → ClusterIP: %s %v, local %v, flow %+v; want node-2's own address as the client", proto, rep.Result, rep.Err, rep.Local, rep.Flow)
			}
		}
		// A request no proxy saw has no flow, and costs no wait.
		start := time.Now()
		rep := send(t, c, plane.Request{From: "node-2", Protocol: "TCP", Target: netip.AddrPortFrom(dp1.ip, 8080), Message: "/hostname"})
		if rep.Result != plane.FlowOK || rep.Flow != nil {
			t.Errorf("node-2 → pod IP: %s, flow %+v; want ok and no flow", rep.Result, rep.Flow)
		}
		rep = send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30099), Message: "/"})
		if rep.Result != plane.FlowRefused || rep.Flow != nil {
			t.Errorf("client → a port nothing serves: %s, flow %+v; want refused and no flow", rep.Result, rep.Flow)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("two requests without a proxy flow took %v", d)
		}
	})

	t.Run("SetAppRunning stops and starts an app", func(t *testing.T) {
		probed := startPod(t, c, log, 2, 20, withReadiness(agnhost("dp-probed"), httpProbe("/readyz", 8080)), true)
		for _, p := range []testPod{dp1, probed} {
			if err := c.SetAppRunning(p.name, false); err != nil {
				t.Fatal(err)
			}
			log.wait(t, 5*time.Second, "PodReady "+p.name+" false", ready(p.name, false))
		}
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(2, 30080), Message: "/hostname"})
		if rep.Result != plane.FlowReset || rep.Flow == nil || rep.Flow.Reason != plane.ReasonAppStopped || rep.Flow.Result != plane.FlowReset {
			t.Errorf("TCP to a stopped app: %s %v, flow %+v; want reset, %q", rep.Result, rep.Err, rep.Flow, plane.ReasonAppStopped)
		}
		rep = send(t, c, plane.Request{From: "client", Protocol: "UDP", Target: nodeAddr(2, 30081), Message: "hostname", Timeout: time.Second})
		if rep.Result == plane.FlowOK || rep.Flow == nil || rep.Flow.Reason != plane.ReasonAppStopped || rep.Flow.Result != plane.FlowRefused {
			t.Errorf("UDP to a stopped app: %s %v, flow %+v; want a failure and a refused flow, %q", rep.Result, rep.Err, rep.Flow, plane.ReasonAppStopped)
		}
		restarted := time.Now()
		for _, p := range []testPod{dp1, probed} {
			if err := c.SetAppRunning(p.name, true); err != nil {
				t.Fatal(err)
			}
			log.wait(t, 5*time.Second, "PodReady "+p.name+" true again", func(r record) bool {
				return ready(p.name, true)(r) && r.Time.After(restarted)
			})
		}
		rep = send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(2, 30080), Message: "/hostname"})
		if rep.Result != plane.FlowOK || rep.Body != "dp-1" {
			t.Errorf("TCP after the app runs again: %s %q %v", rep.Result, rep.Body, rep.Err)
		}
		if rep := send(t, c, plane.Request{From: "node-2", Protocol: "TCP", Target: netip.AddrPortFrom(probed.ip, 8080), Message: "/hostname"}); rep.Body != "dp-probed" {
			t.Errorf("dp-probed after its app runs again: %s %q %v", rep.Result, rep.Body, rep.Err)
		}
		stopPod(t, c, log, "dp-probed")
	})

	t.Run("a flow to a pod whose node's link is down says so", func(t *testing.T) {
		if err := c.SetNodeLink("node-3", false); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.SetNodeLink("node-3", true); err != nil {
				t.Fatal(err)
			}
		}()
		start := time.Now()
		linkDown := func(f plane.Flow, node string) bool {
			return f.Reason == plane.ReasonNodeLinkDown && f.Detail == node+"'s link is down" && f.Start.After(start)
		}
		// UDP: no reply within the bounded wait; the flow says why.
		rep := send(t, c, plane.Request{From: "client", Protocol: "UDP", Target: nodeAddr(1, 30083), Message: "hostname", Timeout: 3 * time.Second})
		if rep.Result != plane.FlowTimedOut || rep.Flow == nil || !linkDown(*rep.Flow, "node-3") || rep.Flow.Pod != "dp-3" {
			t.Errorf("UDP to dp-3 with node-3's link down: %s, flow %+v", rep.Result, rep.Flow)
		}
		// TCP: node-1's proxy accepted the client; its dial to dp-3 fails
		// at once (the UDP attempt left node-3's neighbour entry failed:
		// "no route to host") or times out later, and the client sees a
		// reset or times out. Either way the flow says why.
		rep = send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30082), Message: "/hostname", Timeout: 500 * time.Millisecond})
		if rep.Result != plane.FlowTimedOut && rep.Result != plane.FlowReset {
			t.Errorf("TCP to dp-3 with node-3's link down: %s %v, want reset or timed out", rep.Result, rep.Err)
		}
		if rep.Result == plane.FlowReset && (rep.Flow == nil || !linkDown(*rep.Flow, "node-3")) {
			t.Errorf("TCP to dp-3 with node-3's link down: reset, flow %+v", rep.Flow)
		}
		log.wait(t, backendDialTimeout+3*time.Second, "a TCP flow to dp-3 saying node-3's link is down", func(r record) bool {
			return r.Kind == recFlow && r.Flow.Protocol == "TCP" && r.Flow.Pod == "dp-3" && r.Flow.EntryNode == "node-1" && linkDown(r.Flow, "node-3")
		})
		// The entry node's own link: a pod on node-3 calls a ClusterIP
		// whose only pod is on node-1.
		rep = send(t, c, plane.Request{From: "dp-3", Protocol: "TCP", Target: netip.MustParseAddrPort("10.96.0.10:80"), Message: "/hostname", Timeout: time.Second})
		if rep.Result == plane.FlowOK || rep.Flow == nil || !linkDown(*rep.Flow, "node-3") || rep.Flow.EntryNode != "node-3" {
			t.Errorf("dp-3 → ClusterIP with node-3's link down: %s %v, flow %+v", rep.Result, rep.Err, rep.Flow)
		}
	})

	t.Run("SetImpairment", func(t *testing.T) {
		err := c.SetImpairment("node-1", plane.Impairment{Delay: 20 * time.Millisecond, LossPercent: 1})
		if err != nil {
			if !errors.Is(err, plane.ErrNotSupported) || !errors.Is(err, netsim.ErrNotSupported) || !strings.Contains(err.Error(), "netem qdisc unavailable") {
				t.Fatalf("SetImpairment: %v; want an error wrapping plane.ErrNotSupported and netsim's, saying netem qdisc unavailable", err)
			}
			t.Logf("this kernel: %v", err)
		}
		if err := c.SetImpairment("node-1", plane.Impairment{RateBitsPerSec: 100_000_000}); err != nil && !errors.Is(err, plane.ErrNotSupported) {
			t.Errorf("a rate limit alone: %v", err)
		}
		if err := c.SetImpairment("node-1", plane.Impairment{}); err != nil {
			t.Errorf("healing the link: %v", err)
		}
		if rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30080), Message: "/hostname"}); rep.Result != plane.FlowOK {
			t.Errorf("after healing node-1's link: %s %v", rep.Result, rep.Err)
		}
	})

	t.Run("StopPod returns at once and reports PodStopped", func(t *testing.T) {
		p := agnhost("dp-slow", "--delay-shutdown=10") // 0.5 s at ProbeScale 0.05
		startPod(t, c, log, 2, 30, p, true)
		start := time.Now()
		c.StopPod("dp-slow", 30*time.Second)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("StopPod blocked for %v", d)
		}
		if _, err := c.Ready("dp-slow"); err == nil {
			t.Errorf("a stopping pod is still found")
		}
		// The same name (and IP) starts again once the old one is gone.
		startPod(t, c, log, 2, 30, agnhost("dp-slow"), true)
		r := log.wait(t, 5*time.Second, "PodStopped dp-slow", func(r record) bool { return r.Kind == recPodStopped && r.Pod == "dp-slow" })
		if d := r.Time.Sub(start); d < 400*time.Millisecond {
			t.Errorf("PodStopped after %v, before its --delay-shutdown (0.5s) passed", d)
		}
		stopPod(t, c, log, "dp-slow")
	})
}

// lastListening is the last listener set node reported.
func lastListening(log *recorder, node string) []plane.Listener {
	var ls []plane.Listener
	for _, r := range log.all() {
		if r.Kind == recListening && r.Node == node {
			ls = r.Listeners
		}
	}
	return ls
}
