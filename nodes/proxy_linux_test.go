//go:build linux

package nodes

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// fakeHost is a netsim.Host on loopback for unit tests without root: every
// socket is opened on 127.0.0.1 with a kernel-chosen port, and the address
// asked for is remembered so the test can find the real one.
type fakeHost struct {
	mu     sync.Mutex
	addrs  map[string]string // asked "0.0.0.0:30080/tcp4" → real "127.0.0.1:41234"
	rules  map[netsim.Rule]bool
	routes []netsim.Route
}

func newFakeHost() *fakeHost {
	return &fakeHost{addrs: map[string]string{}, rules: map[netsim.Rule]bool{}}
}

func (h *fakeHost) Name() string      { return "node-1" }
func (h *fakeHost) Namespace() string { return "fake-node-1" }

func (h *fakeHost) real(asked, network string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addrs[asked+"/"+network]
}

func (h *fakeHost) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err == nil {
		h.mu.Lock()
		h.addrs[address+"/tcp4"] = l.Addr().String()
		h.mu.Unlock()
	}
	return l, err
}

func (h *fakeHost) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", "127.0.0.1:0")
	if err == nil {
		h.mu.Lock()
		h.addrs[address+"/udp4"] = pc.LocalAddr().String()
		h.mu.Unlock()
	}
	return pc, err
}

func (h *fakeHost) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (h *fakeHost) DialFrom(ctx context.Context, d netsim.Dial) (net.Conn, error) {
	var nd net.Dialer
	if d.Local.IsValid() && !d.Transparent {
		if d.Network == "udp" {
			nd.LocalAddr = net.UDPAddrFromAddrPort(d.Local)
		} else {
			nd.LocalAddr = net.TCPAddrFromAddrPort(d.Local)
		}
	}
	return nd.DialContext(ctx, d.Network, d.Remote.String())
}

func (h *fakeHost) AddAddr(string, netip.Prefix) error { return nil }
func (h *fakeHost) DelAddr(string, netip.Prefix) error { return nil }
func (h *fakeHost) Sysctl(string, string) error        { return nil }
func (h *fakeHost) AddRoute(r netsim.Route) error {
	h.mu.Lock()
	h.routes = append(h.routes, r)
	h.mu.Unlock()
	return nil
}
func (h *fakeHost) AddRule(r netsim.Rule) error {
	h.mu.Lock()
	h.rules[r] = true
	h.mu.Unlock()
	return nil
}
func (h *fakeHost) DelRule(r netsim.Rule) error {
	h.mu.Lock()
	delete(h.rules, r)
	h.mu.Unlock()
	return nil
}

func (h *fakeHost) ruleList() []netsim.Rule {
	h.mu.Lock()
	defer h.mu.Unlock()
	var rs []netsim.Rule
	for r := range h.rules {
		rs = append(rs, r)
	}
	return rs
}

// loopbackApp starts an agnhost netexec backend on loopback and returns
// its HTTP and UDP addresses.
func loopbackApp(t *testing.T, name string) (httpAddr, udpAddr netip.AddrPort) {
	t.Helper()
	spec, _ := apps.FromContainer(corev1.Container{Name: "c", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"netexec"}})
	a, err := apps.Start(context.Background(), newFakeHost(), name, []apps.Spec{spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	for _, l := range a.Listening() {
		ap := netip.MustParseAddrPort(l.Addr.String())
		if l.Protocol == "TCP" {
			httpAddr = ap
		} else {
			udpAddr = ap
		}
	}
	return httpAddr, udpAddr
}

func newTestProxy(t testing.TB, h *fakeHost, log *recorder) *proxy {
	p := newProxy(proxyEnv{
		node: "node-1", host: h, nodeIP: netip.MustParseAddr("192.0.2.1"), podCIDR: netip.MustParsePrefix("10.244.1.0/24"),
		podCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("10.244.2.0/24")},
		isPodIP:  func(netip.Addr) bool { return false }, isNodeIP: func(netip.Addr) bool { return false },
		serviceCIDR: netip.MustParsePrefix("10.96.0.0/12"), mode: plane.ProxyRandom, ctl: log, seed: 42, noTransparent: true,
	})
	t.Cleanup(p.close)
	return p
}

func httpGet(addr, path string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestProxyTCPOnLoopback(t *testing.T) {
	aHTTP, _ := loopbackApp(t, "pod-a")
	bHTTP, _ := loopbackApp(t, "pod-b")
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	sp := plane.ServicePort{Service: "default/web", Protocol: "TCP", NodePort: 30080, ExternalTrafficPolicy: "Cluster",
		Endpoints: []plane.Endpoint{
			{Pod: "pod-a", Node: "node-1", Addr: aHTTP, Ready: true, Serving: true},
			{Pod: "pod-b", Node: "node-2", Addr: bHTTP, Ready: true, Serving: true},
		}}
	p.sync([]plane.ServicePort{sp})
	front := h.real("0.0.0.0:30080", "tcp4")
	seen := map[string]int{}
	for i := 0; i < 40 && len(seen) < 2; i++ {
		body, err := httpGet(front, "/hostname")
		if err != nil {
			t.Fatalf("GET via the proxy: %v", err)
		}
		seen[body]++
	}
	if len(seen) != 2 || seen["pod-a"] == 0 || seen["pod-b"] == 0 {
		t.Errorf("40 requests reached %v, want both pods", seen)
	}
	ev := log.wait(t, time.Second, "an ok flow", func(e record) bool { return e.Kind == recFlow && e.Flow.Result == plane.FlowOK })
	if ev.Flow.BytesIn == 0 || ev.Flow.BytesOut == 0 || ev.Flow.Service != "default/web" || ev.Flow.EntryNode != "node-1" || ev.Flow.SourceSeen != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("flow event incomplete: %+v", ev.Flow)
	}

	// Re-syncing the same state keeps the listener (same port).
	p.sync([]plane.ServicePort{sp})
	if got := h.real("0.0.0.0:30080", "tcp4"); got != front {
		t.Errorf("an unchanged sync reopened the listener: %s → %s", front, got)
	}

	// An endpoint that refuses (one the proxy cannot know is closed): the
	// proxy resets the client, and says so.
	closed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))
	sp.Endpoints = []plane.Endpoint{{Pod: "gone", Node: "node-1", Addr: closed, Ready: true, Serving: true}}
	p.sync([]plane.ServicePort{sp})
	if _, err := httpGet(front, "/hostname"); err == nil {
		t.Errorf("a refusing endpoint answered")
	}
	log.wait(t, time.Second, "a reset flow", func(e record) bool {
		return e.Kind == recFlow && e.Flow.Pod == "gone" && e.Flow.Result == plane.FlowReset
	})

	// No usable endpoint: the listener closes, the kernel refuses.
	sp.Endpoints[0].Ready = false
	p.sync([]plane.ServicePort{sp})
	_, err := net.DialTimeout("tcp", front, time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("no usable endpoint: dial = %v, want connection refused", err)
	}
}

// freePort returns a loopback TCP port nothing listens on.
func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return port
}

func TestProxyUDPFlowsOnLoopback(t *testing.T) {
	_, aUDP := loopbackApp(t, "pod-a")
	_, bUDP := loopbackApp(t, "pod-b")
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	eps := []plane.Endpoint{
		{Pod: "pod-a", Node: "node-1", Addr: aUDP, Ready: true, Serving: true},
		{Pod: "pod-b", Node: "node-1", Addr: bUDP, Ready: true, Serving: true},
	}
	sp := plane.ServicePort{Service: "default/udp", Protocol: "UDP", NodePort: 30081, ExternalTrafficPolicy: "Cluster", Endpoints: eps}
	p.sync([]plane.ServicePort{sp})
	front := h.real("0.0.0.0:30081", "udp4")
	conn, err := net.Dial("udp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func() string {
		t.Helper()
		buf := make([]byte, 100)
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("hostname")); err != nil {
			t.Fatal(err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("UDP via the proxy: %v", err)
		}
		return string(buf[:n])
	}
	first := ask()
	for i := 0; i < 10; i++ {
		if got := ask(); got != first {
			t.Fatalf("datagram %d of one flow went to %s, the flow is pinned to %s", i, got, first)
		}
	}
	// The pinned endpoint leaves: the flow is flushed and the same client
	// port moves to the other pod.
	var rest []plane.Endpoint
	for _, e := range eps {
		if e.Pod != first {
			rest = append(rest, e)
		}
	}
	sp.Endpoints = rest
	p.sync([]plane.ServicePort{sp})
	if got := ask(); got != rest[0].Pod {
		t.Errorf("after its endpoint left, the flow answered from %s, want %s", got, rest[0].Pod)
	}
	n := 0
	for _, e := range log.all() {
		if e.Kind == recFlow && e.Flow.Protocol == "UDP" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d UDP flow events, want 2 (one per flow, not per datagram)", n)
	}
}

func TestProxyLocalPolicyRules(t *testing.T) {
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	p.env.noTransparent = false
	remote := plane.Endpoint{Pod: "b", Node: "node-2", Addr: netip.MustParseAddrPort("10.244.2.10:8080"), Ready: true, Serving: true}
	local := plane.Endpoint{Pod: "a", Node: "node-1", Addr: netip.MustParseAddrPort("10.244.1.10:8080"), Ready: true, Serving: true}
	sp := plane.ServicePort{Service: "default/local", Protocol: "TCP", NodePort: 30085, ExternalTrafficPolicy: "Local", Endpoints: []plane.Endpoint{remote}}
	p.sync([]plane.ServicePort{sp})
	// The blackhole, and before it one rule per pod range that lets pods
	// (on any node) through to the proxy.
	want := []netsim.Rule{
		{Priority: blackholePriority, IIF: "eth0", Proto: "tcp", DPort: 30085, Blackhole: true},
		{Priority: podBypassPriority, IIF: "eth0", From: netip.MustParsePrefix("10.244.1.0/24"), Proto: "tcp", DPort: 30085, Table: localTable},
		{Priority: podBypassPriority, IIF: "eth0", From: netip.MustParsePrefix("10.244.2.0/24"), Proto: "tcp", DPort: 30085, Table: localTable},
	}
	if rs := h.ruleList(); !sameRules(rs, want) {
		t.Errorf("endpoints only elsewhere: rules %+v, want %+v", rs, want)
	}
	sp.Endpoints = []plane.Endpoint{remote, local}
	p.sync([]plane.ServicePort{sp})
	tproxy := netsim.Rule{Priority: tproxyRulePriority, From: netip.MustParsePrefix("10.244.1.10/32"), Proto: "tcp", SPort: 8080, Table: tproxyTable}
	if rs := h.ruleList(); len(rs) != 1 || rs[0] != tproxy {
		t.Errorf("with a local endpoint: rules %+v, want just %+v", rs, tproxy)
	}
	p.sync(nil)
	if rs := h.ruleList(); len(rs) != 0 {
		t.Errorf("service gone: rules %+v left behind", rs)
	}
}

// TestKernelFlowHook: a flow a node's kernel answered (reported by
// whoever observes the kernel) gets its Service and reason from the
// node's last plan, goes to the control plane, and resolves a Send waiting
// for its client address.
func TestKernelFlowHook(t *testing.T) {
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	p.env.isPodIP = func(a netip.Addr) bool { return netip.MustParsePrefix("10.244.0.0/16").Contains(a) }
	remote := plane.Endpoint{Pod: "b", Node: "node-2", Addr: netip.MustParseAddrPort("10.244.2.10:8080"), Ready: true, Serving: true}
	p.sync([]plane.ServicePort{
		{Service: "default/empty", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30090},
		{Service: "default/local", Protocol: "UDP", ClusterIP: netip.MustParseAddr("10.96.0.12"), Port: 81, NodePort: 30091,
			ExternalTrafficPolicy: "Local", Endpoints: []plane.Endpoint{remote}},
	})
	c := &Cluster{topo: plane.DefaultTopology("demo", 1), ctl: log, flows: newFlowBook(), nodes: map[string]*node{"node-1": {proxy: p}}}
	client := netip.MustParseAddrPort("172.18.0.100:40000")
	pod := netip.MustParseAddrPort("10.244.2.30:40000")
	for _, tc := range []struct {
		proto    string
		client   netip.AddrPort
		frontend netip.AddrPort
		ok       bool
		result   plane.FlowResult
		reason   plane.FlowReason
		service  string
	}{
		{"TCP", client, netip.MustParseAddrPort("192.0.2.1:30090"), true, plane.FlowRefused, plane.ReasonNoEndpoints, "default/empty"},
		{"TCP", client, netip.MustParseAddrPort("10.96.0.11:80"), true, plane.FlowRefused, plane.ReasonNoEndpoints, "default/empty"},
		{"UDP", client, netip.MustParseAddrPort("192.0.2.1:30091"), true, plane.FlowDropped, plane.ReasonLocalPolicy, "default/local"},
		{"UDP", pod, netip.MustParseAddrPort("192.0.2.1:30091"), false, "", "", ""},    // pods are proxied under Local
		{"UDP", client, netip.MustParseAddrPort("10.96.0.12:81"), false, "", "", ""},   // the ClusterIP listens
		{"TCP", client, netip.MustParseAddrPort("192.0.2.1:30099"), false, "", "", ""}, // no service there
	} {
		start := time.Now()
		if ok := c.kernelFlow("node-1", tc.proto, tc.client, tc.frontend, start); ok != tc.ok {
			t.Errorf("kernelFlow %s %s → %s = %v, want %v", tc.proto, tc.client, tc.frontend, ok, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		f := c.flows.wait(context.Background(), flowKey{tc.proto, tc.client}, start, time.Second)
		if f == nil || !f.Kernel || f.Result != tc.result || f.Reason != tc.reason || f.Service != tc.service || f.EntryNode != "node-1" || f.Frontend != tc.frontend {
			t.Errorf("%s → %s: flow %+v, want a kernel flow %s (%s) of %s", tc.proto, tc.frontend, f, tc.result, tc.reason, tc.service)
		}
	}
	if n := len(log.flows(func(f plane.Flow) bool { return f.Kernel })); n != 3 {
		t.Errorf("%d kernel flows reported to the control plane, want 3", n)
	}
}

// TestKernelFlowJudgedByThePlanItArrivedUnder: an attempt the kernel
// refused just before a sync gave its Service endpoints is still reported
// as refused, with the old plan's reason; one after it is the proxy's.
func TestKernelFlowJudgedByThePlanItArrivedUnder(t *testing.T) {
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	httpAddr, _ := loopbackApp(t, "b")
	sp := plane.ServicePort{Service: "default/web", Protocol: "TCP", NodePort: freePort(t)}
	p.sync([]plane.ServicePort{sp})
	before := time.Now()
	time.Sleep(time.Millisecond)
	sp.Endpoints = []plane.Endpoint{{Pod: "b", Node: "node-1", Addr: httpAddr, Ready: true, Serving: true}}
	p.sync([]plane.ServicePort{sp})
	p.sync([]plane.ServicePort{sp}) // a sync that changes nothing keeps the plan before
	c := &Cluster{topo: plane.DefaultTopology("demo", 1), ctl: log, flows: newFlowBook(), nodes: map[string]*node{"node-1": {proxy: p}}}
	client := netip.MustParseAddrPort("172.18.0.100:40000")
	frontend := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), sp.NodePort)
	if !c.kernelFlow("node-1", "TCP", client, frontend, before) {
		t.Fatalf("an attempt from before the sync: no kernel flow")
	}
	f := c.flows.wait(context.Background(), flowKey{"TCP", client}, before, time.Second)
	if f == nil || f.Result != plane.FlowRefused || f.Reason != plane.ReasonNoEndpoints || f.Service != "default/web" {
		t.Errorf("flow %+v, want refused (no endpoints) by the plan it arrived under", f)
	}
	if c.kernelFlow("node-1", "TCP", client, frontend, time.Now()) {
		t.Errorf("an attempt after the sync is a kernel flow, but the proxy takes it")
	}
}
