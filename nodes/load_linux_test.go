//go:build linux

package nodes

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nplab/nplab/lab/plane"
)

// The load tests (TestLoad*) are slow and heavy, so they run only with
// NPLAB_LOAD=1, in their own CI stage, without -race (the race detector
// allows at most 8128 live goroutines):
//
//	sudo NPLAB_LOAD=1 go test -count=1 -run '^TestLoad' -v ./nodes
func requireLoad(t *testing.T) {
	t.Helper()
	if os.Getenv("NPLAB_LOAD") != "1" {
		t.Skip("load test: set NPLAB_LOAD=1 to run it (.ci/run's load stage does)")
	}
}

// procStatus reads one numeric field of /proc/self/status ("Threads",
// "VmRSS" in kB).
func procStatus(t testing.TB, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			f := strings.Fields(string(v))
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s: line in /proc/self/status", field)
	return 0
}

// raiseNoFile lifts RLIMIT_NOFILE towards n for the test process
// (restored when the test ends) and returns the soft limit it got. Root
// without CAP_SYS_RESOURCE (a container) cannot raise the hard limit; the
// soft limit then stops at the hard one.
func raiseNoFile(t *testing.T, n uint64) uint64 {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Cur >= n {
		return old.Cur
	}
	got := n
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: max(n, old.Max)}); err != nil {
		got = min(n, old.Max)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: got, Max: old.Max}); err != nil {
			t.Fatalf("raise RLIMIT_NOFILE to %d: %v", got, err)
		}
	}
	t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
	return got
}

// sampler records the peak of a value, polled every 20ms until stop.
type sampler struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sample(f func() int) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.peak.Store(int64(f()))
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				if v := int64(f()); v > s.peak.Load() {
					s.peak.Store(v)
				}
			}
		}
	}()
	return s
}

func (s *sampler) end() int {
	close(s.stop)
	<-s.done
	return int(s.peak.Load())
}

// httpGet sends one HTTP/1.0 request for path over c and returns the body
// of a 200 answer.
func httpOver(c net.Conn, path string, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: nplab\r\n\r\n", path); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		return "", err
	}
	head, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.") || !strings.Contains(strings.SplitN(head, "\r\n", 2)[0], " 200 ") {
		return "", fmt.Errorf("not a 200 answer: %q", b)
	}
	return body, nil
}

// probe sends one TCP request from the client to target and returns how
// long the answer took.
func probe(c *Cluster, target netip.AddrPort) (time.Duration, string, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := c.client.Dial(ctx, "tcp", target.String())
	if err != nil {
		return time.Since(start), "", err
	}
	defer conn.Close()
	body, err := httpOver(conn, "/hostname", 2*time.Second)
	return time.Since(start), body, err
}

// settleGoroutines waits (bounded) for the goroutine count to come back
// to at most base+slack and returns the last count. Callers wait for a
// slack of 5 and allow 20: a few goroutines of the lab come and go.
func settleGoroutines(base, slack int, within time.Duration) int {
	deadline := time.Now().Add(within)
	n := runtime.NumGoroutine()
	for n > base+slack && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// TestLoadUnreachableEndpoint opens 10,000 concurrent connections to a
// NodePort whose only endpoint is on a node whose link is down, so every
// proxied dial waits. The dials wait in the netpoller: the process keeps
// a few dozen OS threads (it used to lock one per pending dial, and died
// at Go's limit of 10,000), the lab keeps answering through another
// NodePort, and Close removes every namespace.
func TestLoadUnreachableEndpoint(t *testing.T) {
	requireLoad(t)
	limit := raiseNoFile(t, 100_000)
	old := backendDialTimeout
	backendDialTimeout = 20 * time.Second // every dial is still pending when the last connection opens
	t.Cleanup(func() { backendDialTimeout = old })

	c, log := newCluster(t, 3, plane.ProxyRandom)
	lab := c.Topology().Lab
	far := startPod(t, c, log, 3, 10, agnhost("far"), true)
	near := startPod(t, c, log, 2, 10, agnhost("near"), true)
	c.SyncServices([]plane.ServicePort{
		{Service: "default/far", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, far)},
		{Service: "default/near", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30082,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, near)},
	})
	if _, body, err := probe(c, nodeAddr(1, 30080)); err != nil || body != "far" {
		t.Fatalf("before the link goes down: %q %v", body, err)
	}
	baseG, baseT := runtime.NumGoroutine(), procStatus(t, "Threads")
	if err := c.SetNodeLink("node-3", false); err != nil {
		t.Fatal(err)
	}

	// The proxy holds two sockets per connection (the client's and its
	// pending dial), so 10,000 connections need 20,000 descriptors here;
	// the clients' sockets are in a child process in the client's
	// namespace, with its own limit.
	conns := min(10_000, int(limit-500)/2)
	if conns < 10_000 {
		t.Logf("RLIMIT_NOFILE is %d here and cannot be raised (no CAP_SYS_RESOURCE): %d connections instead of 10,000", limit, conns)
	}
	threads := sample(func() int { return procStatus(t, "Threads") })
	start := time.Now()
	opened, dialErrs, firstErr, release := clientConns(t, c, nodeAddr(1, 30080), conns)
	took := time.Since(start)
	// Wait (bounded) until the proxy has accepted them all.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p := c.nodes["node-1"].proxy
		p.mu.Lock()
		n := len(p.conns)
		p.mu.Unlock()
		if n >= opened {
			break
		}
	}
	// Every connection is open and its proxied dial pending: the lab
	// still answers through the other NodePort.
	var lat []time.Duration
	for range 10 {
		d, body, err := probe(c, nodeAddr(1, 30082))
		if err != nil || body != "near" {
			t.Errorf("with %d dials pending, a request through node-1:30082: %q %v", opened, body, err)
		}
		lat = append(lat, d)
	}
	peakT := threads.end()
	t.Logf("%d connections opened in %v (%d client dial errors, first %v); OS threads %d before, peak %d; "+
		"10 requests through another NodePort meanwhile took at most %v",
		opened, took.Round(time.Millisecond), dialErrs, firstErr, baseT, peakT, slices.Max(lat).Round(10*time.Microsecond))
	if opened < conns*95/100 {
		t.Errorf("only %d of %d connections opened", opened, conns)
	}
	if peakT > 300 {
		t.Errorf("OS threads peaked at %d with %d dials pending, want fewer than 300", peakT, opened)
	}
	release()
	if err := c.SetNodeLink("node-3", true); err != nil {
		t.Fatal(err)
	}
	// The proxied dials end at their timeout at the latest; then only
	// the lab's own goroutines are left.
	g := settleGoroutines(baseG, 5, backendDialTimeout+10*time.Second)
	t.Logf("goroutines: %d before, %d after the connections closed", baseG, g)
	if g > baseG+20 {
		t.Errorf("goroutines did not return to their baseline: %d before, %d after", baseG, g)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), "nplab-"+lab+"-") {
		t.Errorf("after Close, ip netns list still shows the lab:\n%s", out)
	}
}

// clientConns opens n TCP connections from the cluster's client to
// target, in a child process (this test binary, in the client's namespace
// through ip netns exec) so that their descriptors do not count against
// this process's limit. They stay open until release.
func clientConns(t *testing.T, c *Cluster, target netip.AddrPort, n int) (opened, failed int, firstErr string, release func()) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", c.client.Namespace(), os.Args[0], "-test.run=^TestHelperLoadClient$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("NPLAB_LOAD_CLIENT=tcp %s %d", target, n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("client process: %v", err)
	}
	release = sync.OnceFunc(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	t.Cleanup(release)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "OPENED "); ok {
			f := strings.SplitN(rest, " ", 3)
			opened, _ = strconv.Atoi(f[0])
			failed, _ = strconv.Atoi(f[1])
			if len(f) > 2 {
				firstErr = f[2]
			}
			return opened, failed, firstErr, release
		}
	}
	release()
	t.Fatalf("the client process ended without opening its connections")
	return
}

// udpFlood floods target with UDP from ports source ports in a child
// process in the client's namespace (like clientConns), from senders
// goroutines, for d; it returns how many datagrams were sent.
func udpFlood(t *testing.T, c *Cluster, target netip.AddrPort, ports, senders int, d time.Duration) int {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", c.client.Namespace(), os.Args[0], "-test.run=^TestHelperLoadClient$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("NPLAB_LOAD_CLIENT=udp %s %d %d %d", target, ports, senders, d.Milliseconds()))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("flood process: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "SENT "); ok {
			n, _ := strconv.Atoi(rest)
			return n
		}
	}
	t.Fatalf("the flood process said no SENT line: %q", out)
	return 0
}

// TestHelperLoadClient is the child process of clientConns and udpFlood.
// With NPLAB_LOAD_CLIENT="tcp ip:port n" it opens n connections (256
// dials at a time), prints "OPENED <ok> <failed> <first error>", and
// holds them until its stdin closes. With "udp ip:port ports senders ms"
// it sends from ports sockets in senders goroutines for ms milliseconds
// and prints "SENT <datagrams>".
func TestHelperLoadClient(t *testing.T) {
	spec := os.Getenv("NPLAB_LOAD_CLIENT")
	if spec == "" {
		t.Skip("the child process of the load tests (NPLAB_LOAD_CLIENT unset)")
	}
	f := strings.Fields(spec)
	if f[0] == "udp" {
		helperFlood(t, f[1:])
		return
	}
	target := f[1]
	n, _ := strconv.Atoi(f[2])
	var (
		mu     sync.Mutex
		open   []net.Conn
		failed int
		first  = "-"
		wg     sync.WaitGroup
		sem    = make(chan struct{}, 256)
	)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, err := net.DialTimeout("tcp", target, 10*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if failed++; failed == 1 {
					first = err.Error()
				}
				return
			}
			open = append(open, conn)
		})
	}
	wg.Wait()
	fmt.Printf("OPENED %d %d %s\n", len(open), failed, first)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range open {
		c.Close()
	}
}

func helperFlood(t *testing.T, args []string) {
	target := args[0]
	ports, _ := strconv.Atoi(args[1])
	senders, _ := strconv.Atoi(args[2])
	ms, _ := strconv.Atoi(args[3])
	stop := time.Now().Add(time.Duration(ms) * time.Millisecond)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for s := range senders {
		var socks []net.Conn
		for range ports / senders {
			conn, err := net.Dial("udp", target)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			socks = append(socks, conn)
		}
		wg.Go(func() {
			msg := []byte("echo flood-" + strconv.Itoa(s))
			n := 0
			for i := 0; time.Now().Before(stop); i++ {
				for _, conn := range socks[i%8*len(socks)/8 : (i%8+1)*len(socks)/8] {
					if _, err := conn.Write(msg); err == nil {
						n++
					}
				}
			}
			sent.Add(int64(n))
		})
	}
	wg.Wait()
	fmt.Printf("SENT %d\n", sent.Load())
}

// TestLoadThousandConnections opens 1,000 TCP connections through one
// NodePort at once, then sends a request on each: every one is served.
func TestLoadThousandConnections(t *testing.T) {
	requireLoad(t)
	raiseNoFile(t, 100_000)
	c, log := newCluster(t, 3, plane.ProxyRandom)
	var web []testPod
	for i := 1; i <= 3; i++ {
		web = append(web, startPod(t, c, log, i, 10, agnhost(fmt.Sprintf("web-%d", i)), true))
	}
	c.SyncServices([]plane.ServicePort{{Service: "default/web", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, web...)}})
	baseG := runtime.NumGoroutine()

	const conns = 1000
	start := time.Now()
	open := make([]net.Conn, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := c.client.Dial(ctx, "tcp", nodeAddr(1, 30080).String())
			if err != nil {
				errs <- err
				return
			}
			open[i] = conn
		})
	}
	wg.Wait()
	opened := time.Since(start)
	served := map[string]int{}
	var mu sync.Mutex
	for _, conn := range open {
		if conn == nil {
			continue
		}
		wg.Go(func() {
			defer conn.Close()
			body, err := httpOver(conn, "/hostname", 20*time.Second)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			served[body]++
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	total := 0
	for _, n := range served {
		total += n
	}
	t.Logf("%d concurrent connections through node-1:30080: opened in %v, %d served in %v (per pod %v)",
		conns, opened.Round(time.Millisecond), total, time.Since(start).Round(time.Millisecond), served)
	for err := range errs {
		t.Errorf("a connection failed: %v", err)
		break
	}
	if total != conns {
		t.Errorf("%d of %d connections served", total, conns)
	}
	g := settleGoroutines(baseG, 5, 10*time.Second)
	t.Logf("goroutines: %d before, %d after", baseG, g)
	if g > baseG+20 {
		t.Errorf("goroutines did not return to their baseline: %d before, %d after", baseG, g)
	}
}

// TestLoadUDPFlood floods a UDP NodePort from 4,096 source ports as fast
// as the machine sends for a few seconds. The proxy's flow table stays at
// its cap, memory stays bounded, TCP requests through another NodePort
// answer within 100ms throughout (95% of them, all within a second), and
// once the flows expire the goroutine count is back to its baseline.
func TestLoadUDPFlood(t *testing.T) {
	requireLoad(t)
	raiseNoFile(t, 100_000)
	oldIdle := udpFlowIdle
	udpFlowIdle = 2 * time.Second // so the flows expire soon after the flood
	t.Cleanup(func() { udpFlowIdle = oldIdle })

	c, log := newCluster(t, 3, plane.ProxyRandom)
	var web []testPod
	for i := 1; i <= 3; i++ {
		web = append(web, startPod(t, c, log, i, 10, agnhost(fmt.Sprintf("web-%d", i)), true))
	}
	udp := plane.ServicePort{Service: "default/udp", Protocol: "UDP", ClusterIP: clusterIP, Port: 81, NodePort: 30081,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8081, web...)}
	c.SyncServices([]plane.ServicePort{udp,
		{Service: "default/web", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30082,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, web...)}})
	if _, body, err := probe(c, nodeAddr(1, 30082)); err != nil || !strings.HasPrefix(body, "web-") {
		t.Fatalf("before the flood: %q %v", body, err)
	}
	runtime.GC()
	baseG, baseRSS := runtime.NumGoroutine(), procStatus(t, "VmRSS")
	flows := func() int {
		p := c.nodes["node-1"].proxy
		p.mu.Lock()
		f := p.fronts[frontKey{"UDP", netip.AddrPortFrom(netip.IPv4Unspecified(), 30081)}]
		p.mu.Unlock()
		if f == nil {
			return 0
		}
		return f.flows.len()
	}
	flowPeak := sample(flows)
	rss := sample(func() int { return procStatus(t, "VmRSS") })

	const (
		senders  = 1
		ports    = 4096 // source ports, four times the flow cap
		duration = 5 * time.Second
	)
	var sent atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(duration)
	wg.Go(func() { sent.Store(int64(udpFlood(t, c, nodeAddr(1, 30081), ports, senders, duration))) })
	// Meanwhile, TCP through another NodePort, every 50ms.
	var lat []time.Duration
	var probeErrs, slow []string
	for begin := time.Now(); time.Now().Before(stop); time.Sleep(50 * time.Millisecond) {
		d, body, err := probe(c, nodeAddr(1, 30082))
		if err != nil || !strings.HasPrefix(body, "web-") {
			probeErrs = append(probeErrs, fmt.Sprintf("%q %v", body, err))
		}
		if d > 100*time.Millisecond {
			slow = append(slow, fmt.Sprintf("%v at +%v", d.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond)))
		}
		lat = append(lat, d)
	}
	wg.Wait()
	peakFlows, peakRSS := flowPeak.end(), rss.end()
	slices.Sort(lat)
	p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	t.Logf("UDP flood: %d datagrams in %v from %d source ports (%.0f/s); flows peaked at %d (cap %d); "+
		"RSS %d kB before, peak %d kB (+%d kB)",
		sent.Load(), duration, ports, float64(sent.Load())/duration.Seconds(), peakFlows, udpMaxFlows,
		baseRSS, peakRSS, peakRSS-baseRSS)
	t.Logf("TCP through node-1:30082 during the flood: %d requests, p50 %v, p99 %v, max %v, %d failed",
		len(lat), p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), worst.Round(10*time.Microsecond), len(probeErrs))
	if len(probeErrs) > 0 {
		t.Errorf("TCP requests failed during the flood: %q", probeErrs)
	}
	// Within 100ms, allowing a stray scheduling hiccup on a 2-core
	// machine where the flood's sender takes a core: at least 95% of the
	// requests, and none over a second.
	if len(slow)*20 > len(lat) || worst > time.Second {
		t.Errorf("TCP requests during the flood took over 100ms (%d of %d): %v", len(slow), len(lat), slow)
	} else if len(slow) > 0 {
		t.Logf("over 100ms: %v", slow)
	}
	if peakFlows > udpMaxFlows {
		t.Errorf("the flow table held %d flows, over its cap of %d", peakFlows, udpMaxFlows)
	}
	if grow := peakRSS - baseRSS; grow > 256*1024 {
		t.Errorf("RSS grew by %d kB during the flood, want under 256 MB", grow)
	}
	g := settleGoroutines(baseG, 5, udpFlowIdle+15*time.Second)
	t.Logf("goroutines: %d before, %d after the flows expired; flows left %d", baseG, g, flows())
	if g > baseG+20 {
		t.Errorf("goroutines did not return to their baseline: %d before, %d after", baseG, g)
	}
}
