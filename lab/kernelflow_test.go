package lab_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// kernelFlowManifest has the three Services a student meets where a
// node's kernel answers instead of a proxy: one whose selector matches no
// pod, the docs' frontend-service (targetPort 8080) in front of nginx
// (which listens on 80), and an externalTrafficPolicy: Local Service whose
// only pod runs on node-2.
const kernelFlowManifest = `
apiVersion: v1
kind: Service
metadata:
  name: empty
spec:
  type: NodePort
  selector:
    app: nobody
  ports:
  - name: http
    port: 80
    targetPort: 8080
    nodePort: 30090
  - name: udp
    protocol: UDP
    port: 81
    targetPort: 8081
    nodePort: 30091
---
apiVersion: v1
kind: Pod
metadata:
  name: frontend-pod
  labels:
    app: frontend
spec:
  nodeName: node-2
  containers:
  - name: frontend
    image: nginx
    ports:
    - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: frontend-service
spec:
  type: NodePort
  selector:
    app: frontend
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30080
---
apiVersion: v1
kind: Pod
metadata:
  name: local-pod
  labels:
    app: local
spec:
  nodeName: node-2
  containers:
  - name: agnhost
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec"]
    ports:
    - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: local
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector:
    app: local
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30085
`

// TestKernelFlowsThroughTheLab: attempts the nodes' kernels answer
// themselves are Flow events on the lab's stream, with the reason, and
// State.Flows counts them under their Service, while the client sees what
// it always saw.
func TestKernelFlowsThroughTheLab(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Config{Name: labName(), Nodes: 2, ProbeScale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for _, res := range l.Apply("kernel.yaml", []byte(kernelFlowManifest)) {
		if res.Err != nil {
			t.Fatalf("apply: %v", res)
		}
	}
	waitFor(t, 20*time.Second, "frontend-pod and local-pod ready", func() bool {
		n := 0
		for _, p := range l.Pods() {
			if isReady(p) {
				n++
			}
		}
		return n == 2
	})
	// Ready in the API server comes before the proxies have the endpoint:
	// WaitIdle returns once the data plane has been given everything.
	if err := l.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Events() {
		if e.Type == lab.EventWarning {
			t.Errorf("warning: %v", e)
		}
	}
	w := l.Watch()
	t.Cleanup(w.Stop)
	node := func(i int) netip.Addr { return l.Nodes()[i-1].IP }

	for _, tc := range []struct {
		name    string
		req     plane.Request
		see     plane.FlowResult
		service string
		reason  plane.FlowReason
	}{
		{"no endpoints (TCP)", plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: netip.AddrPortFrom(node(1), 30090), Message: "/hostname"},
			plane.FlowRefused, "default/empty", plane.ReasonNoEndpoints},
		{"no endpoints (UDP)", plane.Request{From: plane.ClientHost, Protocol: "UDP", Target: netip.AddrPortFrom(node(2), 30091), Message: "hostname"},
			plane.FlowRefused, "default/empty", plane.ReasonNoEndpoints},
		{"nginx behind targetPort 8080", plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: netip.AddrPortFrom(node(1), 30080), Message: "/"},
			plane.FlowRefused, "default/frontend-service", plane.ReasonNoListener},
		{"Local, no pod on node-1", plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: netip.AddrPortFrom(node(1), 30085), Message: "/hostname",
			Timeout: 2500 * time.Millisecond}, plane.FlowTimedOut, "default/local", plane.ReasonLocalPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := l.Send(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Result != tc.see {
				t.Errorf("the client saw %s (%v), want %s", rep.Result, rep.Err, tc.see)
			}
			if rep.Flow == nil || !rep.Flow.Kernel || rep.Flow.Reason != tc.reason {
				t.Errorf("Reply.Flow = %+v, want the kernel's flow (%s)", rep.Flow, tc.reason)
			}
			// The Flow event on the stream.
			var got *plane.Flow
			deadline := time.After(3 * time.Second)
			for got == nil {
				select {
				case e, ok := <-w.Events:
					if !ok {
						t.Fatalf("watch ended: %v", w.Err())
					}
					w.State.Apply(e)
					if e.Type == lab.EventFlow && e.Flow != nil && e.Flow.Client == rep.Local && e.Flow.Protocol == tc.req.Protocol {
						got = e.Flow
					}
				case <-deadline:
					t.Fatalf("no Flow event for %s %s", tc.req.Protocol, rep.Local)
				}
			}
			want := plane.FlowRefused
			if tc.reason == plane.ReasonLocalPolicy {
				want = plane.FlowDropped
			}
			if !got.Kernel || got.Result != want || got.Reason != tc.reason || got.Service != tc.service || got.EntryNode != nodeName(tc.req.Target, l) {
				t.Errorf("Flow event %+v, want the kernel's %s (%s) of %s", got, want, tc.reason, tc.service)
			}
			k := lab.FlowKey{Service: tc.service, Node: got.EntryNode, Protocol: tc.req.Protocol, Result: want}
			if n := w.State.Flows[k].Count; n != 1 {
				t.Errorf("watcher's State.Flows[%+v].Count = %d, want 1", k, n)
			}
			if n := l.State().Flows[k].Count; n != 1 {
				t.Errorf("State().Flows[%+v].Count = %d, want 1", k, n)
			}
		})
	}
}

func nodeName(target netip.AddrPort, l *lab.Lab) string {
	for _, n := range l.Nodes() {
		if n.IP == target.Addr() {
			return n.Name
		}
	}
	return ""
}
