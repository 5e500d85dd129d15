//go:build linux

package nodes

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab/plane"
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

// newCluster starts a root test cluster of n nodes, closed in t.Cleanup.
func newCluster(t testing.TB, n int, mode plane.ProxyMode) (*Cluster, *recorder) {
	t.Helper()
	testenv.RequireRoot(t)
	log := &recorder{}
	lab := labName(t)
	c, err := New(context.Background(), plane.DefaultTopology(lab, n), plane.Options{ProxyMode: mode, ProbeScale: 0.05}, log)
	if err != nil {
		t.Fatalf("New: %v", err)
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
func startPod(t testing.TB, c *Cluster, log *recorder, node int, host int, p *corev1.Pod, wantReady bool) testPod {
	t.Helper()
	nodeName := fmt.Sprintf("node-%d", node)
	ip := podIP(node, host)
	if err := c.StartPod(context.Background(), nodeName, p, ip); err != nil {
		t.Fatalf("StartPod %s: %v", p.Name, err)
	}
	if wantReady {
		log.wait(t, 10*time.Second, "PodReady "+p.Name, ready(p.Name, true))
	}
	return testPod{name: p.Name, node: nodeName, ip: ip}
}

// endpoints makes ready endpoints of pods on port.
func endpoints(port uint16, pods ...testPod) []plane.Endpoint {
	var eps []plane.Endpoint
	for _, p := range pods {
		eps = append(eps, plane.Endpoint{Pod: p.name, Node: p.node, Addr: netip.AddrPortFrom(p.ip, port), Ready: true, Serving: true})
	}
	return eps
}

func nodeAddr(i int, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(plane.NodeIP(i), port)
}

func send(t testing.TB, c *Cluster, r plane.Request) plane.Reply {
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
func fanOut(t testing.TB, c *Cluster, r plane.Request, tries, want int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < tries && len(seen) < want; i++ {
		rep := send(t, c, r)
		if rep.Result != plane.FlowOK {
			t.Fatalf("%s %s from %s: %s (%v)", r.Protocol, r.Target, r.From, rep.Result, rep.Err)
		}
		seen[strings.TrimSpace(rep.Body)]++
	}
	return seen
}

// stopPod stops a pod and waits until the control plane hears it is gone;
// a warning about it fails the test.
func stopPod(t testing.TB, c *Cluster, log *recorder, name string) {
	t.Helper()
	c.StopPod(name, 30*time.Second)
	log.wait(t, 10*time.Second, "PodStopped "+name, func(r record) bool { return r.Kind == recPodStopped && r.Pod == name })
	if log.has(func(r record) bool { return r.Kind == recWarning && r.Pod == name }) {
		t.Errorf("StopPod %s: a warning: %+v", name, log.all())
	}
}

// serveLoopback listens on a loopback TCP port for the test's lifetime and
// runs handle, on a goroutine of its own, for each connection it accepts.
// It returns the address (IPv4, unmapped).
func serveLoopback(t testing.TB, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return unmap(l.Addr().(*net.TCPAddr).AddrPort())
}
