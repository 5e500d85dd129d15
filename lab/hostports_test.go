package lab

import (
	"strings"
	"testing"
)

// TestSchedulerHostPorts: the scheduler's NodePorts filter keeps two pods
// asking for one hostPort (or a hostNetwork pod's port) off one node, so a
// fourth replica on three nodes stays Pending with the scheduler's message;
// a hostNetwork pod's hostPort defaults to its containerPort and must match
// it.
func TestSchedulerHostPorts(t *testing.T) {
	l, err := New(Config{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res := l.Apply("hp.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: hp
spec:
  replicas: 4
  selector:
    matchLabels: {app: hp}
  template:
    metadata:
      labels: {app: hp}
    spec:
      containers:
      - name: web
        image: nginx
        ports:
        - {containerPort: 80, hostPort: 8080}
---
apiVersion: v1
kind: Pod
metadata:
  name: hn
spec:
  hostNetwork: true
  containers:
  - name: web
    image: nginx
    ports:
    - containerPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: hn-bad
spec:
  hostNetwork: true
  containers:
  - name: web
    image: nginx
    ports:
    - {containerPort: 80, hostPort: 9090}
`))
	if err := l.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := "The Pod \"hn-bad\" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 80: must match `hostPort` when `hostNetwork` is true"
	if got := res[2].String(); got != want {
		t.Errorf("hn-bad: %s\nwant %s", got, want)
	}
	nodes := map[string]int{}
	pending := 0
	for _, p := range l.Pods() {
		if p.Name == "hn" {
			if p.Spec.Containers[0].Ports[0].HostPort != 8080 {
				t.Errorf("hn: hostPort %d, want the containerPort 8080 (defaulted)", p.Spec.Containers[0].Ports[0].HostPort)
			}
		}
		if p.Spec.NodeName == "" {
			pending++
			continue
		}
		nodes[p.Spec.NodeName]++
	}
	// hp's three pods and hn all want 8080/TCP: one per node, two pending.
	for n, c := range nodes {
		if c != 1 {
			t.Errorf("%s has %d pods that want hostPort 8080", n, c)
		}
	}
	if pending != 2 {
		t.Errorf("%d pods pending, want 2", pending)
	}
	var msg string
	for _, e := range l.Events() {
		if e.Type == EventFailedScheduling {
			msg = e.Message
		}
	}
	if want := "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."; msg != want {
		t.Errorf("FailedScheduling %q\nwant %q", msg, want)
	}
	if e := (&UnschedulableError{Nodes: 3}).Error(); !strings.HasPrefix(e, "0/3 nodes are available: 3 Too many pods. ") {
		t.Errorf("all full: %q", e)
	}
}
