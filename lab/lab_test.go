package lab

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	goldenfile "github.com/nplab/nplab/internal/golden"
	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/plane"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name+".golden"), got)
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newLab(t *testing.T, dp *fakeDataPlane) (*Lab, *clock) {
	t.Helper()
	c := &clock{now: t0}
	cfg := Config{Name: "test", Rand: rand.New(rand.NewPCG(1, 2)), Now: c.Now}
	if dp != nil {
		cfg.DataPlane = dp.factory
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, c
}

// waitIdle waits for the controllers to finish what the calls before it
// queued (Apply, Scale and Delete return before the Deployment's pods
// change).
func waitIdle(t *testing.T, l *Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.WaitIdle(ctx); err != nil {
		t.Fatalf("waiting for the controllers: %v", err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func resultLines(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

// TestDocsManifests applies the manifests of the NodePort notes, in the
// notes' order, to one lab: each gives what a real cluster gives.
func TestDocsManifests(t *testing.T) {
	l, _ := newLab(t, nil)
	var out strings.Builder
	for _, f := range []string{
		"frontend-service.yaml",
		"backend-service.yaml",
		"backend-service-300081.yaml",
		"nodeport-service.yaml",
		"backend-pods.yaml",
		"backend-service-misindented.yaml",
	} {
		out.WriteString("$ kubectl apply -f " + f + "\n")
		out.WriteString(resultLines(l.Apply(f, readFile(t, "docs/"+f))))
	}
	golden(t, "docs-apply", []byte(out.String()))

	// What each line must say, pinned here as well as in the golden file.
	for _, want := range []string{
		"service/frontend-service created\n",
		`The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated` + "\n",
		`The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 300081: provided port is not in the valid range. The range of valid ports is 30000-32767` + "\n",
		`The Service "NodePort-Service" is invalid: metadata.name: Invalid value: "NodePort-Service": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')` + "\n",
		"pod/backend created\n" + `Error from server (AlreadyExists): error when creating "backend-pods.yaml": pods "backend" already exists` + "\n",
		`error: error parsing backend-service-misindented.yaml: error converting YAML to JSON: yaml: line 12: did not find expected '-' indicator` + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if svcs := l.Services(); len(svcs) != 2 || svcs[0].Name != "frontend-service" || svcs[1].Name != "kubernetes" {
		t.Errorf("services %v, want only frontend-service besides kubernetes", svcs)
	}
}

// TestDefaultManifest pins what kubectl would show for the default lab under
// a fixed clock and seeded Rand.
func TestDefaultManifest(t *testing.T) {
	l, c := newLab(t, nil)
	rs := l.Apply("default.yaml", DefaultManifest)
	if got := resultLines(rs); got != "deployment.apps/web created\nservice/web created\n" {
		t.Fatalf("apply:\n%s", got)
	}
	waitIdle(t, l)
	c.Add(5 * time.Minute)
	var b bytes.Buffer
	if _, err := kubectl.GetServicesAndPods(&b, l.Services(), l.Pods(), c.Now(), true); err != nil {
		t.Fatal(err)
	}
	golden(t, "default-get-svc-pods-wide", b.Bytes())
	b.Reset()
	if err := kubectl.GetEndpoints(&b, l.Endpoints(), c.Now()); err != nil {
		t.Fatal(err)
	}
	golden(t, "default-get-endpoints", b.Bytes())
	b.Reset()
	if err := kubectl.DescribeService(&b, service(t, l, "web"), l.EndpointSlices("web")); err != nil {
		t.Fatal(err)
	}
	golden(t, "default-describe-svc-web", b.Bytes())
	b.Reset()
	for _, e := range l.Events() {
		b.WriteString(e.String() + "\n")
	}
	golden(t, "default-events", b.Bytes())

	pods := l.Pods()
	name := regexp.MustCompile(`^web-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	nodesSeen := map[string]bool{}
	for _, p := range pods {
		if !name.MatchString(p.Name) {
			t.Errorf("pod name %q is not <deployment>-<pod-template-hash>-<suffix>", p.Name)
		}
		if p.Labels["app"] != "web" || p.Labels["pod-template-hash"] == "" {
			t.Errorf("pod %s labels = %v", p.Name, p.Labels)
		}
		nodesSeen[p.Spec.NodeName] = true
	}
	if len(pods) != 3 || len(nodesSeen) != 3 {
		t.Errorf("%d pods on %d nodes, want 3 on 3", len(pods), len(nodesSeen))
	}
	// Re-applying the same file changes nothing.
	if got := resultLines(l.Apply("default.yaml", DefaultManifest)); got != "deployment.apps/web unchanged\nservice/web unchanged\n" {
		t.Errorf("re-apply:\n%s", got)
	}
}

func TestApplyConfiguredAndDuplicates(t *testing.T) {
	l, _ := newLab(t, nil)
	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n  ports:\n  - port: 80\n"
	first := l.Apply("a.yaml", []byte(svc))
	if first[0].String() != "service/web created" {
		t.Fatalf("first apply: %s", first[0])
	}
	np := service(t, l, "web").Spec.Ports[0].NodePort
	changed := strings.Replace(svc, "app: web", "app: web2", 1)
	if r := l.Apply("b.yaml", []byte(changed)); r[0].String() != "service/web configured" {
		t.Errorf("changed apply: %s", r[0])
	}
	s := service(t, l, "web")
	if s.Spec.Selector["app"] != "web2" || s.Spec.Ports[0].NodePort != np {
		t.Errorf("after configure: selector %v nodePort %d (want web2, kept %d)", s.Spec.Selector, s.Spec.Ports[0].NodePort, np)
	}
	twice := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: nginx\n---\n" +
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: nginx\n"
	got := resultLines(l.Apply("twice.yaml", []byte(twice)))
	want := "pod/p created\nError from server (AlreadyExists): error when creating \"twice.yaml\": pods \"p\" already exists\n"
	if got != want {
		t.Errorf("same pod twice in one file:\n%s\nwant\n%s", got, want)
	}
	other := strings.Replace(svc, "name: web", "name: other\n  namespace: kube-system", 1)
	if r := l.Apply("ns.yaml", []byte(other)); r[0].String() != `Error from server (NotFound): error when creating "ns.yaml": namespaces "kube-system" not found` {
		t.Errorf("other namespace: %s", r[0])
	}
}

func TestScaleDeleteAndIPReuse(t *testing.T) {
	l, _ := newLab(t, nil)
	l.Apply("default.yaml", DefaultManifest)
	waitIdle(t, l)
	if err := l.Scale("web", 5); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l)
	ips := map[string]string{}
	for _, p := range l.Pods() {
		ips[p.Name] = p.Status.PodIP
	}
	if len(ips) != 5 {
		t.Fatalf("%d pods after scaling to 5", len(ips))
	}
	byNode := map[string]int{}
	for _, p := range l.Pods() {
		byNode[p.Spec.NodeName]++
	}
	if byNode["node-1"] != 2 || byNode["node-2"] != 2 || byNode["node-3"] != 1 {
		t.Errorf("pods per node = %v, want least-pods-first: 2,2,1", byNode)
	}
	if err := l.Scale("web", 2); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l)
	if n := len(l.Pods()); n != 2 {
		t.Errorf("%d pods after scaling to 2", n)
	}
	if ep := webPorts(l.ServicePorts()); len(ep) != 2 || len(ep[0].Endpoints) != 2 {
		t.Errorf("service ports after scale down: %+v", ep)
	}
	// Freed addresses are handed out again, lowest first.
	l.Scale("web", 3)
	waitIdle(t, l)
	used := map[string]bool{}
	for _, p := range l.Pods() {
		used[p.Status.PodIP] = true
	}
	for ip := range used {
		if !strings.HasSuffix(ip, ".2") && !strings.HasSuffix(ip, ".3") {
			t.Errorf("IP %s: freed .2/.3 addresses should be reused first", ip)
		}
	}
	// A deleted pod of a Deployment is replaced at once.
	victim := l.Pods()[0].Name
	if err := l.Delete("pod", "", victim); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l)
	if pods := l.Pods(); len(pods) != 3 || pods[0].Name == victim && pods[1].Name == victim {
		t.Errorf("after deleting %s: %d pods, want 3 with a replacement", victim, len(pods))
	}
	for _, p := range l.Pods() {
		if p.Name == victim {
			t.Errorf("deleted pod %s still listed", victim)
		}
	}
	if err := l.Delete("deploy", "", "web"); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Pods()); n != 0 {
		t.Errorf("%d pods left after deleting the deployment", n)
	}
	if err := l.Delete("svc", "default", "web"); err != nil {
		t.Fatal(err)
	}
	if len(l.Endpoints()) != 0 || len(webPorts(l.ServicePorts())) != 0 {
		t.Errorf("endpoints survived their service")
	}
	err := l.Delete("svc", "", "web")
	if got := kubectl.FormatError(err, "deleting", ""); got != `Error from server (NotFound): services "web" not found` {
		t.Errorf("deleting twice: %s", got)
	}
	var released bool
	for _, e := range l.Events() {
		if e.Type == EventNodePort && e.Message == "nodePort 30080 released" {
			released = true
		}
	}
	if !released {
		t.Errorf("no event for the released nodePort")
	}
}

func TestNodeName(t *testing.T) {
	l, _ := newLab(t, nil)
	pod := func(name, node string) []byte {
		return []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  nodeName: " + node + "\n  containers:\n  - name: c\n    image: nginx\n")
	}
	r := l.Apply("p.yaml", pod("pinned", "node-3"))
	if r[0].Err != nil {
		t.Fatal(r[0])
	}
	p := l.Pods()[0]
	if p.Spec.NodeName != "node-3" || p.Status.PodIP != "10.244.3.2" {
		t.Errorf("pinned pod on %s with %s, want node-3 10.244.3.2", p.Spec.NodeName, p.Status.PodIP)
	}
	r = l.Apply("q.yaml", pod("lost", "node-9"))
	want := `error: pod "lost": spec.nodeName "node-9" is not a node of this lab (nodes: node-1, node-2, node-3)`
	if r[0].String() != want {
		t.Errorf("unknown node:\n%s\nwant\n%s", r[0], want)
	}
	if len(l.Pods()) != 1 {
		t.Errorf("the pod for an unknown node was created")
	}
	// The API server validates before anything is scheduled: a bad name
	// is reported as such, not as the unknown node.
	r = l.Apply("r.yaml", pod("Bad_Name", "node-9"))
	if got := r[0].String(); !strings.HasPrefix(got, `The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain`) {
		t.Errorf("bad name and unknown node: %s", got)
	}
}

// TestMaxPods: a node takes at most MaxPods (kubelet default 110) pods; a
// pod that fits nowhere stays Pending without a node, with the
// scheduler's FailedScheduling message, and is scheduled once room frees.
func TestMaxPods(t *testing.T) {
	l, _ := newLab(t, nil)
	dep := strings.ReplaceAll(deploymentYAML, "REPLICAS", "331")
	if r := l.Apply("d.yaml", []byte(dep)); r[0].Err != nil {
		t.Fatal(r[0])
	}
	waitIdle(t, l)
	var pending []*corev1.Pod
	perNode := map[string]int{}
	for _, p := range l.Pods() {
		if p.Spec.NodeName == "" {
			pending = append(pending, p)
		}
		perNode[p.Spec.NodeName]++
	}
	if len(pending) != 1 || perNode["node-1"] != MaxPods || perNode["node-2"] != MaxPods || perNode["node-3"] != MaxPods {
		t.Fatalf("pending %d, per node %v", len(pending), perNode)
	}
	p := pending[0]
	if p.Status.Phase != corev1.PodPending || p.Status.PodIP != "" {
		t.Errorf("unschedulable pod: phase %s IP %q", p.Status.Phase, p.Status.PodIP)
	}
	want := "0/3 nodes are available: 3 Too many pods. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
	found := false
	for _, e := range l.Events() {
		if e.Type == EventFailedScheduling && e.Object == "pod/"+p.Name && e.Message == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no FailedScheduling event %q for %s", want, p.Name)
	}
	var buf bytes.Buffer
	if err := kubectl.GetPods(&buf, []*corev1.Pod{p}, t0, true); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^` + p.Name + `\s+0/1\s+Pending\s+0\s+\S+\s+<none>\s+<none>`).Match(buf.Bytes()) {
		t.Errorf("get pods -o wide:\n%s", buf.String())
	}
	// Room on a node: the pending pod gets it.
	var victim string
	for _, q := range l.Pods() {
		if q.Spec.NodeName == "node-2" {
			victim = q.Name
			break
		}
	}
	if err := l.Delete("pod", "", victim); err != nil {
		t.Fatal(err)
	}
	got, _ := l.reg.GetPod(Namespace, p.Name)
	if got.Spec.NodeName != "node-2" || got.Status.PodIP == "" {
		t.Errorf("after a pod left node-2 the pending pod is on %q with IP %q", got.Spec.NodeName, got.Status.PodIP)
	}
}

// TestEndpointConditions checks spec §5.5: serving = Ready, terminating =
// deletionTimestamp, ready = publishNotReadyAddresses || (serving && !terminating),
// and targetPort resolution by number and by container port name.
func TestEndpointConditions(t *testing.T) {
	now := metav1.NewTime(t0)
	mk := func(name, ip string, ready, terminating bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
				Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}},
			}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: condStatus(ready)}}},
		}
		if terminating {
			p.DeletionTimestamp = &now
		}
		return p
	}
	pods := []*corev1.Pod{
		mk("ready", "10.244.1.2", true, false),
		mk("unready", "10.244.1.3", false, false),
		mk("term-ready", "10.244.1.4", true, true),
		mk("term-unready", "10.244.1.5", false, true),
		mk("no-ip", "", true, false),
	}
	tests := []struct {
		name    string
		publish bool
		target  intstr.IntOrString
		want    string
	}{
		{"numbered target", false, intstr.FromInt32(9000),
			"ready 10.244.1.2:9000 r=true s=true t=false|unready 10.244.1.3:9000 r=false s=false t=false|term-ready 10.244.1.4:9000 r=false s=true t=true|term-unready 10.244.1.5:9000 r=false s=false t=true|"},
		{"named target", false, intstr.FromString("http"),
			"ready 10.244.1.2:8080 r=true s=true t=false|unready 10.244.1.3:8080 r=false s=false t=false|term-ready 10.244.1.4:8080 r=false s=true t=true|term-unready 10.244.1.5:8080 r=false s=false t=true|"},
		{"publishNotReadyAddresses", true, intstr.FromInt32(80),
			"ready 10.244.1.2:80 r=true s=true t=false|unready 10.244.1.3:80 r=true s=false t=false|term-ready 10.244.1.4:80 r=true s=true t=true|term-unready 10.244.1.5:80 r=true s=false t=true|"},
		{"unknown port name", false, intstr.FromString("grpc"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
				Spec: corev1.ServiceSpec{
					Selector: map[string]string{"app": "web"}, PublishNotReadyAddresses: tt.publish,
					Ports: []corev1.ServicePort{{Name: "p", Port: 80, Protocol: "TCP", TargetPort: tt.target}},
				},
			}
			var got strings.Builder
			for _, sl := range buildSlices(svc, pods, metav1.Time{}) {
				for _, pt := range sl.Ports {
					for _, e := range sl.Endpoints {
						got.WriteString(e.TargetRef.Name + " " + netip.AddrPortFrom(netip.MustParseAddr(e.Addresses[0]), uint16(*pt.Port)).String())
						got.WriteString(" r=" + fmtBool(*e.Conditions.Ready) + " s=" + fmtBool(*e.Conditions.Serving) + " t=" + fmtBool(*e.Conditions.Terminating) + "|")
					}
				}
			}
			if got.String() != tt.want {
				t.Errorf("slices:\n%s\nwant\n%s", got.String(), tt.want)
			}
			// The Endpoints object: terminating pods only with publishNotReadyAddresses.
			ep := buildEndpoints(svc, pods, now)
			var addrs, notReady int
			for _, ss := range ep.Subsets {
				addrs += len(ss.Addresses)
				notReady += len(ss.NotReadyAddresses)
			}
			wantA, wantN := 1, 1
			switch {
			case tt.publish:
				wantA, wantN = 4, 0
			case tt.want == "":
				wantA, wantN = 0, 0
			}
			if addrs != wantA || notReady != wantN {
				t.Errorf("Endpoints: %d ready, %d not ready addresses, want %d, %d", addrs, notReady, wantA, wantN)
			}
		})
	}
}

func fmtBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// fakeDataPlane records calls; with callback set, it reports pods ready from
// inside StartPod and stopped from inside StopPod, as a fast data plane may.
type fakeDataPlane struct {
	mu       sync.Mutex
	ctl      plane.Control
	callback bool
	started  []string
	stopped  []string
	graces   []time.Duration // StopPod's, in the order of stopped
	syncs    [][]plane.ServicePort
}

func (f *fakeDataPlane) StartPod(ctx context.Context, node string, pod *corev1.Pod, ip netip.Addr) error {
	f.mu.Lock()
	f.started = append(f.started, pod.Name+"@"+node+"/"+ip.String())
	f.mu.Unlock()
	if f.callback {
		f.ctl.PodReady(pod.Name, true)
	}
	return nil
}

func (f *fakeDataPlane) StopPod(name string, grace time.Duration) {
	f.mu.Lock()
	f.stopped = append(f.stopped, name)
	f.graces = append(f.graces, grace)
	f.mu.Unlock()
	if f.callback {
		f.ctl.PodStopped(name)
	}
}

func (f *fakeDataPlane) factory(_ context.Context, _ plane.Topology, _ plane.Options, ctl plane.Control) (plane.DataPlane, error) {
	f.ctl = ctl
	return f, nil
}

func (f *fakeDataPlane) Send(context.Context, plane.Request) (plane.Reply, error) {
	return plane.Reply{}, plane.ErrNotSupported
}
func (f *fakeDataPlane) Command(plane.Request) string { return "" }
func (f *fakeDataPlane) Logs(pod, container string, previous bool) ([]plane.LogLine, error) {
	if previous {
		return nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, pod)
	}
	return []plane.LogLine{{Seq: 1, Time: t0, Text: "the log of " + pod + "/" + container}}, nil
}
func (f *fakeDataPlane) SetPodUnready(string, bool) error             { return nil }
func (f *fakeDataPlane) SetAppRunning(string, bool) error             { return nil }
func (f *fakeDataPlane) SetNodeLink(string, bool) error               { return nil }
func (f *fakeDataPlane) SetImpairment(string, plane.Impairment) error { return nil }
func (f *fakeDataPlane) Close() error                                 { return nil }

func (f *fakeDataPlane) SyncServices(ports []plane.ServicePort) {
	f.mu.Lock()
	f.syncs = append(f.syncs, ports)
	f.mu.Unlock()
}

func (f *fakeDataPlane) lastSync() []plane.ServicePort {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.syncs) == 0 {
		return nil
	}
	return f.syncs[len(f.syncs)-1]
}

func readyCount(ports []plane.ServicePort) (ready, all int) {
	for _, e := range webPorts(ports)[0].Endpoints {
		all++
		if e.Ready {
			ready++
		}
	}
	return
}

func TestDataPlaneLifecycle(t *testing.T) {
	dp := &fakeDataPlane{}
	l, _ := newLab(t, dp)
	l.Apply("default.yaml", DefaultManifest)
	waitIdle(t, l)
	if len(dp.started) != 3 {
		t.Fatalf("StartPod called %d times, want 3", len(dp.started))
	}
	if r, a := readyCount(dp.lastSync()); r != 0 || a != 3 {
		t.Errorf("before readiness: %d of %d endpoints ready, want 0 of 3", r, a)
	}
	var b bytes.Buffer
	kubectl.GetPods(&b, l.Pods(), t0, false)
	if !strings.Contains(b.String(), "0/1     Running") {
		t.Errorf("pods before readiness:\n%s", b.String())
	}
	pods := l.Pods()
	for _, p := range pods {
		dp.ctl.PodReady(p.Name, true)
	}
	waitIdle(t, l) // the data plane's reports are the controller worker's work
	if r, _ := readyCount(dp.lastSync()); r != 3 {
		t.Errorf("after readiness: %d endpoints ready, want 3", r)
	}
	// Deleting a pod: terminating (serving, not ready) until the data plane stops it.
	victim := pods[0].Name
	if err := l.Delete("pod", "", victim); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l)
	if len(dp.stopped) != 1 || dp.stopped[0] != victim {
		t.Errorf("StopPod calls = %v, want [%s]", dp.stopped, victim)
	}
	var term *plane.Endpoint
	for _, e := range webPorts(dp.lastSync())[0].Endpoints {
		if e.Pod == victim {
			e := e
			term = &e
		}
	}
	if term == nil || term.Ready || !term.Serving || !term.Terminating {
		t.Errorf("terminating endpoint = %+v, want serving, terminating, not ready", term)
	}
	b.Reset()
	kubectl.GetPods(&b, l.Pods(), t0, false)
	if !strings.Contains(b.String(), victim+"   1/1     Terminating") {
		t.Errorf("pods while terminating:\n%s", b.String())
	}
	dp.ctl.PodStopped(victim)
	for _, p := range l.Pods() {
		if p.Name == victim {
			t.Errorf("pod %s still exists after PodStopped", victim)
		}
	}
}

// TestDataPlaneCallbacks: a data plane that calls back into the lab from
// inside StartPod/StopPod does not deadlock, and its effects land.
func TestDataPlaneCallbacks(t *testing.T) {
	dp := &fakeDataPlane{callback: true}
	l, _ := newLab(t, dp)
	done := make(chan struct{})
	go func() {
		l.Apply("default.yaml", DefaultManifest)
		l.Scale("web", 1)
		waitIdle(t, l)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("deadlock: Apply/Scale did not return")
	}
	if n := len(l.Pods()); n != 1 {
		t.Errorf("%d pods, want 1", n)
	}
	if r, a := readyCount(dp.lastSync()); r != 1 || a != 1 {
		t.Errorf("last sync: %d of %d ready, want 1 of 1", r, a)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{NodePortRange: "30000-2"}, `invalid argument "30000-2" for "--service-node-port-range" flag: end port cannot be less than start port: 30000-2`},
		{Config{NodePortRange: "abc"}, `invalid argument "abc" for "--service-node-port-range" flag: unable to parse port range: abc: strconv.Atoi: parsing "abc": invalid syntax, expected hyphen in port range or a single port number`},
		{Config{ServiceCIDR: "10.96.0.0"}, `invalid argument "10.96.0.0" for "--service-cluster-ip-range" flag: netip.ParsePrefix("10.96.0.0"): no '/'`},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil || err.Error() != tt.want {
			t.Errorf("New(%+v) = %v, want %s", tt.cfg, err, tt.want)
		}
	}
	l, err := New(Config{Name: "x", Nodes: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if n := l.Nodes(); len(n) != 5 || n[4].Name != "node-5" || n[4].PodCIDR.String() != "10.244.5.0/24" {
		t.Errorf("nodes = %+v", n)
	}
}

func TestDeleteFile(t *testing.T) {
	l, _ := newLab(t, nil)
	l.Apply("default.yaml", DefaultManifest)
	got := resultLines(l.DeleteFile("default.yaml", DefaultManifest))
	if got != "deployment.apps \"web\" deleted\nservice \"web\" deleted\n" {
		t.Errorf("delete -f:\n%s", got)
	}
	if len(l.Pods())+len(l.Services())+len(l.Deployments()) != 1 {
		t.Errorf("objects left after delete -f")
	}
}

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: many
spec:
  replicas: REPLICAS
  selector:
    matchLabels:
      app: many
  template:
    metadata:
      labels:
        app: many
    spec:
      containers:
      - name: c
        image: nginx
`

// service returns Service name of the lab, failing the test without it.
func service(t *testing.T, l *Lab, name string) *corev1.Service {
	t.Helper()
	for _, s := range l.Services() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %q", name)
	return nil
}

// webPorts leaves out default/kubernetes, which every lab has (without
// endpoints).
func webPorts(ports []plane.ServicePort) []plane.ServicePort {
	var out []plane.ServicePort
	for _, p := range ports {
		if p.Service != "default/kubernetes" {
			out = append(out, p)
		}
	}
	return out
}

// TestKubernetesServiceInLab: the lab has default/kubernetes from the
// start, without endpoints; applying another is AlreadyExists; deleting it
// brings it back, as kube-apiserver's bootstrap controller does.
func TestKubernetesServiceInLab(t *testing.T) {
	l, _ := newLab(t, nil)
	k := service(t, l, "kubernetes")
	if k.Spec.ClusterIP != "10.96.0.1" || len(l.Endpoints()) != 0 || len(l.EndpointSlices("kubernetes")) != 0 {
		t.Errorf("kubernetes: %s, endpoints %v", k.Spec.ClusterIP, l.Endpoints())
	}
	ports := l.ServicePorts()
	if len(ports) != 1 || ports[0].Service != "default/kubernetes" || ports[0].Port != 443 || ports[0].NodePort != 0 || len(ports[0].Endpoints) != 0 {
		t.Errorf("service ports: %+v", ports)
	}
	mine := "apiVersion: v1\nkind: Service\nmetadata:\n  name: kubernetes\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n"
	want := `Error from server (AlreadyExists): error when creating "k.yaml": services "kubernetes" already exists`
	if r := l.Apply("k.yaml", []byte(mine)); r[0].String() != want {
		t.Errorf("apply kubernetes: %s\nwant %s", r[0], want)
	}
	if err := l.Delete("svc", "", "kubernetes"); err != nil {
		t.Fatal(err)
	}
	if k2 := service(t, l, "kubernetes"); k2.Spec.ClusterIP != "10.96.0.1" || k2.UID == k.UID {
		t.Errorf("kubernetes after delete: %s %s", k2.Spec.ClusterIP, k2.UID)
	}
}

// TestApplyMerge: re-applying merges like kubectl apply's strategic merge
// patch: spec.ports entries match on `port`, so a renamed port keeps its
// allocated nodePort, and the clusterIP stays; "unchanged" means the merge
// changes nothing, so re-applying after Scale restores the replicas.
func TestApplyMerge(t *testing.T) {
	l, _ := newLab(t, nil)
	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n  - name: admin\n    port: 81\n"
	if r := l.Apply("s.yaml", []byte(svc)); r[0].Err != nil {
		t.Fatal(r[0])
	}
	before := service(t, l, "web")
	renamed := strings.Replace(svc, "name: http", "name: web", 1)
	if r := l.Apply("s.yaml", []byte(renamed)); r[0].String() != "service/web configured" {
		t.Fatalf("renamed port: %s", r[0])
	}
	after := service(t, l, "web")
	if after.Spec.Ports[0].Name != "web" || after.Spec.Ports[0].NodePort != before.Spec.Ports[0].NodePort ||
		after.Spec.Ports[1].NodePort != before.Spec.Ports[1].NodePort || after.Spec.ClusterIP != before.Spec.ClusterIP {
		t.Errorf("after renaming: %+v (clusterIP %s), before %+v (clusterIP %s)", after.Spec.Ports, after.Spec.ClusterIP, before.Spec.Ports, before.Spec.ClusterIP)
	}
	if r := l.Apply("s.yaml", []byte(renamed)); r[0].String() != "service/web unchanged" {
		t.Errorf("same manifest again: %s", r[0])
	}

	dep := strings.ReplaceAll(deploymentYAML, "REPLICAS", "2")
	if r := l.Apply("d.yaml", []byte(dep)); r[0].Err != nil {
		t.Fatal(r[0])
	}
	if err := l.Scale("many", 4); err != nil {
		t.Fatal(err)
	}
	if r := l.Apply("d.yaml", []byte(dep)); r[0].String() != "deployment.apps/many configured" {
		t.Errorf("re-apply after scale: %s", r[0])
	}
	waitIdle(t, l)
	if n := len(l.Pods()); n != 2 {
		t.Errorf("%d pods after re-applying replicas: 2", n)
	}
	if r := l.Apply("d.yaml", []byte(dep)); r[0].String() != "deployment.apps/many unchanged" {
		t.Errorf("re-apply again: %s", r[0])
	}
	// replicas in neither the last manifest nor this one: the live value
	// (from kubectl scale) stays.
	noReplicas := strings.Replace(dep, "  replicas: 2\n", "", 1)
	l.Apply("n.yaml", []byte(noReplicas)) // drops replicas: 2 from the last applied → default 1
	if err := l.Scale("many", 3); err != nil {
		t.Fatal(err)
	}
	r := l.Apply("n.yaml", []byte(noReplicas))
	waitIdle(t, l)
	if r[0].String() != "deployment.apps/many unchanged" || len(l.Pods()) != 3 {
		t.Errorf("re-apply without replicas after scale: %s, %d pods", r[0], len(l.Pods()))
	}
}

// TestApplyGenerateName: kubectl apply refuses generateName before it
// sends anything.
func TestApplyGenerateName(t *testing.T) {
	l, _ := newLab(t, nil)
	pod := "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: gen-\nspec:\n  containers:\n  - name: c\n    image: nginx\n"
	r := l.Apply("g.yaml", []byte(pod))
	if want := "error: from gen-: cannot use generate name with apply"; len(r) != 1 || r[0].String() != want {
		t.Errorf("generateName: %v\nwant %s", r, want)
	}
	if len(l.Pods()) != 0 {
		t.Error("a pod was created")
	}
}

// TestEventHistoryIsBounded: a long-running lab with traffic must not grow
// its history without bound, and keeps the newest events.
func TestEventHistoryIsBounded(t *testing.T) {
	l, err := New(Config{Name: "hist"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range MaxHistory * 2 {
		l.record(Event{Type: EventFlow, Object: "service/web", Message: fmt.Sprint(i)})
	}
	ev := l.Events()
	if len(ev) > MaxHistory {
		t.Fatalf("history holds %d events, more than MaxHistory %d", len(ev), MaxHistory)
	}
	if last := ev[len(ev)-1].Message; last != fmt.Sprint(MaxHistory*2-1) {
		t.Errorf("newest event is %q, want %d", last, MaxHistory*2-1)
	}
	for i := 1; i < len(ev); i++ {
		if ev[i].Message == ev[i-1].Message {
			t.Fatalf("history out of order or duplicated at %d: %q", i, ev[i].Message)
		}
	}
}

// TestDeleteGracePeriod: a delete's gracePeriodSeconds, as the API server
// takes it. A shorter one than the pod's sets deletionGracePeriodSeconds
// and the deletionTimestamp when it runs out, and the kubelet gets it;
// deleting the Terminating pod again with a longer one changes nothing and
// does not stop it twice; 0 (--force --grace-period=0) takes it out of the
// API at once, its name free and a replacement made, while its address
// stays taken until the data plane reports it stopped.
func TestDeleteGracePeriod(t *testing.T) {
	dp := &fakeDataPlane{}
	l, c := newLab(t, dp)
	now := c.Now()
	l.Apply("default.yaml", DefaultManifest)
	waitIdle(t, l)
	pods := l.Pods()
	i64 := func(v int64) *int64 { return &v }
	get := func(name string) *corev1.Pod {
		o, err := l.Get("pod", name)
		if err != nil {
			return nil
		}
		return o.(*corev1.Pod)
	}

	a := pods[0].Name
	if err := l.DeleteObject("pod", "", a, WriteOptions{GracePeriodSeconds: i64(5)}); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l)
	p := get(a)
	if p == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 5 ||
		p.DeletionTimestamp == nil || !p.DeletionTimestamp.Time.Equal(now.Add(5*time.Second)) {
		t.Fatalf("after delete --grace-period=5: %+v", p)
	}
	for _, g := range []*int64{i64(10), nil} { // longer, or the pod's own: a no-op
		if err := l.DeleteObject("pod", "", a, WriteOptions{GracePeriodSeconds: g}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.DeleteObject("pod", "", a, WriteOptions{GracePeriodSeconds: i64(2)}); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l)
	if p := get(a); p == nil || *p.DeletionGracePeriodSeconds != 2 || !p.DeletionTimestamp.Time.Equal(now.Add(2*time.Second)) {
		t.Errorf("after a second delete --grace-period=2: %+v", p)
	}
	dp.mu.Lock()
	graces := slices.Clone(dp.graces)
	dp.mu.Unlock()
	if !slices.Equal(graces, []time.Duration{5 * time.Second, 2 * time.Second}) {
		t.Errorf("StopPod grace periods = %v, want [5s 2s] (the longer delete changes nothing)", graces)
	}

	// --force --grace-period=0: gone from the API now, address held.
	b := pods[1].Name
	ip := netip.MustParseAddr(pods[1].Status.PodIP)
	if err := l.DeleteObject("pod", "", b, WriteOptions{GracePeriodSeconds: i64(0)}); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l)
	if get(b) != nil {
		t.Errorf("pod %s still in the API after a delete with grace period 0", b)
	}
	dp.mu.Lock()
	last := dp.graces[len(dp.graces)-1]
	dp.mu.Unlock()
	if last != 30*time.Second {
		t.Errorf("the kubelet got %v for the force-deleted pod, want its own 30s", last)
	}
	if n := len(l.Pods()); n != 4 { // a (terminating), pods[2], two replacements
		t.Errorf("%d pods after the force delete, want 4 (a replacement at once)", n)
	}
	for _, p := range l.Pods() {
		if p.Status.PodIP == ip.String() {
			t.Errorf("pod %s got %s, the address of %s, which is still stopping", p.Name, ip, b)
		}
	}
	dp.ctl.PodStopped(b) // the kubelet is done: the address is free
	waitIdle(t, l)
	l.mu.Lock()
	owner, held := l.ipOwner[ip]
	l.mu.Unlock()
	if held {
		t.Errorf("%s still held by %q after PodStopped", ip, owner)
	}
	if get(a) == nil {
		t.Errorf("PodStopped of %s deleted %s", b, a)
	}
	// Force-deleting the Terminating pod takes it out of the API too.
	if err := l.DeleteObject("pod", "", a, WriteOptions{GracePeriodSeconds: i64(0)}); err != nil {
		t.Fatal(err)
	}
	if get(a) != nil {
		t.Errorf("Terminating pod %s still in the API after --force --grace-period=0", a)
	}
}

// TestDeploymentStatus: the Deployment controller's status, which kubectl
// get deployments (READY, UP-TO-DATE, AVAILABLE), kubectl rollout status
// and kubectl wait --for=condition=Available read, follows the pods: none
// ready, then all, then a new template's rollout.
func TestDeploymentStatus(t *testing.T) {
	dp := &fakeDataPlane{}
	l, _ := newLab(t, dp)
	l.Apply("default.yaml", DefaultManifest)
	waitIdle(t, l)
	status := func() appsv1.DeploymentStatus {
		o, err := l.Get("deployment", "web")
		if err != nil {
			t.Fatal(err)
		}
		return o.(*appsv1.Deployment).Status
	}
	cond := func(st appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType) string {
		for _, c := range st.Conditions {
			if c.Type == typ {
				return string(c.Status) + " " + c.Reason + ": " + c.Message
			}
		}
		return "none"
	}
	st := status()
	hash := ComputeHash(&l.Deployments()[0].Spec.Template)
	if st.ObservedGeneration != 1 || st.Replicas != 3 || st.UpdatedReplicas != 3 || st.ReadyReplicas != 0 || st.AvailableReplicas != 0 || st.UnavailableReplicas != 3 {
		t.Errorf("before readiness: %+v", st)
	}
	if got, want := cond(st, appsv1.DeploymentAvailable), "False MinimumReplicasUnavailable: Deployment does not have minimum availability."; got != want {
		t.Errorf("Available = %q, want %q", got, want)
	}
	if got, want := cond(st, appsv1.DeploymentProgressing), `True NewReplicaSetCreated: Created new replica set "web-`+hash+`"`; got != want {
		t.Errorf("Progressing = %q, want %q", got, want)
	}
	for _, p := range l.Pods() {
		dp.ctl.PodReady(p.Name, true)
	}
	waitIdle(t, l)
	st = status()
	if st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.UnavailableReplicas != 0 {
		t.Errorf("all ready: %+v", st)
	}
	if got, want := cond(st, appsv1.DeploymentAvailable), "True MinimumReplicasAvailable: Deployment has minimum availability."; got != want {
		t.Errorf("Available = %q, want %q", got, want)
	}
	if got, want := cond(st, appsv1.DeploymentProgressing), `True NewReplicaSetAvailable: ReplicaSet "web-`+hash+`" has successfully progressed.`; got != want {
		t.Errorf("Progressing = %q, want %q", got, want)
	}

	// A new template: a rolling update. With 3 replicas, maxSurge 25%
	// rounds up to 1 and maxUnavailable 25% down to 0: one new pod at a
	// time, and an old one goes only once a new one is ready.
	for _, r := range l.Apply("web.yaml", []byte(strings.Replace(string(DefaultManifest), `"--udp-port=8081"]`, `"--udp-port=8081", "--delay-shutdown=1"]`, 1))) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	waitIdle(t, l)
	hash2 := ComputeHash(&l.Deployments()[0].Spec.Template)
	if hash2 == hash {
		t.Fatal("the template did not change")
	}
	rsets := func() []string {
		var got []string
		for _, rs := range l.ReplicaSets() {
			got = append(got, fmt.Sprintf("%s %d/%d", rs.Name, rs.Status.Replicas, *rs.Spec.Replicas))
		}
		return got
	}
	st = status()
	if st.ObservedGeneration != 2 || st.Replicas != 4 || st.UpdatedReplicas != 1 || st.ReadyReplicas != 3 {
		t.Errorf("after a new template: %+v, want 4 pods, 1 updated, 3 ready", st)
	}
	if got, want := cond(st, appsv1.DeploymentProgressing), `True NewReplicaSetCreated: Created new replica set "web-`+hash2+`"`; got != want {
		t.Errorf("Progressing = %q, want %q", got, want)
	}
	if got, want := rsets(), []string{"web-" + hash2 + " 1/1", "web-" + hash + " 3/3"}; !slices.Equal(got, want) && !slices.Equal(got, []string{want[1], want[0]}) {
		t.Errorf("ReplicaSets = %v, want %v", got, want)
	}
	for step := 0; st.UpdatedReplicas < 3 || st.Replicas > 3; step++ {
		if step == 10 {
			t.Fatalf("the rollout did not finish: %+v", st)
		}
		for _, p := range l.Pods() { // the kubelet: the new pods pass their probe
			if p.DeletionTimestamp == nil && !podReady(p) {
				dp.ctl.PodReady(p.Name, true)
			}
		}
		waitIdle(t, l)
		st = status()
		if st.ReadyReplicas < 3 || st.Replicas > 4 {
			t.Errorf("step %d: %d ready of %d pods; a rolling update keeps 3 ready and at most 4", step, st.ReadyReplicas, st.Replicas)
		}
	}
	if got, want := cond(st, appsv1.DeploymentProgressing), `True NewReplicaSetAvailable: ReplicaSet "web-`+hash2+`" has successfully progressed.`; got != want {
		t.Errorf("after the rollout, Progressing = %q, want %q", got, want)
	}
	// The old ReplicaSet stays, at 0, while its pods terminate.
	if got, want := rsets(), []string{"web-" + hash2 + " 3/3", "web-" + hash + " 0/0"}; !slices.Equal(got, want) && !slices.Equal(got, []string{want[1], want[0]}) {
		t.Errorf("after the rollout, ReplicaSets = %v, want %v", got, want)
	}
}

// TestRecreate: strategy Recreate stops every old pod, and starts the new
// ones only once the old are gone.
func TestRecreate(t *testing.T) {
	dp := &fakeDataPlane{}
	l, _ := newLab(t, dp)
	m := strings.Replace(string(DefaultManifest), "replicas: 3", "replicas: 3\n  strategy: {type: Recreate}", 1)
	if !strings.Contains(m, "Recreate") {
		t.Fatal("no strategy in the manifest")
	}
	l.Apply("web.yaml", []byte(m))
	waitIdle(t, l)
	old := l.Pods()
	for _, p := range old {
		dp.ctl.PodReady(p.Name, true)
	}
	waitIdle(t, l)
	l.Apply("web.yaml", []byte(strings.Replace(m, `"--udp-port=8081"]`, `"--udp-port=8081", "--delay-shutdown=1"]`, 1)))
	waitIdle(t, l)
	for _, p := range l.Pods() {
		if p.DeletionTimestamp == nil {
			t.Errorf("pod %s runs while the old pods terminate", p.Name)
		}
	}
	for _, p := range old { // the kubelet is done with them
		dp.ctl.PodStopped(p.Name)
	}
	waitIdle(t, l)
	if n := len(l.Pods()); n != 3 {
		t.Errorf("%d pods once the old ones are gone, want the 3 new", n)
	}
}

// TestLogs: pods/log as the API server answers it: the only container by
// default, a choice to make when there are several, the kubelet's lines.
func TestLogs(t *testing.T) {
	dp := &fakeDataPlane{}
	l, _ := newLab(t, dp)
	two := `apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  initContainers: [{name: setup, image: busybox, command: ["true"]}]
  containers:
  - {name: a, image: nginx}
  - {name: b, image: nginx}
`
	for _, r := range l.Apply("two.yaml", []byte(two)) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	l.Apply("default.yaml", DefaultManifest)
	waitIdle(t, l)
	web := l.Pods()[1].Name
	if lines, err := l.Logs(web, LogOptions{}); err != nil || len(lines) != 1 || lines[0].Text != "the log of "+web+"/agnhost" {
		t.Errorf("Logs(%s) = %+v, %v", web, lines, err)
	}
	for _, tt := range []struct {
		pod  string
		opts LogOptions
		want string
	}{
		{"two", LogOptions{}, "a container name must be specified for pod two, choose one of: [a b] or one of the init containers: [setup]"},
		{"two", LogOptions{Container: "c"}, "container c is not valid for pod two"},
		{"nosuch", LogOptions{}, `pods "nosuch" not found`},
		{web, LogOptions{Previous: true}, `previous terminated container "agnhost" in pod "` + web + `" not found`},
	} {
		if _, err := l.Logs(tt.pod, tt.opts); err == nil || err.Error() != tt.want {
			t.Errorf("Logs(%s, %+v) = %v, want %q", tt.pod, tt.opts, err, tt.want)
		}
	}
	if lines, err := l.Logs("two", LogOptions{Container: "setup"}); err != nil || len(lines) != 1 {
		t.Errorf("an init container's log: %+v %v", lines, err)
	}
}
