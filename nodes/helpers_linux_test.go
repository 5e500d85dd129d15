package nodes

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nplab/nplab/internal/testenv"
)

// labName is "t" and five random characters, so parallel test runs and
// leftovers never collide.
func labName(t testing.TB) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return "t" + string(b)
}

// eventLog records every event of a cluster.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// wait polls until an event matches or timeout passes.
func (l *eventLog) wait(t testing.TB, timeout time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range l.all() {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event %s within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *eventLog) has(match func(Event) bool) bool {
	for _, e := range l.all() {
		if match(e) {
			return true
		}
	}
	return false
}

// newCluster starts a root test cluster of n nodes, closed in t.Cleanup.
func newCluster(t testing.TB, n int, mode ProxyMode) (*Cluster, *eventLog) {
	t.Helper()
	testenv.RequireRoot(t)
	log := &eventLog{}
	lab := labName(t)
	c, err := NewCluster(context.Background(), Config{
		Topology: DefaultTopology(lab, n), ProxyMode: mode, OnEvent: log.add, ProbeScale: 0.05,
	})
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close lab %s: %v", lab, err)
		}
	})
	return c, log
}

func agnhost(name string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "agnhost", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
			Args:  append([]string{"netexec"}, args...),
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 8081, Protocol: corev1.ProtocolUDP}},
		}}},
	}
}

func withReadiness(p *corev1.Pod, probe corev1.Probe) *corev1.Pod {
	p.Spec.Containers[0].ReadinessProbe = &probe
	return p
}

func httpProbe(path string, port int) corev1.Probe {
	return corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(int32(port))}}}
}

// testPod is a pod the tests start, with its endpoint facts.
type testPod struct {
	name string
	node string
	ip   netip.Addr
}

func podIP(node, host int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 244, byte(node), byte(host)})
}

// startPod starts p on node and waits for it to be ready (if wantReady).
func startPod(t testing.TB, c *Cluster, log *eventLog, node int, host int, p *corev1.Pod, wantReady bool) testPod {
	t.Helper()
	nodeName := fmt.Sprintf("node-%d", node)
	ip := podIP(node, host)
	if err := c.StartPod(context.Background(), nodeName, p, ip); err != nil {
		t.Fatalf("StartPod %s: %v", p.Name, err)
	}
	if wantReady {
		log.wait(t, 10*time.Second, "PodReady "+p.Name, func(e Event) bool { return e.Kind == EventPodReady && e.Pod == p.Name })
	}
	return testPod{name: p.Name, node: nodeName, ip: ip}
}

// endpoints makes ready endpoints of pods on port.
func endpoints(port uint16, pods ...testPod) []Endpoint {
	var eps []Endpoint
	for _, p := range pods {
		eps = append(eps, Endpoint{Pod: p.name, Node: p.node, Addr: netip.AddrPortFrom(p.ip, port), Ready: true, Serving: true})
	}
	return eps
}

func nodeAddr(i int, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 18, 0, byte(1 + i)}), port)
}

func send(t testing.TB, c *Cluster, r Request) Reply {
	t.Helper()
	rep, err := c.Send(context.Background(), r)
	if err != nil {
		t.Fatalf("Send %+v: %v", r, err)
	}
	return rep
}

// fanOut sends up to tries requests and returns how often each body came
// back; it stops once want distinct bodies were seen. Any failed request
// fails the test.
func fanOut(t testing.TB, c *Cluster, r Request, tries, want int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < tries && len(seen) < want; i++ {
		rep := send(t, c, r)
		if rep.Result != FlowOK {
			t.Fatalf("%s %s from %s: %s (%v)", r.Protocol, r.Target, r.From, rep.Result, rep.Err)
		}
		seen[strings.TrimSpace(rep.Body)]++
	}
	return seen
}
