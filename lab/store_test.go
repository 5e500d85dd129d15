package lab_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// persistName is a unique lab name for these tests (the branch's prefix).
func persistName() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := []byte("persist")
	for range 4 {
		b = append(b, letters[rand.IntN(len(letters))])
	}
	return string(b)
}

// persistManifest: a Deployment behind a NodePort Service with an
// allocated nodePort, one with a requested nodePort, a ClusterIP Service
// and a bare pod on node-2.
const persistManifest = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec", "--http-port=8080", "--udp-port=8081"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: fixed
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 81
    targetPort: 8080
    nodePort: 30007
---
apiVersion: v1
kind: Service
metadata:
  name: inside
spec:
  selector: {app: web}
  ports:
  - port: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: web}
spec:
  nodeName: node-2
  containers:
  - name: agnhost
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
    ports:
    - containerPort: 8080
`

// snapshot is what a student would compare before and after a restart:
// every Service's clusterIP and nodePorts, every pod's node and IP.
type snapshot struct {
	services map[string]string // name → "clusterIP nodePort,nodePort uid"
	pods     map[string]string // name → "node IP"
	ports    map[int32]bool
	podIPs   map[string]bool
}

func snap(l *lab.Lab) snapshot {
	s := snapshot{services: map[string]string{}, pods: map[string]string{}, ports: map[int32]bool{}, podIPs: map[string]bool{}}
	for _, svc := range l.Services() {
		var nps []string
		for _, p := range svc.Spec.Ports {
			nps = append(nps, strconv.Itoa(int(p.NodePort)))
			if p.NodePort != 0 {
				s.ports[p.NodePort] = true
			}
		}
		s.services[svc.Name] = svc.Spec.ClusterIP + " " + strings.Join(nps, ",") + " " + string(svc.UID)
	}
	for _, p := range l.Pods() {
		s.pods[p.Name] = p.Spec.NodeName + " " + p.Status.PodIP
		s.podIPs[p.Status.PodIP] = true
	}
	return s
}

func (s snapshot) same(t *testing.T, after snapshot) {
	t.Helper()
	if fmt.Sprint(s.services) != fmt.Sprint(after.services) {
		t.Errorf("Services after the resume:\n%v\nbefore:\n%v", after.services, s.services)
	}
	if fmt.Sprint(s.pods) != fmt.Sprint(after.pods) {
		t.Errorf("pods after the resume:\n%v\nbefore:\n%v", after.pods, s.pods)
	}
}

func applyOK(t *testing.T, l *lab.Lab, manifest string) []lab.Result {
	t.Helper()
	res := l.Apply("persist.yaml", []byte(manifest))
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("apply: %v", r)
		}
	}
	if err := l.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestResumeControlPlane is the allocator repair test of a control plane
// that restarts: the objects come back from the store with the same
// nodePorts, clusterIPs, UIDs, pod names, nodes and IPs; a Service created
// afterwards never gets a restored nodePort (in a range small enough that
// a fresh allocator would collide), a pod afterwards never a restored IP;
// the same manifest applied again is merged with the restored last-applied
// manifests, as kubectl apply does.
func TestResumeControlPlane(t *testing.T) {
	dir := t.TempDir()
	name := persistName()
	cfg := lab.Config{Name: name, StateDir: dir, NodePortRange: "30000-30039"}
	l1, err := lab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, l1, persistManifest)
	if err := l1.Scale("web", 5); err != nil {
		t.Fatal(err)
	}
	if err := l1.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := snap(l1)
	if len(before.pods) != 6 || len(before.services) != 4 {
		t.Fatalf("before: %d pods, %d services", len(before.pods), len(before.services))
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}

	// A differently seeded lab, as a new process would be: only the store
	// can make it match.
	l2, err := lab.New(lab.Config{Name: name, StateDir: dir, Resume: true, Rand: rand.New(rand.NewPCG(99, 99))})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	before.same(t, snap(l2))
	if got := l2.NodePortRange().String(); got != "30000-30039" {
		t.Errorf("resumed range %s, want the stored 30000-30039", got)
	}
	if d := l2.Deployments(); len(d) != 1 || *d[0].Spec.Replicas != 5 {
		t.Errorf("resumed Deployments %v, want web with 5 replicas", d)
	}
	for _, ep := range l2.Endpoints() {
		if ep.Name == "web" && (len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 6) {
			t.Errorf("endpoints of web after the resume: %+v", ep.Subsets)
		}
	}
	// A new pod on node-2 gets an IP no restored pod has.
	applyOK(t, l2, `
apiVersion: v1
kind: Pod
metadata:
  name: solo2
spec:
  nodeName: node-2
  containers:
  - name: c
    image: nginx
`)
	for _, p := range l2.Pods() {
		if p.Name == "solo2" && before.podIPs[p.Status.PodIP] {
			t.Errorf("new pod solo2 got IP %s, which a restored pod holds", p.Status.PodIP)
		}
	}
	// The same manifest again: kubectl apply's three-way merge with the
	// restored last-applied manifests. The Deployment goes back to the
	// manifest's 3 replicas (as after `kubectl scale`), the rest is
	// unchanged.
	for _, r := range l2.Apply("persist.yaml", []byte(persistManifest)) {
		want := lab.Unchanged
		if r.Kind == "Deployment" {
			want = lab.Configured
		}
		if r.Err != nil || r.Action != want {
			t.Errorf("re-applying after the resume: %v (%s), want %s", r, r.Action, want)
		}
	}
	// Fill the rest of the 40-port range: every new nodePort is free,
	// none is a restored one, and the range ends where it should.
	used := len(before.ports)
	for i := 0; i < 40-used; i++ {
		svc := &corev1.Service{}
		svc.Name = fmt.Sprintf("new-%d", i)
		svc.Spec.Type = corev1.ServiceTypeNodePort
		svc.Spec.Ports = []corev1.ServicePort{{Port: 80}}
		out, err := l2.Create(svc, lab.WriteOptions{})
		if err != nil {
			t.Fatalf("new Service %d of %d after the resume: %v", i+1, 40-used, err)
		}
		np := out.(*corev1.Service).Spec.Ports[0].NodePort
		if before.ports[np] {
			t.Fatalf("new Service %s got nodePort %d, which a restored Service holds", svc.Name, np)
		}
	}
}

// TestResumeRefusals: nothing stored, a different shape, and a fresh lab
// in the same place.
func TestResumeRefusals(t *testing.T) {
	dir := t.TempDir()
	name := persistName()
	if _, err := lab.New(lab.Config{Name: name, StateDir: dir, Resume: true}); !errors.Is(err, lab.ErrNothingToResume) {
		t.Errorf("resume of an empty state dir: %v, want ErrNothingToResume", err)
	}
	l, err := lab.New(lab.Config{Name: name, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, l, persistManifest)
	l.Close()
	_, err = lab.New(lab.Config{Name: name, StateDir: dir, Resume: true, Nodes: 2})
	if err == nil || !strings.Contains(err.Error(), "--nodes 3, not 2") {
		t.Errorf("resume with --nodes 2 of a 3-node lab: %v", err)
	}
	// Not resuming starts clean: the old objects are gone from the store.
	fresh, err := lab.New(lab.Config{Name: name, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fresh.Pods()); n != 0 {
		t.Errorf("a fresh lab has %d pods", n)
	}
	fresh.Close()
	again, err := lab.New(lab.Config{Name: name, StateDir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if n := len(again.Services()); n != 1 {
		t.Errorf("resuming after a fresh start: %d Services, want only kubernetes", n)
	}
}

// The crash test's child: a lab that applies Services one by one and
// prints "ok <name> <nodePort> <clusterIP>" after each Apply returned.
const crashChildEnv = "NPLAB_LAB_CRASH_CHILD"

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child of TestResumeAfterKill")
	}
	resume := lab.HasStoredLab(dir)
	l, err := lab.New(lab.Config{Name: "crash", StateDir: dir, Resume: resume})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	start := len(l.Services())
	out := bufio.NewWriter(os.Stdout)
	for i := start; i < start+5000; i++ {
		m := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s%d"},"spec":{"type":"NodePort","selector":{"app":"web"},"ports":[{"port":80}]}}`, i)
		res := l.Apply("s.json", []byte(m))
		if res[0].Err != nil {
			fmt.Fprintln(out, "error", res[0].Err)
			out.Flush()
			os.Exit(2)
		}
		// And a pod per Service: its status updates are writes too.
		p := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p%d","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`, i)
		if res := l.Apply("p.json", []byte(p)); res[0].Err != nil {
			os.Exit(2)
		}
		o, _ := l.Get("service", fmt.Sprintf("s%d", i))
		svc := o.(*corev1.Service)
		po, _ := l.Get("pod", fmt.Sprintf("p%d", i))
		fmt.Fprintln(out, "ok", svc.Name, svc.Spec.Ports[0].NodePort, svc.Spec.ClusterIP, po.(*corev1.Pod).Status.PodIP)
		out.Flush()
	}
	os.Exit(0)
}

// TestResumeAfterKill kills (SIGKILL) a real lab process in the middle of
// its writes, three times over one state directory: each time the lab
// resumes, and every Service and pod the child had reported created is
// there with the nodePort, clusterIP and pod IP the child saw.
func TestResumeAfterKill(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]string{}
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 5 + rand.IntN(10)
		stop := time.AfterFunc(120*time.Second, func() { cmd.Process.Kill() })
		sc := bufio.NewScanner(stdout)
		seen := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 5 || f[0] != "ok" {
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			acked[f[1]] = strings.Join(f[2:], " ")
			if seen++; seen == killAfter {
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				cmd.Process.Kill()
			}
		}
		stop.Stop()
		_ = cmd.Wait()
		if seen < killAfter {
			t.Fatalf("round %d: the child stopped by itself after %d", round, seen)
		}
		l, err := lab.New(lab.Config{Name: "crash", StateDir: dir, Resume: true})
		if err != nil {
			t.Fatalf("round %d: resuming after SIGKILL: %v", round, err)
		}
		got := map[string]string{}
		for _, svc := range l.Services() {
			got[svc.Name] = fmt.Sprint(svc.Spec.Ports[0].NodePort, " ", svc.Spec.ClusterIP)
		}
		ips := map[string]string{}
		for _, p := range l.Pods() {
			ips[p.Name] = p.Status.PodIP
		}
		for name, want := range acked {
			f := strings.Fields(want)
			if got[name] != f[0]+" "+f[1] {
				t.Fatalf("round %d: Service %s was created as %q and resumed as %q", round, name, f[0]+" "+f[1], got[name])
			}
			if pod := "p" + name[1:]; ips[pod] != f[2] {
				t.Fatalf("round %d: pod %s had IP %s and resumed with %q", round, pod, f[2], ips[pod])
			}
		}
		l.Close()
	}
	t.Logf("3 kills during writes; %d acknowledged Services and pods all resumed", len(acked))
}

// TestResumeWithTraffic is "should work after restarting kube-proxy" for a
// whole lab: a lab with real namespaces stops, starts again with Resume,
// and its Services have the same nodePorts and clusterIPs, its pods the
// same IPs, and a request through every node's NodePort is answered by a
// pod's hostname again.
func TestResumeWithTraffic(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	name := persistName()
	start := func(resume bool) *lab.Lab {
		t.Helper()
		l, err := lab.Start(ctx, lab.Config{Name: name, Nodes: 2, StateDir: dir, Resume: resume, ProbeScale: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	allReady := func(l *lab.Lab) {
		t.Helper()
		waitFor(t, 30*time.Second, "every pod ready", func() bool {
			for _, p := range l.Pods() {
				if !isReady(p) {
					return false
				}
			}
			return len(l.Pods()) == 4
		})
		// And every node's proxy listens on web's nodePort (it does once
		// the Service has ready endpoints).
		svc, _ := l.Get("service", "web")
		np := uint16(svc.(*corev1.Service).Spec.Ports[0].NodePort)
		waitFor(t, 10*time.Second, "every node listening on web's nodePort", func() bool {
			for _, n := range l.State().Nodes {
				if !slices.ContainsFunc(n.Listeners, func(x plane.Listener) bool {
					return x.NodePort && x.Protocol == "TCP" && x.Addr.Port() == np
				}) {
					return false
				}
			}
			return true
		})
	}
	hostnames := func(l *lab.Lab) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		svc, _ := l.Get("service", "web")
		np := uint16(svc.(*corev1.Service).Spec.Ports[0].NodePort)
		for _, n := range l.Nodes() {
			for i := 0; i < 8; i++ {
				rep, err := l.Send(ctx, plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: netip.AddrPortFrom(n.IP, np), Message: "/hostname"})
				if err != nil || rep.Result != plane.FlowOK {
					t.Fatalf("curl %s:%d/hostname: %v %v %v", n.IP, np, rep.Result, rep.Err, err)
				}
				got[rep.Body] = true
			}
		}
		return got
	}
	l1 := start(false)
	applyOK(t, l1, persistManifest)
	allReady(l1)
	before := snap(l1)
	h1 := hostnames(l1)
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := start(true)
	t.Cleanup(func() {
		if err := l2.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	allReady(l2)
	before.same(t, snap(l2))
	h2 := hostnames(l2)
	pods := map[string]bool{}
	for _, p := range l2.Pods() {
		pods[p.Name] = true
	}
	for h := range h2 {
		if !pods[h] {
			t.Errorf("after the resume a request was answered by %q, not a pod of the lab", h)
		}
	}
	t.Logf("before: answered by %v; after the resume: %v", keys(h1), keys(h2))
	// A ClusterIP from inside a pod, as kube-proxy's rules serve it.
	svc, _ := l2.Get("service", "inside")
	cip := netip.MustParseAddr(svc.(*corev1.Service).Spec.ClusterIP)
	rep, err := l2.Send(ctx, plane.Request{From: "solo", Protocol: "TCP", Target: netip.AddrPortFrom(cip, 8080), Message: "/hostname"})
	if err != nil || rep.Result != plane.FlowOK || !pods[rep.Body] {
		t.Errorf("curl %s:8080/hostname from pod solo after the resume: %q %v %v %v", cip, rep.Body, rep.Result, rep.Err, err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// BenchmarkApplyPersistent compares, in one run, applying a Service and a
// Pod to a lab in memory and to a persistent one (every committed write
// fsynced to its store before Apply returns).
func BenchmarkApplyPersistent(b *testing.B) {
	for _, persistent := range []bool{false, true} {
		name := "memory"
		if persistent {
			name = "persistent"
		}
		b.Run(name, func(b *testing.B) {
			cfg := lab.Config{Name: "bench"}
			if persistent {
				cfg.StateDir = b.TempDir()
			}
			l, err := lab.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			for i := 0; b.Loop(); i++ {
				m := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s%d"},"spec":{"selector":{"app":"b%d"},"ports":[{"port":80}]}}`, i, i)
				p := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p%d","labels":{"app":"b%d"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`, i, i)
				if r := l.Apply("b.json", []byte(m)); r[0].Err != nil {
					b.Fatal(r[0].Err)
				}
				if r := l.Apply("b.json", []byte(p)); r[0].Err != nil {
					b.Fatal(r[0].Err)
				}
			}
		})
	}
}
