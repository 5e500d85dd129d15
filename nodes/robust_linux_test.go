//go:build linux

package nodes

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nplab/nplab/lab/plane"
)

// socketFDs counts this process's open sockets.
func socketFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// TestProxyUDPFlowsBounded floods a UDP frontend from 2000 source ports:
// the proxy keeps at most udpMaxFlows flows (one socket each), evicting the
// least recently used, and still serves a new client afterwards.
func TestProxyUDPFlowsBounded(t *testing.T) {
	_, aUDP := loopbackApp(t, "pod-a")
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	sp := plane.ServicePort{Service: "default/udp", Protocol: "UDP", NodePort: 30081, ExternalTrafficPolicy: "Cluster",
		Endpoints: []plane.Endpoint{{Pod: "pod-a", Node: "node-1", Addr: aUDP, Ready: true, Serving: true}}}
	p.sync([]plane.ServicePort{sp})
	front := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(h.real("0.0.0.0:30081", "udp4")))
	base := socketFDs(t)
	peak := base
	deadline := time.Now().Add(15 * time.Second)
	const flood = 2000
	sent := 0
	for ; sent < flood && time.Now().Before(deadline); sent++ {
		c, err := net.DialUDP("udp4", nil, front)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("hostname"))
		c.Close()
		if sent%100 == 0 {
			peak = max(peak, socketFDs(t))
			time.Sleep(time.Millisecond) // let the proxy keep up, not drop
		}
	}
	// Wait (bounded) until the proxy has read what it will read.
	flows := func() int {
		p.mu.Lock()
		f := p.fronts[frontKey{"UDP", netip.AddrPortFrom(netip.IPv4Unspecified(), 30081)}]
		p.mu.Unlock()
		return f.flows.len()
	}
	for last, stable := -1, 0; stable < 5 && time.Now().Before(deadline.Add(5*time.Second)); {
		peak = max(peak, socketFDs(t))
		if n := flows(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	const maxFlows = 1024 // like a small nf_conntrack_max
	if n := flows(); n > maxFlows {
		t.Errorf("%d UDP flows after a flood from %d ports, want at most %d", n, sent, maxFlows)
	}
	if limit := base + maxFlows + 64; peak > limit {
		t.Errorf("sockets peaked at %d during a flood of %d datagrams (baseline %d), want at most %d", peak, sent, base, limit)
	}
	t.Logf("%d datagrams from distinct ports: %d flows, sockets %d → peak %d", sent, flows(), base, peak)
	// A new client is still served.
	c, err := net.DialUDP("udp4", nil, front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 100)
	_, _ = c.Write([]byte("hostname"))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "pod-a" {
		t.Errorf("a client after the flood: %q %v", buf[:n], err)
	}
}

// hangHost is a fakeHost whose dials hang until their context ends, like
// an endpoint that never answers a SYN.
type hangHost struct {
	*fakeHost
	dialing chan struct{}
}

func (h hangHost) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	select {
	case h.dialing <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestProxyCloseCancelsDials: closing a proxy does not wait for backend
// dials in flight to time out.
func TestProxyCloseCancelsDials(t *testing.T) {
	h := hangHost{newFakeHost(), make(chan struct{}, 1)}
	log := &recorder{}
	p := newProxy(proxyEnv{
		node: "node-1", host: h, nodeIP: netip.MustParseAddr("192.0.2.1"), podCIDR: netip.MustParsePrefix("10.244.1.0/24"),
		isPodIP: func(netip.Addr) bool { return false }, isNodeIP: func(netip.Addr) bool { return false },
		serviceCIDR: netip.MustParsePrefix("10.96.0.0/12"), mode: plane.ProxyRandom, ctl: log, seed: 42, noTransparent: true,
	})
	defer p.close()
	p.sync([]plane.ServicePort{{Service: "default/hang", Protocol: "TCP", NodePort: 30080, ExternalTrafficPolicy: "Cluster",
		Endpoints: []plane.Endpoint{{Pod: "hang", Node: "node-2", Addr: netip.MustParseAddrPort("10.244.2.10:8080"), Ready: true, Serving: true}}}})
	c, err := net.DialTimeout("tcp", h.real("0.0.0.0:30080", "tcp4"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-h.dialing:
	case <-time.After(3 * time.Second):
		t.Fatal("the proxy never dialed the endpoint")
	}
	start := time.Now()
	p.close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("close took %v with a backend dial in flight, want it cancelled (backendDialTimeout %v)", d, backendDialTimeout)
	}
}

// TestStartPodConcurrent calls Ready and StopPod while StartPod runs; run
// with -race.
func TestStartPodConcurrent(t *testing.T) {
	c, log := newCluster(t, 1, "")
	for i := range 4 {
		name := "race-" + strconv.Itoa(i)
		var wg sync.WaitGroup
		var startErr error
		wg.Go(func() {
			startErr = c.StartPod(context.Background(), "node-1", agnhost(name), podIP(1, 10+i))
		})
		stopped := false
		deadline := time.Now().Add(10 * time.Second)
		for !stopped && time.Now().Before(deadline) {
			if _, err := c.Ready(name); err == nil {
				stopPod(t, c, log, name)
				stopped = true
			}
			_ = c.Command(plane.Request{From: name, Protocol: "TCP", Target: nodeAddr(1, 30080)})
		}
		wg.Wait()
		if startErr != nil {
			t.Errorf("StartPod %s: %v", name, startErr)
		}
		if !stopped {
			t.Errorf("pod %s never became visible to Ready within 10s", name)
		}
		if _, err := c.Ready(name); err == nil {
			t.Errorf("pod %s still there after StopPod", name)
		}
	}
}

// podGoroutines lists goroutines of pods: probers and app servers.
func podGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "nodes.(*pod).runProbe") || strings.Contains(g, "nodes/apps.(*App)") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseDuringStartPod closes the cluster at different moments of a
// StartPod: no prober, app goroutine or socket may outlive it.
func TestCloseDuringStartPod(t *testing.T) {
	if len(podGoroutines()) != 0 {
		t.Skip("pod goroutines of another test are still running")
	}
	for _, delay := range []time.Duration{0, 1 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 6 * time.Millisecond, 9 * time.Millisecond, 14 * time.Millisecond, 30 * time.Millisecond} {
		base := socketFDs(t)
		c, _ := newCluster(t, 1, "")
		pod := withReadiness(agnhost("closing"), corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		})
		errc := make(chan error, 1)
		go func() { errc <- c.StartPod(context.Background(), "node-1", pod, podIP(1, 10)) }()
		time.Sleep(delay)
		if err := c.Close(); err != nil {
			t.Errorf("Close %v into StartPod: %v", delay, err)
		}
		select {
		case err := <-errc:
			t.Logf("Close %v into StartPod: StartPod returned %v", delay, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("StartPod did not return within 10s of Close")
		}
		var left []string
		var socks int
		for end := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			left, socks = podGoroutines(), socketFDs(t)
			if (len(left) == 0 && socks <= base) || time.Now().After(end) {
				break
			}
		}
		if len(left) != 0 {
			t.Errorf("Close %v into StartPod: %d pod goroutines still run:\n%s", delay, len(left), strings.Join(left, "\n\n"))
		}
		if socks > base {
			t.Errorf("Close %v into StartPod: %d sockets open, %d before the lab", delay, socks, base)
		}
	}
}

// TestCommandSCTPUsesNcat: netcat-openbsd (Debian's nc) has no --sctp;
// the hint must be one a student can run.
func TestCommandSCTPUsesNcat(t *testing.T) {
	c := &Cluster{topo: plane.DefaultTopology("demo", 1), nodes: map[string]*node{}, pods: map[string]*pod{}}
	got := c.Command(plane.Request{From: "client", Protocol: "SCTP", Target: nodeAddr(1, 30082), Message: "hostname"})
	want := `echo "hostname" | nplab exec client -- ncat --sctp 172.18.0.2 30082`
	if got != want {
		t.Errorf("Command(SCTP) = %q, want %q", got, want)
	}
}

// slowListenHost is a fakeHost whose Listen waits for release, like a
// namespace switch that takes its time.
type slowListenHost struct {
	*fakeHost
	listening chan struct{}
	release   chan struct{}
}

func (h slowListenHost) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	h.listening <- struct{}{}
	<-h.release
	return h.fakeHost.Listen(ctx, network, address)
}

// TestSyncOpensListenersWithoutTheLock: while a sync opens a listener,
// the proxy's connections and lookups (which take its lock) go on.
func TestSyncOpensListenersWithoutTheLock(t *testing.T) {
	h := slowListenHost{newFakeHost(), make(chan struct{}, 1), make(chan struct{})}
	log := &recorder{}
	p := newProxy(proxyEnv{
		node: "node-1", host: h, nodeIP: netip.MustParseAddr("192.0.2.1"), podCIDR: netip.MustParsePrefix("10.244.1.0/24"),
		isPodIP: func(netip.Addr) bool { return false }, isNodeIP: func(netip.Addr) bool { return false },
		serviceCIDR: netip.MustParsePrefix("10.96.0.0/12"), mode: plane.ProxyRandom, ctl: log, seed: 42, noTransparent: true,
	})
	defer p.close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.sync([]plane.ServicePort{{Service: "default/web", Protocol: "TCP", NodePort: 30080, ExternalTrafficPolicy: "Cluster",
			Endpoints: []plane.Endpoint{{Pod: "b", Node: "node-2", Addr: netip.MustParseAddrPort("10.244.2.10:8080"), Ready: true, Serving: true}}},
			{Service: "default/empty", Protocol: "TCP", NodePort: 30090}})
	}()
	select {
	case <-h.listening:
	case <-time.After(3 * time.Second):
		t.Fatal("the sync never opened its listener")
	}
	looked := make(chan bool, 1)
	go func() {
		_, ok := p.verdict("TCP", netip.MustParseAddrPort("192.0.2.1:30090"), netip.MustParseAddr("172.18.0.100"), time.Now())
		looked <- ok
	}()
	select {
	case ok := <-looked:
		if !ok {
			t.Errorf("no verdict for a nodePort without endpoints while the sync runs")
		}
	case <-time.After(time.Second):
		t.Errorf("a lookup waited for a listener being opened: the sync holds the proxy's lock")
	}
	close(h.release)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the sync did not finish")
	}
	if ls := lastListening(log, "node-1"); len(ls) != 1 || ls[0].Addr != netip.MustParseAddrPort("0.0.0.0:30080") {
		t.Errorf("listeners reported: %+v, want the one nodePort", ls)
	}
}
