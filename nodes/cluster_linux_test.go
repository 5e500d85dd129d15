//go:build linux

package nodes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

var clusterIP = netip.MustParseAddr("10.96.0.10")

// TestCluster runs the NodePort checks of issue 3 on one 3-node cluster
// with real namespaces: a 3-replica agnhost set, one pod per node.
func TestCluster(t *testing.T) {
	c, log := newCluster(t, 3, plane.ProxyRandom)
	var web []testPod
	for i := 1; i <= 3; i++ {
		web = append(web, startPod(t, c, log, i, 10, agnhost(fmt.Sprintf("web-%d", i)), true))
	}
	names := []string{"web-1", "web-2", "web-3"}
	webTCP := plane.ServicePort{Service: "default/web", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, web...)}
	webUDP := plane.ServicePort{Service: "default/web", PortName: "udp", Protocol: "UDP", ClusterIP: clusterIP, Port: 81, NodePort: 30081,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8081, web...)}
	base := []plane.ServicePort{webTCP, webUDP}
	c.SyncServices(base)

	t.Run("every node reaches every pod over TCP and UDP", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			for _, r := range []plane.Request{
				{From: "client", Protocol: "TCP", Target: nodeAddr(i, 30080), Message: "/hostname"},
				{From: "client", Protocol: "UDP", Target: nodeAddr(i, 30081), Message: "hostname"},
			} {
				seen := fanOut(t, c, r, 40, 3)
				for body := range seen {
					if !slices.Contains(names, body) {
						t.Errorf("%s %s answered %q, not one of the pods", r.Protocol, r.Target, body)
					}
				}
				if len(seen) != 3 {
					t.Errorf("%s %s: 40 tries reached only %v", r.Protocol, r.Target, seen)
				}
			}
		}
		ev := log.wait(t, 2*time.Second, "a TCP flow via node-1", func(e record) bool {
			return e.Kind == recFlow && e.Flow.Protocol == "TCP" && e.Flow.EntryNode == "node-1" && e.Flow.Result == plane.FlowOK
		})
		f := ev.Flow
		if f.Client.Addr() != netip.MustParseAddr("172.18.0.100") || f.Frontend != nodeAddr(1, 30080) ||
			!slices.Contains(names, f.Pod) || f.BytesIn == 0 || f.BytesOut == 0 || f.Service != "default/web" {
			t.Errorf("flow event does not describe the connection: %+v", f)
		}
	})

	t.Run("client cannot reach a pod IP, a pod reaches the ClusterIP", func(t *testing.T) {
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: netip.AddrPortFrom(web[0].ip, 8080), Message: "/hostname", Timeout: time.Second})
		if rep.Result == plane.FlowOK {
			t.Errorf("client reached pod IP %s directly: %q", web[0].ip, rep.Body)
		}
		for _, r := range []plane.Request{
			{From: "web-1", Protocol: "TCP", Target: netip.AddrPortFrom(clusterIP, 80), Message: "/hostname"},
			{From: "web-2", Protocol: "UDP", Target: netip.AddrPortFrom(clusterIP, 81), Message: "hostname"},
			{From: "node-3", Protocol: "TCP", Target: netip.AddrPortFrom(clusterIP, 80), Message: "/hostname"},
		} {
			rep := send(t, c, r)
			if rep.Result != plane.FlowOK || !slices.Contains(names, rep.Body) {
				t.Errorf("%s from %s to %s: %s %q %v", r.Protocol, r.From, r.Target, rep.Result, rep.Body, rep.Err)
			}
		}
		// A pod sending UDP to its own node's IP gets the answer from that IP.
		rep = send(t, c, plane.Request{From: "web-1", Protocol: "UDP", Target: nodeAddr(1, 30081), Message: "hostname"})
		if rep.Result != plane.FlowOK || !slices.Contains(names, rep.Body) {
			t.Errorf("UDP from web-1 to its node's nodePort: %s %q %v", rep.Result, rep.Body, rep.Err)
		}
	})

	t.Run("no endpoints is a fast connection refused", func(t *testing.T) {
		c.SyncServices(append(slices.Clone(base), plane.ServicePort{Service: "default/empty", Protocol: "TCP",
			ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30090, ExternalTrafficPolicy: "Cluster"}))
		start := time.Now()
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(2, 30090), Message: "/hostname"})
		if rep.Result != plane.FlowRefused || time.Since(start) > time.Second {
			t.Errorf("no endpoints: got %s (%v) after %v, want refused at once", rep.Result, rep.Err, time.Since(start))
		}
		rep = send(t, c, plane.Request{From: "client", Protocol: "UDP", Target: nodeAddr(2, 30090), Message: "hostname"})
		if rep.Result != plane.FlowRefused {
			t.Errorf("UDP to a port without endpoints: %s (%v), want refused (ICMP port unreachable)", rep.Result, rep.Err)
		}
	})

	t.Run("Cluster policy: the pod sees a node address", func(t *testing.T) {
		c.SyncServices(base)
		for i := 0; i < 6; i++ {
			rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30080), Message: "/clientip"})
			ap, err := netip.ParseAddrPort(rep.Body)
			if rep.Result != plane.FlowOK || err != nil {
				t.Fatalf("/clientip: %s %q %v", rep.Result, rep.Body, rep.Err)
			}
			ip := ap.Addr()
			if ip != netip.MustParseAddr("172.18.0.2") && ip != netip.MustParseAddr("10.244.1.1") {
				t.Errorf("through node-1 with Cluster policy the pod saw %s, want node-1's address", ip)
			}
		}
	})

	t.Run("Local policy: node without endpoint drops, the pod sees the client", func(t *testing.T) {
		local := plane.ServicePort{Service: "default/local", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.12"), Port: 80, NodePort: 30085,
			ExternalTrafficPolicy: "Local", Endpoints: endpoints(8080, web[1])}
		localUDP := local
		localUDP.Protocol, localUDP.NodePort, localUDP.Port, localUDP.PortName = "UDP", 30086, 81, "udp"
		localUDP.Endpoints = endpoints(8081, web[1])
		c.SyncServices(append(slices.Clone(base), local, localUDP))
		for _, proto := range []string{"TCP", "UDP"} {
			port, msg := uint16(30085), "/clientip"
			if proto == "UDP" {
				port, msg = 30086, "clientip"
			}
			start := time.Now()
			rep := send(t, c, plane.Request{From: "client", Protocol: proto, Target: nodeAddr(1, port), Message: msg, Timeout: time.Second})
			if rep.Result != plane.FlowTimedOut {
				t.Errorf("%s via node-1 (no local endpoint): %s %q %v after %v, want timed out", proto, rep.Result, rep.Body, rep.Err, time.Since(start))
			}
			rep = send(t, c, plane.Request{From: "client", Protocol: proto, Target: nodeAddr(2, port), Message: msg})
			if rep.Result != plane.FlowOK || !strings.HasPrefix(rep.Body, "172.18.0.100:") {
				t.Errorf("%s via node-2: %s %q %v, want the pod to see 172.18.0.100", proto, rep.Result, rep.Body, rep.Err)
			}
		}
		// Pods and the node itself still get through node-1 (§5.6).
		rep := send(t, c, plane.Request{From: "web-1", Protocol: "TCP", Target: nodeAddr(1, 30085), Message: "/hostname"})
		if rep.Result != plane.FlowOK || rep.Body != "web-2" {
			t.Errorf("from pod web-1 via its node's Local nodePort: %s %q %v, want web-2", rep.Result, rep.Body, rep.Err)
		}
		// So does a pod on another node: it reaches node-1 over eth0, like
		// the client, but pod traffic goes to cluster-wide endpoints
		// (§5.3 4(a)), and the blackhole must not drop it.
		for _, proto := range []string{"TCP", "UDP"} {
			port, msg := uint16(30085), "/hostname"
			if proto == "UDP" {
				port, msg = 30086, "hostname"
			}
			rep = send(t, c, plane.Request{From: "web-3", Protocol: proto, Target: nodeAddr(1, port), Message: msg, Timeout: 2 * time.Second})
			if rep.Result != plane.FlowOK || rep.Body != "web-2" {
				t.Errorf("%s from pod web-3 (node-3) via node-1's Local nodePort: %s %q %v, want web-2", proto, rep.Result, rep.Body, rep.Err)
			}
		}
		rep = send(t, c, plane.Request{From: "node-1", Protocol: "TCP", Target: nodeAddr(1, 30085), Message: "/hostname"})
		if rep.Result != plane.FlowOK || rep.Body != "web-2" {
			t.Errorf("from node-1 itself: %s %q %v, want web-2", rep.Result, rep.Body, rep.Err)
		}
		// The pod keeps serving other traffic while its replies to the
		// client are taken by node-2's proxy: node-1's Cluster-policy hop
		// to web-2 still works.
		seen := fanOut(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30080), Message: "/hostname"}, 40, 3)
		if seen["web-2"] == 0 {
			t.Errorf("Cluster-policy traffic via node-1 never reached web-2: %v", seen)
		}
		c.SyncServices(base)
	})

	t.Run("ClientIP affinity sticks, None spreads", func(t *testing.T) {
		aff := webTCP
		aff.Service, aff.NodePort, aff.Port, aff.ClusterIP = "default/sticky", 30087, 80, netip.MustParseAddr("10.96.0.13")
		aff.AffinityTimeout = 10800 * time.Second
		c.SyncServices(append(slices.Clone(base), aff))
		seen := map[string]int{}
		for i := 0; i < 15; i++ {
			rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(3, 30087), Message: "/hostname"})
			if rep.Result != plane.FlowOK {
				t.Fatalf("affinity request %d: %s %v", i, rep.Result, rep.Err)
			}
			seen[rep.Body]++
		}
		if len(seen) != 1 {
			t.Errorf("ClientIP affinity: 15 requests hit %v, want one pod", seen)
		}
		none := fanOut(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(3, 30080), Message: "/hostname"}, 15, 3)
		if len(none) < 2 {
			t.Errorf("sessionAffinity None: 15 requests hit only %v", none)
		}
	})

	t.Run("nginx behind targetPort 8080 refuses, with a notice", func(t *testing.T) {
		ng := &corev1.Pod{}
		ng.Name = "nginx-1"
		ng.Spec.Containers = []corev1.Container{{Name: "nginx", Image: "nginx:1.27", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}
		p := startPod(t, c, log, 3, 20, ng, true)
		log.wait(t, 2*time.Second, "the nginx port notice", func(e record) bool {
			return e.Kind == recPodNotice && e.Pod == "nginx-1" && strings.Contains(e.Message, "nginx listens on 80, not 8080")
		})
		svc := plane.ServicePort{Service: "default/nginx", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.14"), Port: 80, NodePort: 30088,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, p)}
		right := svc
		right.Service, right.NodePort, right.ClusterIP = "default/nginx-80", 30089, netip.MustParseAddr("10.96.0.15")
		right.Endpoints = endpoints(80, p)
		// nginx-1 and web-1 behind 8080: web-1 (netexec) listens there,
		// nginx-1 does not.
		mixed := svc
		mixed.Service, mixed.NodePort, mixed.ClusterIP = "default/mixed", 30093, netip.MustParseAddr("10.96.0.18")
		mixed.Endpoints = endpoints(8080, p, web[0])
		c.SyncServices(append(slices.Clone(base), svc, right, mixed))

		// What curl sees: the SYN is refused at once (exit 7), as with
		// kube-proxy's DNAT to a closed port, not accepted and reset.
		for from, target := range map[string]netip.AddrPort{"client": nodeAddr(1, 30088), "node-2": netip.AddrPortFrom(svc.ClusterIP, 80)} {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			conn, err := c.Network().Host(from).Dial(ctx, "tcp", target.String())
			cancel()
			if err == nil {
				conn.Close()
			}
			if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
				t.Errorf("connect from %s to %s (nginx behind targetPort 8080): %v after %v, want connection refused at once", from, target, err, time.Since(start))
			}
		}
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30088), Message: "/"})
		if rep.Result != plane.FlowRefused {
			t.Errorf("nginx behind targetPort 8080: %s %q %v, want refused", rep.Result, rep.Body, rep.Err)
		}
		rep = send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30089), Message: "/"})
		if rep.Result != plane.FlowOK || rep.Header.Get("X-Pod-Name") != "nginx-1" || rep.Body != "nginx-1" {
			t.Errorf("nginx behind targetPort 80: %s %q %v %v", rep.Result, rep.Body, rep.Header, rep.Err)
		}
		// Mixed: the proxy accepted before it knew, so a connection sent
		// to nginx-1 is reset, and says so.
		seen := map[plane.FlowResult]int{}
		for i := 0; i < 40 && (seen[plane.FlowOK] == 0 || seen[plane.FlowReset] == 0); i++ {
			rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(2, 30093), Message: "/hostname"})
			seen[rep.Result]++
			if rep.Result == plane.FlowOK && rep.Body != "web-1" {
				t.Errorf("mixed service answered %q", rep.Body)
			}
		}
		if seen[plane.FlowOK] == 0 || seen[plane.FlowReset] == 0 || len(seen) != 2 {
			t.Errorf("mixed service: results %v, want ok (web-1) and reset (nginx-1)", seen)
		}
		log.wait(t, 2*time.Second, "a reset flow to nginx-1", func(e record) bool {
			return e.Kind == recFlow && e.Flow.Pod == "nginx-1" && e.Flow.Result == plane.FlowReset && e.Flow.Service == "default/mixed"
		})
		// The node's kernel refused every attempt to default/nginx: its
		// flows say so, and none is the proxy's.
		for _, f := range log.flows(func(f plane.Flow) bool { return f.Service == "default/nginx" }) {
			if !f.Kernel || f.Result != plane.FlowRefused || f.Reason != plane.ReasonNoListener {
				t.Errorf("a flow for default/nginx that is not the kernel's refusal (no listener): %+v", f)
			}
		}
		c.SyncServices(base)
		stopPod(t, c, log, "nginx-1")
	})

	t.Run("a UDP client on a fixed port moves to the new pod", func(t *testing.T) {
		a := startPod(t, c, log, 2, 30, agnhost("mover-a"), true)
		svc := plane.ServicePort{Service: "default/mover", Protocol: "UDP", ClusterIP: netip.MustParseAddr("10.96.0.16"), Port: 81, NodePort: 30091,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8081, a)}
		c.SyncServices(append(slices.Clone(base), svc))
		r := plane.Request{From: "client", Protocol: "UDP", Target: nodeAddr(1, 30091), Message: "hostname", LocalPort: 40000, Timeout: time.Second}
		if rep := send(t, c, r); rep.Body != "mover-a" {
			t.Fatalf("before the replacement: %s %q %v", rep.Result, rep.Body, rep.Err)
		}
		// mover-a keeps running but stops serving (unready, no longer an
		// endpoint): only the conntrack-style flush can move the client,
		// whose datagrams would otherwise still reach mover-a.
		if err := c.SetPodUnready("mover-a", true); err != nil {
			t.Fatal(err)
		}
		b := startPod(t, c, log, 3, 30, agnhost("mover-b"), true)
		svc.Endpoints = endpoints(8081, b)
		start := time.Now()
		c.SyncServices(append(slices.Clone(base), svc))
		var last plane.Reply
		for time.Since(start) < 10*time.Second {
			last = send(t, c, r)
			if last.Body == "mover-b" {
				break
			}
		}
		if last.Body != "mover-b" {
			t.Errorf("the UDP client on port 40000 did not move to mover-b within 10s: last %s %q %v", last.Result, last.Body, last.Err)
		}
		// mover-a's own server still answers: it was the flush.
		if rep := send(t, c, plane.Request{From: "node-2", Protocol: "UDP", Target: netip.AddrPortFrom(a.ip, 8081), Message: "hostname"}); rep.Body != "mover-a" {
			t.Errorf("mover-a itself: %s %q %v, want it still running", rep.Result, rep.Body, rep.Err)
		}
		c.SyncServices(base)
		for _, n := range []string{"mover-a", "mover-b"} {
			stopPod(t, c, log, n)
		}
	})

	t.Run("readiness", func(t *testing.T) {
		// A pod whose probe never passes (8081 is netexec's UDP port)
		// never turns ready; once the lab syncs it as not ready, the
		// proxy never picks it although its server answers.
		bad := startPod(t, c, log, 1, 40, withReadiness(agnhost("never-ready"), httpProbe("/hostname", 8081)), false)
		good := startPod(t, c, log, 2, 40, withReadiness(agnhost("probed"), corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			InitialDelaySeconds: 20, PeriodSeconds: 2, FailureThreshold: 2,
		}), false)
		started := time.Now()
		ev := log.wait(t, 5*time.Second, "PodReady probed", ready("probed", true))
		if d := ev.Time.Sub(started); d < 900*time.Millisecond {
			t.Errorf("initialDelaySeconds 20 (scaled to 1s) but ready after %v", d)
		}
		if ok, _ := c.Ready("never-ready"); ok {
			t.Errorf("never-ready is ready although its probe fails")
		}
		eps := append(endpoints(8080, good), plane.Endpoint{Pod: bad.name, Node: bad.node, Addr: netip.AddrPortFrom(bad.ip, 8080)})
		svc := plane.ServicePort{Service: "default/probed", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.17"), Port: 80, NodePort: 30092,
			ExternalTrafficPolicy: "Cluster", Endpoints: eps}
		c.SyncServices(append(slices.Clone(base), svc))
		for i := 0; i < 15; i++ {
			rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30092), Message: "/hostname"})
			if rep.Body != "probed" {
				t.Fatalf("request %d reached %q (%s), want only the ready pod", i, rep.Body, rep.Result)
			}
		}
		// The unready pod's server itself works: only readiness keeps it out.
		if rep := send(t, c, plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(bad.ip, 8080), Message: "/hostname"}); rep.Body != "never-ready" {
			t.Errorf("never-ready's own server: %s %q", rep.Result, rep.Body)
		}
		// Stopping the app makes the probe fail: unready after 2 periods.
		if err := c.SetAppRunning("probed", false); err != nil {
			t.Fatal(err)
		}
		log.wait(t, 3*time.Second, "PodUnready probed", ready("probed", false))
		// SetPodUnready forces a pod out and back.
		if err := c.SetPodUnready("web-3", true); err != nil {
			t.Fatal(err)
		}
		log.wait(t, time.Second, "PodUnready web-3", ready("web-3", false))
		if err := c.SetPodUnready("web-3", false); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Ready("web-3"); !ok {
			t.Errorf("web-3 not ready again after SetPodUnready(false)")
		}
		c.SyncServices(base)
		for _, n := range []string{"never-ready", "probed"} {
			stopPod(t, c, log, n)
		}
	})

	t.Run("node link down and up", func(t *testing.T) {
		if err := c.SetNodeLink("node-3", false); err != nil {
			t.Fatal(err)
		}
		rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(3, 30080), Message: "/hostname", Timeout: 500 * time.Millisecond})
		if rep.Result != plane.FlowTimedOut {
			t.Errorf("node-3 with its link down: %s %v, want timed out", rep.Result, rep.Err)
		}
		if err := c.SetNodeLink("node-3", true); err != nil {
			t.Fatal(err)
		}
		if rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(3, 30080), Message: "/hostname"}); rep.Result != plane.FlowOK {
			t.Errorf("node-3 with its link up again: %s %v", rep.Result, rep.Err)
		}

	})

	t.Run("a second lab runs side by side", func(t *testing.T) {
		c2, log2 := newCluster(t, 1, plane.ProxyRoundRobin)
		p := startPod(t, c2, log2, 1, 10, agnhost("web-1"), true) // same names and addresses as the first lab
		c2.SyncServices([]plane.ServicePort{{Service: "default/web", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, p)}})
		for _, cl := range []*Cluster{c, c2} {
			rep := send(t, cl, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30080), Message: "/hostname"})
			if rep.Result != plane.FlowOK || !slices.Contains(names, rep.Body) {
				t.Errorf("lab %s: %s %q %v", cl.Topology().Lab, rep.Result, rep.Body, rep.Err)
			}
		}
		if c.Network().Host("node-1").Namespace() == c2.Network().Host("node-1").Namespace() {
			t.Errorf("two labs share namespace %s", c.Network().Host("node-1").Namespace())
		}
	})
}

// TestCloseRemovesNamespaces checks that a closed lab leaves nothing in
// `ip netns list`.
func TestCloseRemovesNamespaces(t *testing.T) {
	c, log := newCluster(t, 2, "")
	startPod(t, c, log, 1, 10, agnhost("web-1"), true)
	lab := c.Topology().Lab
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Skipf("ip netns list: %v", err)
	}
	if strings.Contains(string(out), "nplab-"+lab+"-") {
		t.Errorf("after Close, ip netns list still shows the lab:\n%s", out)
	}
	// The client host object survives in memory, but its namespace is
	// gone: a request must fail, one way or the other.
	rep, err := c.Send(context.Background(), plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, 30080), Timeout: time.Second})
	if err == nil && rep.Result == plane.FlowOK {
		t.Errorf("send after Close succeeded: %q", rep.Body)
	}
	if _, err := os.Stat("/run/nplab/" + lab + ".json"); !os.IsNotExist(err) {
		t.Errorf("after Close the lab's state file is still there (stat: %v)", err)
	}
	if err := c.StartPod(context.Background(), "node-1", agnhost("late"), podIP(1, 11)); err == nil {
		t.Errorf("StartPod after Close succeeded")
	}
}

// TestNodeReusesTimeWaitPorts: the proxy's connections to pods leave
// TIME_WAIT in the node (it passes the client's FIN on first), so a node
// reuses a TIME_WAIT port towards a pod once a second has passed
// (net.ipv4.tcp_tw_reuse=1). With the kernel's default, which reuses
// only on loopback, connect walks every TIME_WAIT port of the range
// before it finds a free one: at a few thousand connections a second
// through a NodePort that walk took 65% of the CPU.
func TestNodeReusesTimeWaitPorts(t *testing.T) {
	c, log := newCluster(t, 1, "")
	pod := startPod(t, c, log, 1, 2, agnhost("web-1"), true)
	n, err := c.node("node-1")
	if err != nil {
		t.Fatal(err)
	}
	// Two ephemeral ports only, so that both are in TIME_WAIT after two
	// connections and the third must reuse one.
	if err := n.host.Sysctl("net.ipv4.ip_local_port_range", "47000 47001"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	target := netip.AddrPortFrom(pod.ip, 8080)
	for i := range 2 {
		conn, err := n.host.DialFrom(ctx, netsim.Dial{Network: "tcp", Remote: target})
		if err != nil {
			t.Fatalf("connection %d from node-1 to %s: %v", i+1, target, err)
		}
		conn.Close() // the node's FIN first: its end goes to TIME_WAIT once the pod closes too
	}
	time.Sleep(1100 * time.Millisecond)
	third, err := n.host.DialFrom(ctx, netsim.Dial{Network: "tcp", Remote: target})
	if err != nil {
		t.Fatalf("a third connection 1.1 s later, both ports in TIME_WAIT: %v; want one reused", err)
	}
	third.Close()
}
