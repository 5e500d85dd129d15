//go:build linux

package nodes

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab/plane"
)

// dialPath is netexec's /dial query, as the e2e tests build it.
func dialPath(protocol string, target netip.AddrPort, tries int) string {
	q := url.Values{"request": {"hostname"}, "protocol": {protocol}, "host": {target.Addr().String()},
		"port": {fmt.Sprint(target.Port())}, "tries": {fmt.Sprint(tries)}}
	return "/dial?" + q.Encode()
}

// askDial has pod from's netexec run a /dial (the request reaches it from
// its node, as kubectl exec would not need to) and returns the answer.
func askDial(t *testing.T, c *Cluster, from testPod, path string) plane.Reply {
	t.Helper()
	rep := send(t, c, plane.Request{From: from.node, Protocol: "TCP", Target: netip.AddrPortFrom(from.ip, 8080), Message: path, Timeout: 15 * time.Second})
	if rep.Result != plane.FlowOK {
		t.Fatalf("GET %s on %s: %s %v", path, from.name, rep.Result, rep.Err)
	}
	return rep
}

// TestNetexecDialInPods: /dial from one pod to another, and through a
// ClusterIP, over TCP (HTTP) and UDP, as the e2e tests probe.
func TestNetexecDialInPods(t *testing.T) {
	c, log := newCluster(t, 2, plane.ProxyRandom)
	a := startPod(t, c, log, 1, 10, agnhost("dial-a"), true)
	b := startPod(t, c, log, 2, 10, agnhost("dial-b"), true)
	svcIP := netip.MustParseAddr("10.96.0.30")
	c.SyncServices([]plane.ServicePort{
		{Service: "default/dial-b", Protocol: "TCP", ClusterIP: svcIP, Port: 80, NodePort: 30180, ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, b)},
		{Service: "default/dial-b", Protocol: "UDP", ClusterIP: svcIP, Port: 90, NodePort: 30190, ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8081, b)},
	})
	tests := []struct {
		name, protocol string
		target         netip.AddrPort
	}{
		{"http to a pod", "http", netip.AddrPortFrom(b.ip, 8080)},
		{"udp to a pod", "udp", netip.AddrPortFrom(b.ip, 8081)},
		{"http via the ClusterIP", "http", netip.AddrPortFrom(svcIP, 80)},
		{"udp via the ClusterIP", "udp", netip.AddrPortFrom(svcIP, 90)},
		{"udp via a nodePort", "udp", nodeAddr(1, 30190)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := askDial(t, c, a, dialPath(tt.protocol, tt.target, 2))
			if rep.Body != `{"responses":["dial-b","dial-b"]}` {
				t.Errorf("/dial %s %v = %q", tt.protocol, tt.target, rep.Body)
			}
		})
	}
	t.Run("udp to a port nothing listens on", func(t *testing.T) {
		rep := askDial(t, c, a, dialPath("udp", netip.AddrPortFrom(b.ip, 9999), 1))
		// The pod's kernel answers ICMP port unreachable: the read fails
		// at once, and netexec still answers 200.
		want := `{"errors":["reading from udp connection failed. err:'read udp `
		if rep.Status != 200 || !strings.HasPrefix(rep.Body, want) || !strings.Contains(rep.Body, "connection refused") {
			t.Errorf("/dial udp to a closed port = %d %q", rep.Status, rep.Body)
		}
	})
}

// TestNetexecDialSCTP: /dial over SCTP between pods and through a
// ClusterIP. It runs where the kernel has SCTP (the qemu VM test).
func TestNetexecDialSCTP(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireSCTP(t)
	c, log := newCluster(t, 2, plane.ProxyRandom)
	a := startPod(t, c, log, 1, 10, agnhost("sdial-a"), true)
	p := agnhost("sdial-b", "--sctp-port=8082")
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 8082, Protocol: corev1.ProtocolSCTP})
	b := startPod(t, c, log, 2, 10, p, true)
	svcIP := netip.MustParseAddr("10.96.0.31")
	c.SyncServices([]plane.ServicePort{
		{Service: "default/sdial-b", Protocol: "SCTP", ClusterIP: svcIP, Port: 82, NodePort: 30182, ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8082, b)},
	})
	for _, target := range []netip.AddrPort{netip.AddrPortFrom(b.ip, 8082), netip.AddrPortFrom(svcIP, 82)} {
		if rep := askDial(t, c, a, dialPath("sctp", target, 2)); rep.Body != `{"responses":["sdial-b","sdial-b"]}` {
			t.Errorf("/dial sctp %v = %q", target, rep.Body)
		}
	}
}

// TestNetexecHealthzWithoutUDP: with --udp-port=-1 netexec's /healthz stays
// 412, so a pod probed on it never becomes ready; the same pod with UDP
// does.
func TestNetexecHealthzWithoutUDP(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	probe := httpProbe("/healthz", 8080)
	probe.PeriodSeconds = 1 // 50 ms at ProbeScale 0.05
	startPod(t, c, log, 1, 10, withReadiness(agnhost("hz-udp"), probe), true)
	noUDP := startPod(t, c, log, 1, 11, withReadiness(agnhost("hz-noudp", "--udp-port=-1"), probe), false)
	rep := send(t, c, plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(noUDP.ip, 8080), Message: "/healthz"})
	if rep.Status != 412 {
		t.Errorf("/healthz with --udp-port=-1 = %d, want 412", rep.Status)
	}
	if rep := send(t, c, plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(noUDP.ip, 8080), Message: "/readyz"}); rep.Status != 412 {
		t.Errorf("/readyz with --udp-port=-1 = %d, want 412", rep.Status)
	}
	time.Sleep(time.Second) // twenty probe periods
	if log.has(ready("hz-noudp", true)) {
		t.Errorf("the pod without UDP became ready")
	}
	if ok, _ := c.Ready("hz-noudp"); ok {
		t.Errorf("Ready(hz-noudp) = true")
	}
}

// TestGracePeriodKillsDelayShutdown: --delay-shutdown=60 with
// terminationGracePeriodSeconds: 1 is killed when the grace period ends
// (the kubelet's floor makes that 2 s), not after 60 s; all scaled by
// ProbeScale (0.05: 100 ms, not 3 s).
func TestGracePeriodKillsDelayShutdown(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	p := agnhost("grace", "--delay-shutdown=60")
	one := int64(1)
	p.Spec.TerminationGracePeriodSeconds = &one
	startPod(t, c, log, 1, 10, p, true)
	start := time.Now()
	c.StopPod("grace", time.Second) // the pod's own, as the lab passes it
	r := log.wait(t, 5*time.Second, "PodStopped grace", func(r record) bool { return r.Kind == recPodStopped && r.Pod == "grace" })
	d := r.Time.Sub(start)
	if d < 80*time.Millisecond || d > time.Second {
		t.Errorf("PodStopped after %v; want about 2 s × 0.05 = 100 ms (the grace period), not 60 s × 0.05 = 3 s", d)
	}
	if !log.has(func(r record) bool {
		return r.Kind == recPodNotice && r.Pod == "grace" && strings.Contains(r.Message, "the kubelet killed it")
	}) {
		t.Errorf("no notice that the kubelet killed the app: %+v", log.all())
	}
}

// TestAppExitRestarts: netexec's /exit ends the app; the pod turns unready
// and the kubelet restarts it (restartPolicy Always), or not (Never).
func TestAppExitRestarts(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	always := startPod(t, c, log, 1, 10, agnhost("exit-always"), true)
	never := agnhost("exit-never")
	never.Spec.RestartPolicy = corev1.RestartPolicyNever
	nv := startPod(t, c, log, 1, 11, never, true)
	down := map[string]time.Time{}
	for _, p := range []testPod{always, nv} {
		rep, err := c.Send(context.Background(), plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(p.ip, 8080), Message: "/exit?code=1"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Result == plane.FlowOK {
			t.Errorf("/exit on %s answered %d %q; netexec exits before answering", p.name, rep.Status, rep.Body)
		}
		down[p.name] = log.wait(t, 5*time.Second, "PodReady "+p.name+" false", ready(p.name, false)).Time
	}
	// The first restart is immediate; the pod is ready again.
	log.wait(t, 5*time.Second, "exit-always ready again", func(r record) bool {
		return r.Kind == recPodReady && r.Pod == "exit-always" && r.Ready && r.Time.After(down["exit-always"])
	})
	if rep := send(t, c, plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(always.ip, 8080), Message: "/hostname"}); rep.Body != "exit-always" {
		t.Errorf("after the restart: %s %q", rep.Result, rep.Body)
	}
	if !log.has(func(r record) bool {
		return r.Kind == recPodNotice && r.Pod == "exit-never" && strings.Contains(r.Message, "exited with code 1; restartPolicy Never")
	}) {
		t.Errorf("no notice for exit-never: %+v", log.all())
	}
	if ok, _ := c.Ready("exit-never"); ok {
		t.Errorf("exit-never is ready again under restartPolicy Never")
	}
	stopPod(t, c, log, "exit-always")
	stopPod(t, c, log, "exit-never")
}

// TestUnknownImageWithoutPortWarns: a pod whose image nplab does not know
// and that declares no port runs nothing: a Warning with the pod, not a
// notice.
func TestUnknownImageWithoutPortWarns(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mystery", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/team/app:v1"}}}}
	startPod(t, c, log, 1, 10, p, true)
	if !log.has(func(r record) bool {
		return r.Kind == recWarning && r.Pod == "mystery" && r.Node == "node-1" && strings.Contains(r.Message, "declares no containerPort")
	}) {
		t.Errorf("no Warning for the pod: %+v", log.all())
	}
	if log.has(func(r record) bool { return r.Kind == recPodNotice && r.Pod == "mystery" }) {
		t.Errorf("a notice too: %+v", log.all())
	}
}

// TestTutorialImagesInPods runs the tutorials' images in pods behind
// NodePort Services and curls them from the client, as the tutorials do.
func TestTutorialImagesInPods(t *testing.T) {
	c, log := newCluster(t, 2, plane.ProxyRandom)
	pod := func(name, image string, env ...corev1.EnvVar) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, Env: env}}}}
	}
	tests := []struct {
		pod      *corev1.Pod
		host     int
		port     uint16 // the container port
		nodePort uint16
		check    func(tp testPod, body string) bool
	}{
		{pod("hello-minikube-1", "registry.k8s.io/echoserver:1.10"), 10, 8080, 30201, func(tp testPod, body string) bool {
			return strings.HasPrefix(body, "\n\nHostname: hello-minikube-1\n\nPod Information:\n\t-no pod information available-\n\nServer values:\n\tserver_version=nginx: 1.13.3 - lua: 10008\n\nRequest Information:\n\tclient_address=") &&
				strings.Contains(body, "\trequest_uri=http://172.18.0.2:8080/\n") && strings.HasSuffix(body, "\nRequest Body:\n\t-no body in request-\n")
		}},
		{pod("hello-minikube-2", "kicbase/echo-server:1.0"), 11, 8080, 30202, func(tp testPod, body string) bool {
			return strings.HasPrefix(body, "Request served by hello-minikube-2\n\nHTTP/1.1 GET /\n\nHost: 172.18.0.2:30202\n")
		}},
		{pod("hello-app-1", "us-docker.pkg.dev/google-samples/containers/gke/hello-app:2.0"), 12, 8080, 30203, func(tp testPod, body string) bool {
			return body == "Hello, world!\nVersion: 2.0.0\nHostname: hello-app-1\n"
		}},
		{pod("hello-1", "gcr.io/google-samples/hello-go-gke:1.0"), 13, 80, 30204, func(tp testPod, body string) bool {
			return body == "{\"message\":\"Hello\"}\n"
		}},
		{pod("whoami-1", "traefik/whoami:v1.10", corev1.EnvVar{Name: "WHOAMI_NAME", Value: "iamfoo"}), 14, 80, 30205, func(tp testPod, body string) bool {
			return strings.HasPrefix(body, "Name: iamfoo\nHostname: whoami-1\nIP: 127.0.0.1\nIP: "+tp.ip.String()+"\nRemoteAddr: ") &&
				strings.Contains(body, "\nGET / HTTP/1.1\r\nHost: 172.18.0.2:30205\r\n")
		}},
	}
	var ports []plane.ServicePort
	pods := make([]testPod, len(tests))
	for i, tt := range tests {
		pods[i] = startPod(t, c, log, 1, tt.host, tt.pod, true)
		ports = append(ports, plane.ServicePort{Service: "default/" + tt.pod.Name, Protocol: "TCP",
			ClusterIP: netip.AddrFrom4([4]byte{10, 96, 1, byte(i + 1)}), Port: 8080, NodePort: tt.nodePort,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(tt.port, pods[i])})
	}
	if log.has(func(r record) bool { return r.Kind == recWarning || r.Kind == recPodNotice }) {
		t.Errorf("the tutorial images made notices or warnings: %+v", log.all())
	}
	c.SyncServices(ports)
	for i, tt := range tests {
		t.Run(tt.pod.Spec.Containers[0].Image, func(t *testing.T) {
			rep := send(t, c, plane.Request{From: "client", Protocol: "TCP", Target: nodeAddr(1, tt.nodePort), Message: "/"})
			if rep.Result != plane.FlowOK || rep.Status != 200 || !tt.check(pods[i], rep.Body) {
				t.Errorf("curl %v: %s %d\n%s", nodeAddr(1, tt.nodePort), rep.Result, rep.Status, rep.Body)
			}
		})
	}
}

// TestSecondStopShortensTheGracePeriod: a delete with a shorter
// --grace-period while the pod terminates (StopPod again) cuts the wait
// short; the pod is reported stopped once, without a warning.
func TestSecondStopShortensTheGracePeriod(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	startPod(t, c, log, 1, 10, agnhost("regrace", "--delay-shutdown=60"), true) // 3 s scaled
	start := time.Now()
	c.StopPod("regrace", 30*time.Second)
	time.Sleep(50 * time.Millisecond)
	c.StopPod("regrace", 2*time.Second)  // 100 ms scaled, from the first stop
	c.StopPod("regrace", 20*time.Second) // longer: ignored
	r := log.wait(t, 5*time.Second, "PodStopped regrace", func(r record) bool { return r.Kind == recPodStopped && r.Pod == "regrace" })
	if d := r.Time.Sub(start); d > time.Second {
		t.Errorf("PodStopped after %v; want about 2 s × 0.05 = 100 ms (the shortened grace period), not 3 s", d)
	}
	time.Sleep(100 * time.Millisecond)
	stopped := 0
	for _, r := range log.all() {
		if r.Pod == "regrace" && r.Kind == recPodStopped {
			stopped++
		}
		if r.Pod == "regrace" && r.Kind == recWarning {
			t.Errorf("warning: %s", r.Message)
		}
	}
	if stopped != 1 {
		t.Errorf("PodStopped reported %d times, want once", stopped)
	}
}

// TestExitWhileTerminating: an app that exits during its
// --delay-shutdown ends the pod's termination at once, and the kubelet
// does not restart it.
func TestExitWhileTerminating(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	tp := startPod(t, c, log, 1, 10, agnhost("term-exit", "--delay-shutdown=60"), true) // killed after 30 s × 0.05 = 1.5 s
	start := time.Now()
	c.StopPod("term-exit", 30*time.Second)
	if _, err := c.Send(context.Background(), plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(tp.ip, 8080), Message: "/exit"}); err != nil {
		t.Fatal(err)
	}
	r := log.wait(t, 5*time.Second, "PodStopped term-exit", func(r record) bool { return r.Kind == recPodStopped && r.Pod == "term-exit" })
	if d := r.Time.Sub(start); d > time.Second {
		t.Errorf("PodStopped after %v; the app's exit should end the termination", d)
	}
	if log.has(func(r record) bool {
		return r.Kind == recPodNotice && r.Pod == "term-exit" && strings.Contains(r.Message, "restarts it")
	}) {
		t.Errorf("the kubelet restarted an app of a pod it was stopping: %+v", log.all())
	}
}
