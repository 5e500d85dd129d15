//go:build linux

package nodes

import (
	"context"
	"errors"
	"fmt"
	"github.com/nplab/nplab/netsim"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab/plane"
)

// readyCounter is a plane.Control that counts pods turning ready and
// fails on a warning; the rest is dropped.
type readyCounter struct {
	nopControl
	mu       sync.Mutex
	ready    map[string]bool
	warnings []string
	changed  chan struct{} // gets a token on every report
}

func newReadyCounter() *readyCounter {
	return &readyCounter{ready: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (r *readyCounter) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *readyCounter) PodReady(pod string, ready bool) {
	r.mu.Lock()
	r.ready[pod] = ready
	r.mu.Unlock()
	r.poke()
}

func (r *readyCounter) Warning(node, pod, message string) {
	r.mu.Lock()
	r.warnings = append(r.warnings, fmt.Sprintf("%s %s: %s", node, pod, message))
	r.mu.Unlock()
	r.poke()
}

// wait returns once n pods are ready, or fails at a warning or the
// deadline.
func (r *readyCounter) wait(tb testing.TB, n int, within time.Duration) {
	tb.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, warns := 0, r.warnings
		for _, ok := range r.ready {
			if ok {
				got++
			}
		}
		r.mu.Unlock()
		if len(warns) > 0 {
			tb.Fatalf("warnings: %v", warns)
		}
		if got >= n {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			tb.Fatalf("%d of %d pods ready after %v", got, n, within)
		}
	}
}

// clusterUp builds a data plane of nodes nodes and starts nodes×pods
// agnhost pods spread over them, one StartPod after another as the
// control plane calls it, with a readiness probe in real time; it waits
// for every pod to be ready, sets up a NodePort Service over all of them
// and sends one request from the client through node-1's NodePort. It
// returns the cluster (not closed) and how long all that took.
func clusterUp(tb testing.TB, lab string, nodes, pods int) (*Cluster, time.Duration) {
	tb.Helper()
	start := time.Now()
	ctl := newReadyCounter()
	c, err := New(context.Background(), plane.DefaultTopology(lab, nodes), plane.Options{}, ctl)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	var all []testPod
	for i := range nodes * pods {
		node, host := 1+i%nodes, 2+i/nodes
		p := withReadiness(agnhost(fmt.Sprintf("web-%d", i), "--http-port=8080"), httpProbe("/readyz", 8080))
		ip := podIP(node, host)
		if err := c.StartPod(context.Background(), fmt.Sprintf("node-%d", node), p, ip); err != nil {
			c.Close()
			tb.Fatalf("StartPod %s: %v", p.Name, err)
		}
		all = append(all, testPod{name: p.Name, node: fmt.Sprintf("node-%d", node), ip: ip})
	}
	ctl.wait(tb, len(all), time.Minute)
	c.SyncServices([]plane.ServicePort{{Service: "default/web", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, all...)}})
	rep, err := c.Send(context.Background(), plane.Request{From: plane.ClientHost, Protocol: "TCP",
		Target: nodeAddr(1, 30080), Message: "/hostname", Timeout: 5 * time.Second})
	if err != nil || rep.Result != plane.FlowOK || !strings.HasPrefix(strings.TrimSpace(rep.Body), "web-") {
		c.Close()
		tb.Fatalf("request through node-1's NodePort: %v %q %v", rep.Result, rep.Body, err)
	}
	return c, time.Since(start)
}

// clusterDown closes c and checks that nothing of its lab is left: no
// namespace under /run/netns, no state file.
func clusterDown(tb testing.TB, c *Cluster) time.Duration {
	tb.Helper()
	start := time.Now()
	if err := c.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	d := time.Since(start)
	lab := c.Topology().Lab
	if left, _ := filepath.Glob("/run/netns/nplab-" + lab + "-*"); len(left) > 0 {
		tb.Fatalf("lab %s: %d namespaces left after Close: %v", lab, len(left), left[:min(len(left), 5)])
	}
	if _, err := os.Stat("/run/nplab/" + lab + ".json"); !errors.Is(err, os.ErrNotExist) {
		tb.Fatalf("lab %s: state file left after Close (%v)", lab, err)
	}
	return d
}

// BenchmarkClusterUp times the data plane alone (package lab adds the
// control plane: see BenchmarkLabUp in lab/dataplane): New, every pod
// started and ready, the first request through a NodePort answered (up),
// and Close with nothing left (down).
//
//	sudo go test -run xxx -bench BenchmarkClusterUp -benchtime 3x ./nodes
func BenchmarkClusterUp(b *testing.B) {
	testenv.RequireRoot(b)
	for _, size := range []struct{ nodes, pods int }{{3, 2}, {100, 5}} {
		b.Run(fmt.Sprintf("%dx%d", size.nodes, size.pods), func(b *testing.B) {
			var up, down time.Duration
			for b.Loop() {
				c, d := clusterUp(b, labName(b), size.nodes, size.pods)
				up += d
				down += clusterDown(b, c)
			}
			b.ReportMetric(up.Seconds()/float64(b.N), "up-s/op")
			b.ReportMetric(down.Seconds()/float64(b.N), "down-s/op")
		})
	}
}

// TestLoadBigLab is the scale a class uses: 100 nodes and 500 pods come
// up, every pod answers with its own hostname (from its node, straight to
// its IP), requests from the client through the NodePort of every tenth
// node are answered by that node's pods, and Close leaves nothing behind. It takes
// seconds as root, so it runs with NPLAB_LOAD=1 only.
func TestLoadBigLab(t *testing.T) {
	requireLoad(t)
	testenv.RequireRoot(t)
	const nodes, pods = 100, 5
	// The kernel's neighbour table is the machine's; its default cap
	// (1,024) is far below what this lab's hosts hold (.ci/run raises it).
	need := netsim.NeighboursNeeded(nodes, nodes*pods)
	if limit, err := netsim.NeighbourLimit(); err != nil {
		t.Skipf("skipping: %d nodes × %d pods need up to %d neighbour entries, and the cap cannot be read here: %v", nodes, pods, need, err)
	} else if limit < need {
		t.Skipf("skipping: %d nodes × %d pods need up to %d neighbour entries; %s is %d: raise it as root with sysctl -w %s=%d",
			nodes, pods, need, netsim.NeighbourSysctl, limit, netsim.NeighbourSysctl, 2*need)
	}
	c, up := clusterUp(t, labName(t), nodes, pods)
	t.Logf("%d nodes × %d pods up in %v", nodes, pods, up)
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	for i := range nodes * pods {
		node, host := 1+i%nodes, 2+i/nodes
		name := fmt.Sprintf("web-%d", i)
		rep, err := c.Send(context.Background(), plane.Request{From: fmt.Sprintf("node-%d", node), Protocol: "TCP",
			Target: netip.AddrPortFrom(podIP(node, host), 8080), Message: "/hostname", Timeout: 5 * time.Second})
		if err != nil || rep.Result != plane.FlowOK || strings.TrimSpace(rep.Body) != name {
			t.Fatalf("pod %s from node-%d: %v %q %v", name, node, rep.Result, rep.Body, err)
		}
	}
	// Through the NodePort of every tenth node, with externalTrafficPolicy
	// Cluster (any pod; most are on other nodes, so the request hops),
	// then Local (the node's own pods). Before node-99 stopped sharing
	// the client's address, replies to the client went astray for some
	// nodes and hops to some nodes timed out.
	var all []testPod
	for i := range nodes * pods {
		node, host := 1+i%nodes, 2+i/nodes
		all = append(all, testPod{name: fmt.Sprintf("web-%d", i), node: fmt.Sprintf("node-%d", node), ip: podIP(node, host)})
	}
	for _, policy := range []string{"Cluster", "Local"} {
		c.SyncServices([]plane.ServicePort{{Service: "default/web", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
			ExternalTrafficPolicy: policy, Endpoints: endpoints(8080, all...)}})
		for node := 1; node <= nodes; node += 10 {
			for range 3 {
				rep, err := c.Send(context.Background(), plane.Request{From: plane.ClientHost, Protocol: "TCP",
					Target: nodeAddr(node, 30080), Message: "/hostname", Timeout: 5 * time.Second})
				got := strings.TrimSpace(rep.Body)
				if err != nil || rep.Result != plane.FlowOK || !strings.HasPrefix(got, "web-") || (policy == "Local" && !onNode(got, node, nodes)) {
					t.Fatalf("through node-%d's NodePort (%s): %v %q %v", node, policy, rep.Result, rep.Body, err)
				}
			}
		}
	}
	// Every node reaches a pod on another node (node-99 included).
	for node := 1; node <= nodes; node++ {
		other := 1 + (node+49)%nodes
		rep, err := c.Send(context.Background(), plane.Request{From: fmt.Sprintf("node-%d", node), Protocol: "TCP",
			Target: netip.AddrPortFrom(podIP(other, 2), 8080), Message: "/hostname", Timeout: 5 * time.Second})
		if err != nil || rep.Result != plane.FlowOK {
			t.Fatalf("node-%d to a pod on node-%d: %v %q %v", node, other, rep.Result, rep.Body, err)
		}
	}
	closed = true
	down := clusterDown(t, c)
	t.Logf("down in %v", down)
}

// onNode reports whether pod "web-<i>" runs on node (clusterUp's spread).
func onNode(pod string, node, nodes int) bool {
	var i int
	if _, err := fmt.Sscanf(pod, "web-%d", &i); err != nil {
		return false
	}
	return 1+i%nodes == node
}
