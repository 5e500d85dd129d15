package lab_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/plane"
)

// kubeletLab starts a real lab named kubelet<5 letters> (the branch that
// added these tests, so a leftover says whose it is), closed at cleanup.
func kubeletLab(t *testing.T, scale float64) *lab.Lab {
	t.Helper()
	testenv.RequireRoot(t)
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := []byte("kubelet")
	for range 5 {
		b = append(b, letters[rand.IntN(len(letters))])
	}
	r, err := lab.Start(context.Background(), lab.Config{Name: string(b), ProbeScale: scale})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func mustApply(t *testing.T, r *lab.Lab, manifest string) {
	t.Helper()
	for _, res := range r.Apply("test.yaml", []byte(manifest)) {
		if res.Err != nil {
			t.Fatalf("apply: %s", res)
		}
	}
}

// getPods is `kubectl get pods` as the lab prints it (the rows its API
// server serves kubectl): name → [READY, STATUS, RESTARTS].
func getPods(t *testing.T, r *lab.Lab) (map[string][]string, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := kubectl.GetPods(&buf, r.Pods(), time.Now(), false); err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, p := range r.Pods() {
		row := kubectl.PodRow(p, time.Now())
		rows[p.Name] = row[1:4]
	}
	return rows, buf.String()
}

// waitPods polls `kubectl get pods` until cond holds for its rows.
func waitPods(t *testing.T, r *lab.Lab, d time.Duration, what string, cond func(rows map[string][]string) bool) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		rows, table := getPods(t, r)
		if cond(rows) {
			// As on a cluster, a pod is Ready before the endpoints
			// controllers and kube-proxy have caught up (they run on
			// the controller worker): wait for them too.
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			if err := r.WaitIdle(ctx); err != nil {
				t.Fatalf("waiting for the controllers after %s: %v", what, err)
			}
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; kubectl get pods:\n%s", d, what, table)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func deployment(name, image string, args ...string) string {
	a := ""
	if len(args) > 0 {
		a = "\n        args: [" + strings.Join(args, ", ") + "]"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: %[1]s
        image: %[2]s%[3]s
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  type: NodePort
  selector: {app: %[1]s}
  ports:
  - port: 80
    targetPort: 5678
`, name, image, a)
}

// TestCrashLoopBackOff: http-echo without -text exits with code 127 as the
// real program does; `kubectl get pods` shows Error and CrashLoopBackOff
// with a growing restart count, the kubelet's BackOff warning names the
// container, and the fixed Deployment's pod runs and answers.
func TestCrashLoopBackOff(t *testing.T) {
	r := kubeletLab(t, 0.01) // back-off 10 s, 20 s, 40 s ... in 100 ms, 200 ms, 400 ms
	mustApply(t, r, deployment("echo", "hashicorp/http-echo"))
	seen := map[string]bool{}
	rows := waitPods(t, r, 20*time.Second, "CrashLoopBackOff with 3 restarts", func(rows map[string][]string) bool {
		for _, row := range rows {
			seen[row[1]] = true
			if row[1] == "CrashLoopBackOff" && strings.HasPrefix(row[2], "3 (") {
				return true
			}
		}
		return false
	})
	for _, row := range rows {
		if row[0] != "0/1" {
			t.Errorf("READY %s for a crashing pod", row[0])
		}
	}
	if !seen["CrashLoopBackOff"] {
		t.Errorf("never CrashLoopBackOff: saw %v", seen)
	}
	var backOff, exited bool
	for _, e := range r.Events() {
		if e.Type == lab.EventWarning && strings.Contains(e.Message, "Back-off restarting failed container echo in pod echo-") &&
			strings.Contains(e.Message, "back-off 20s restarting failed container=echo") {
			backOff = true
		}
		if strings.Contains(e.Message, "container echo exited with code 127 (Error): Missing -text option!") {
			exited = true
		}
	}
	if !backOff || !exited {
		t.Errorf("events: BackOff warning %v, exit %v", backOff, exited)
	}
	p := r.Pods()[0]
	cs := p.Status.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.LastTerminationState.Terminated == nil ||
		cs.LastTerminationState.Terminated.ExitCode != 127 || p.Status.Phase != "Running" {
		t.Errorf("status: phase %s, container %+v", p.Status.Phase, cs)
	}

	// Fixed: the new pod runs, restarts 0, and answers through the NodePort.
	mustApply(t, r, deployment("echo", "hashicorp/http-echo", `"-text=fixed"`))
	waitPods(t, r, 20*time.Second, "one pod 1/1 Running", func(rows map[string][]string) bool {
		return len(rows) == 1 && func() bool {
			for _, row := range rows {
				return row[0] == "1/1" && row[1] == "Running" && row[2] == "0"
			}
			return false
		}()
	})
	np := r.Services()
	var nodePort int32
	for _, s := range np {
		if s.Name == "echo" {
			nodePort = s.Spec.Ports[0].NodePort
		}
	}
	rep, err := r.Send(context.Background(), plane.Request{From: plane.ClientHost, Protocol: "TCP",
		Target: netip.AddrPortFrom(r.Nodes()[0].IP, uint16(nodePort)), Message: "/", Timeout: 3 * time.Second})
	if err != nil || rep.Result != plane.FlowOK || strings.TrimSpace(rep.Body) != "fixed" {
		t.Errorf("curl the fixed Deployment: %s %q %v", rep.Result, rep.Body, err)
	}
}

// TestInitContainers: a pod's init containers run first (Init:0/2, then
// Init:1/2, then Running); a failing one fails the pod under restartPolicy
// Never (Init:Error, phase Failed) and is restarted with back-off
// otherwise (Init:CrashLoopBackOff).
func TestInitContainers(t *testing.T) {
	r := kubeletLab(t, 0.05)
	mustApply(t, r, `apiVersion: v1
kind: Pod
metadata:
  name: init-ok
spec:
  initContainers:
  - name: wait-a
    image: busybox
    command: ["sh", "-c", "sleep 20"]
  - name: wait-b
    image: busybox
    command: ["sh", "-c", "sleep 20"]
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec"]
---
apiVersion: v1
kind: Pod
metadata:
  name: init-never
spec:
  restartPolicy: Never
  initContainers:
  - name: migrate
    image: busybox
    command: ["sh", "-c", "exit 3"]
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec"]
---
apiVersion: v1
kind: Pod
metadata:
  name: init-always
spec:
  initContainers:
  - name: migrate
    image: busybox
    command: ["false"]
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec"]
`)
	seen := map[string]bool{}
	waitPods(t, r, 20*time.Second, "init-ok Running 1/1", func(rows map[string][]string) bool {
		seen[rows["init-ok"][1]] = true
		return rows["init-ok"][1] == "Running" && rows["init-ok"][0] == "1/1"
	})
	for _, s := range []string{"Init:0/2", "Init:1/2"} {
		if !seen[s] {
			t.Errorf("init-ok was never %s: saw %v", s, seen)
		}
	}
	rows := waitPods(t, r, 20*time.Second, "init-never Init:Error, init-always Init:CrashLoopBackOff", func(rows map[string][]string) bool {
		return rows["init-never"][1] == "Init:Error" && rows["init-always"][1] == "Init:CrashLoopBackOff"
	})
	if rows["init-always"][2] == "0" {
		t.Errorf("init-always: RESTARTS %s", rows["init-always"][2])
	}
	for _, p := range r.Pods() {
		want := map[string]string{"init-ok": "Running", "init-never": "Failed", "init-always": "Pending"}[p.Name]
		if string(p.Status.Phase) != want {
			t.Errorf("%s: phase %s, want %s", p.Name, p.Status.Phase, want)
		}
	}
	// The emulation says what it did not run.
	var note bool
	for _, e := range r.Events() {
		if strings.Contains(e.Message, `init container "wait-a" runs "sh -c sleep 20"; nplab runs no images`) {
			note = true
		}
	}
	if !note {
		t.Errorf("no notice about the emulated init container")
	}
}

// TestTerminatingServes: a deleted pod is Terminating until its grace
// period (terminationGracePeriodSeconds) ends its --delay-shutdown; its
// EndpointSlice endpoint is ready=false, serving=true, terminating=true;
// kube-proxy sends nothing to it while another endpoint is ready, and
// everything once none is.
func TestTerminatingServes(t *testing.T) {
	r := kubeletLab(t, 0.05) // grace 100 s → 5 s
	pod := func(name string, args ...string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {app: term}
spec:
  terminationGracePeriodSeconds: 100
  nodeName: node-1
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: [netexec%s]
---
`, name, strings.Join(append([]string{""}, args...), ", "))
	}
	mustApply(t, r, pod("term-a", "--delay-shutdown=200")+pod("term-b")+`apiVersion: v1
kind: Service
metadata:
  name: term
spec:
  type: NodePort
  selector: {app: term}
  ports:
  - port: 80
    targetPort: 8080
`)
	waitPods(t, r, 20*time.Second, "two pods 1/1 Running", func(rows map[string][]string) bool {
		return len(rows) == 2 && rows["term-a"][0] == "1/1" && rows["term-b"][0] == "1/1"
	})
	var nodePort uint16
	for _, s := range r.Services() {
		if s.Name == "term" {
			nodePort = uint16(s.Spec.Ports[0].NodePort)
		}
	}
	answers := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			rep, err := r.Send(context.Background(), plane.Request{From: plane.ClientHost, Protocol: "TCP",
				Target: netip.AddrPortFrom(r.Nodes()[1].IP, nodePort), Message: "/hostname", Timeout: 2 * time.Second})
			if err != nil || rep.Result != plane.FlowOK {
				got[fmt.Sprintf("%s %v", rep.Result, err)]++
				continue
			}
			got[rep.Body]++
		}
		return got
	}
	deleted := time.Now()
	if err := r.Delete("pod", lab.Namespace, "term-a"); err != nil {
		t.Fatal(err)
	}
	rows, _ := getPods(t, r)
	if rows["term-a"][1] != "Terminating" {
		t.Errorf("term-a after delete: %v, want Terminating", rows["term-a"])
	}
	for _, p := range r.Pods() {
		if p.Name == "term-a" && (p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 100) {
			t.Errorf("deletionGracePeriodSeconds %v, want the pod's 100", p.DeletionGracePeriodSeconds)
		}
	}
	conds := map[string]string{}
	for _, sl := range r.EndpointSlices("term") {
		for _, e := range sl.Endpoints {
			conds[e.TargetRef.Name] = fmt.Sprintf("ready=%v serving=%v terminating=%v", *e.Conditions.Ready, *e.Conditions.Serving, *e.Conditions.Terminating)
		}
	}
	if conds["term-a"] != "ready=false serving=true terminating=true" || conds["term-b"] != "ready=true serving=true terminating=false" {
		t.Errorf("EndpointSlice conditions %v", conds)
	}
	if got := answers(10); got["term-b"] != 10 {
		t.Errorf("with term-b ready, answers %v; want all from term-b", got)
	}
	if err := r.Delete("pod", lab.Namespace, "term-b"); err != nil {
		t.Fatal(err)
	}
	waitPods(t, r, 5*time.Second, "term-b gone", func(rows map[string][]string) bool { _, ok := rows["term-b"]; return !ok })
	if got := answers(5); got["term-a"] != 5 {
		t.Errorf("only term-a left, serving and terminating: answers %v; want all from term-a", got)
	}
	waitPods(t, r, 20*time.Second, "term-a gone", func(rows map[string][]string) bool { return len(rows) == 0 })
	if d := time.Since(deleted); d < 4*time.Second || d > 9*time.Second {
		t.Errorf("term-a went %v after its deletion; want its grace period, 100 s × 0.05 = 5 s (not --delay-shutdown's 10 s)", d)
	}
}

// TestHostNetwork: a hostNetwork pod shares its node's network namespace:
// its IP is the node's, its app listens on the node's address (the client,
// which reaches node IPs only, gets it directly) and answers with the
// node's hostname, and a Service's nodePort reaches it from every node.
func TestHostNetwork(t *testing.T) {
	r := kubeletLab(t, 0.05)
	mustApply(t, r, `apiVersion: v1
kind: Pod
metadata:
  name: hostnet
  labels: {app: hostnet}
spec:
  hostNetwork: true
  nodeName: node-2
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Pod
metadata:
  name: podnet
  labels: {app: podnet}
spec:
  nodeName: node-2
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Service
metadata:
  name: hostnet
spec:
  type: NodePort
  selector: {app: hostnet}
  ports:
  - port: 8080
`)
	waitPods(t, r, 20*time.Second, "both pods 1/1 Running", func(rows map[string][]string) bool {
		return rows["hostnet"][0] == "1/1" && rows["podnet"][0] == "1/1"
	})
	node2 := r.Nodes()[1].IP
	for _, p := range r.Pods() {
		row := kubectl.PodRow(p, time.Now())
		if p.Name == "hostnet" && (row[5] != node2.String() || row[6] != "node-2") {
			t.Errorf("get pods -o wide: hostnet IP %s NODE %s, want the node's IP %s", row[5], row[6], node2)
		}
		if p.Name == "podnet" && row[5] == node2.String() {
			t.Errorf("podnet has the node's IP")
		}
	}
	get := func(target netip.AddrPort) string {
		rep, err := r.Send(context.Background(), plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: target, Message: "/hostname", Timeout: 3 * time.Second})
		if err != nil || rep.Result != plane.FlowOK {
			return fmt.Sprintf("%s %v", rep.Result, err)
		}
		return rep.Body
	}
	// The client reaches the node's IP: the hostNetwork pod's app is there,
	// in the node's namespace, beside podnet's on the same port in its own.
	if got := get(netip.AddrPortFrom(node2, 8080)); got != "node-2" {
		t.Errorf("curl %s:8080 from the client: %q, want the node's hostname node-2", node2, got)
	}
	var nodePort uint16
	for _, s := range r.Services() {
		if s.Name == "hostnet" {
			nodePort = uint16(s.Spec.Ports[0].NodePort)
		}
	}
	for _, n := range r.Nodes() {
		if got := get(netip.AddrPortFrom(n.IP, nodePort)); got != "node-2" {
			t.Errorf("curl %s:%d (nodePort): %q, want node-2", n.IP, nodePort, got)
		}
	}
	for _, sl := range r.EndpointSlices("hostnet") {
		for _, e := range sl.Endpoints {
			if e.Addresses[0] != node2.String() {
				t.Errorf("endpoint address %s, want the node's %s", e.Addresses[0], node2)
			}
		}
	}
}

// TestHostPort: a container's hostPort is mapped on its node as the CNI
// portmap plugin maps it: node IP:hostPort reaches pod IP:containerPort by
// the node's kernel DNAT, the pod sees the client's own address, only that
// node answers (unlike a NodePort), and the mapping goes with the pod.
func TestHostPort(t *testing.T) {
	r := kubeletLab(t, 0.05)
	mustApply(t, r, `apiVersion: v1
kind: Pod
metadata:
  name: hostport
spec:
  nodeName: node-1
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
    ports:
    - containerPort: 8080
      hostPort: 9090
`)
	waitPods(t, r, 20*time.Second, "hostport 1/1 Running", func(rows map[string][]string) bool {
		for _, e := range r.Events() {
			// The data plane builds pods in the background: a failed
			// build is a Warning event (a Failed one before that).
			if (e.Type == lab.EventFailed || e.Type == lab.EventWarning) && strings.Contains(e.Message, "hostPort mappings on") {
				// A kernel without nf_tables (the VM test's loads no
				// netfilter modules) cannot DNAT.
				t.Skipf("this kernel cannot map a hostPort: %s", e.Message)
			}
		}
		return rows["hostport"][0] == "1/1"
	})
	node1, node2 := r.Nodes()[0].IP, r.Nodes()[1].IP
	get := func(from string, target netip.AddrPort, path string) (plane.FlowResult, string) {
		rep, err := r.Send(context.Background(), plane.Request{From: from, Protocol: "TCP", Target: target, Message: path, Timeout: 2 * time.Second})
		if err != nil {
			return plane.FlowError, err.Error()
		}
		return rep.Result, rep.Body
	}
	if res, body := get(plane.ClientHost, netip.AddrPortFrom(node1, 9090), "/hostname"); res != plane.FlowOK || body != "hostport" {
		t.Errorf("curl %s:9090 from the client: %s %q, want hostport", node1, res, body)
	}
	if res, body := get(plane.ClientHost, netip.AddrPortFrom(node1, 9090), "/clientip"); res != plane.FlowOK || !strings.HasPrefix(body, "172.18.0.100:") {
		t.Errorf("the pod saw %s %q; portmap keeps the client's address, 172.18.0.100", res, body)
	}
	if res, body := get("node-1", netip.AddrPortFrom(node1, 9090), "/hostname"); res != plane.FlowOK || body != "hostport" {
		t.Errorf("curl %s:9090 from node-1 itself: %s %q", node1, res, body)
	}
	if res, _ := get(plane.ClientHost, netip.AddrPortFrom(node2, 9090), "/hostname"); res == plane.FlowOK {
		t.Errorf("node-2:9090 answered; a hostPort is only on the pod's node")
	}
	// The client's attempts are flows that say hostPort, on the pod.
	waitFor(t, 5*time.Second, "a hostPort flow event", func() bool {
		for _, e := range r.Events() {
			if e.Type == lab.EventFlow && e.Flow.HostPort && e.Object == "pod/hostport" && e.Flow.Result == plane.FlowOK &&
				strings.Contains(e.Message, "→ node-1 "+node1.String()+":9090 (hostPort) → pod hostport (node-1) ") &&
				strings.HasSuffix(e.Message, "DNAT by node-1's kernel (CNI portmap), pod saw 172.18.0.100") {
				return true
			}
		}
		return false
	})
	if err := r.Delete("pod", lab.Namespace, "hostport"); err != nil {
		t.Fatal(err)
	}
	waitPods(t, r, 10*time.Second, "hostport gone", func(rows map[string][]string) bool { return len(rows) == 0 })
	if res, body := get(plane.ClientHost, netip.AddrPortFrom(node1, 9090), "/hostname"); res == plane.FlowOK {
		t.Errorf("after the pod went, node-1:9090 still answers %q", body)
	}
}
