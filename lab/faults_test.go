package lab_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// farManifest is one agnhost pod on node-2 behind a NodePort Service
// reached through node-1. publishNotReadyAddresses keeps the pod an
// endpoint whatever its readiness, so traffic keeps being sent to it while
// a fault is on, and the flow says what the fault did.
const farManifest = `
apiVersion: v1
kind: Pod
metadata:
  name: far
  labels:
    app: far
spec:
  nodeName: node-2
  containers:
  - name: agnhost
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec"]
---
apiVersion: v1
kind: Service
metadata:
  name: far
spec:
  type: NodePort
  publishNotReadyAddresses: true
  selector:
    app: far
  ports:
  - name: http
    port: 80
    targetPort: 8080
    nodePort: 30081
  - name: udp
    protocol: UDP
    port: 81
    targetPort: 8081
    nodePort: 30082
`

// follow folds w's events into w.State until cond holds for it, for at
// most d.
func follow(t *testing.T, w *lab.Watcher, d time.Duration, what string, cond func(lab.State) bool) {
	t.Helper()
	deadline := time.After(d)
	for !cond(w.State) {
		select {
		case e, ok := <-w.Events:
			if !ok {
				t.Fatalf("waiting for %s: the watch ended: %v", what, w.Err())
			}
			w.State.Apply(e)
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}

// faultEvent folds w's events until the Fault event of kind, and returns it.
func faultEvent(t *testing.T, w *lab.Watcher, kind lab.FaultKind) lab.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-w.Events:
			if !ok {
				t.Fatalf("waiting for the %s event: the watch ended: %v", kind, w.Err())
			}
			w.State.Apply(e)
			if e.Type == lab.EventFault && e.Fault != nil && e.Fault.Kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no Fault event %s on the stream", kind)
		}
	}
}

// TestFaultsThroughTheLab: each typed fault, injected through the lab's
// one command surface on real namespaces, is a Fault event carrying the
// fault and its target's new state, shows in the State, and does to the
// traffic what it does on a cluster, which the reply's flow explains: a
// stopped app resets, a node whose link is down says so (the pod's node
// on the path, or the entry node itself, which no node sees), a rate limit
// works where tc's tbf does, delay and loss work or wrap
// plane.ErrNotSupported naming netem, a deleted pod leaves its Service
// refusing.
func TestFaultsThroughTheLab(t *testing.T) {
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
	w := l.Watch()
	t.Cleanup(w.Stop)
	for _, res := range l.Apply("far.yaml", []byte(farManifest)) {
		if res.Err != nil {
			t.Fatalf("apply: %v", res)
		}
	}
	follow(t, w, 20*time.Second, "pod far ready", func(s lab.State) bool { return s.Pods["far"].Ready })
	if err := l.WaitIdle(ctx); err != nil { // every node's proxy has the endpoint
		t.Fatal(err)
	}
	node1 := l.Nodes()[0].IP
	tcp := plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: netip.AddrPortFrom(node1, 30081), Message: "/hostname", Timeout: 2 * time.Second}
	udp := plane.Request{From: plane.ClientHost, Protocol: "UDP", Target: netip.AddrPortFrom(node1, 30082), Message: "hostname", Timeout: 2 * time.Second}
	// send retries a request that fails for at most 5 tries (a link that
	// just came up may still have a failed neighbour entry).
	sendOK := func(what string, req plane.Request) plane.Reply {
		t.Helper()
		var rep plane.Reply
		for range 5 {
			if rep, err = l.Send(ctx, req); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if rep.Result == plane.FlowOK {
				return rep
			}
		}
		t.Fatalf("%s: %s (%v), flow %+v; want ok", what, rep.Result, rep.Err, rep.Flow)
		return rep
	}
	rep := sendOK("before any fault", tcp)
	if f := rep.Flow; strings.TrimSpace(rep.Body) != "far" || f == nil || f.EntryNode != "node-1" || f.Pod != "far" || f.PodNode != "node-2" {
		t.Fatalf("before any fault: body %q, flow %+v; want far's hostname through node-1", rep.Body, f)
	}
	// The reply's flow is the whole hop: who, where it entered, which pod
	// on which node at which address, the result, bytes each way, how
	// long, and the source the pod saw (node-1's: Cluster policy
	// masquerades).
	far := l.State().Pods["far"]
	if f := rep.Flow; f.Protocol != "TCP" || f.Client != rep.Local || f.Frontend != tcp.Target || f.Service != "default/far" ||
		f.Backend != netip.AddrPortFrom(far.IP, 8080) || f.Result != plane.FlowOK || f.Reason != plane.ReasonNone ||
		f.BytesIn == 0 || f.BytesOut == 0 || f.Duration <= 0 || f.SourceSeen != node1 {
		t.Errorf("the flow of an answered request: %+v (client %v, pod IP %v)", f, rep.Local, far.IP)
	}

	t.Run("stop and start the app", func(t *testing.T) {
		if err := l.Inject(lab.Fault{Kind: lab.FaultStopApp, Pod: "far"}); err != nil {
			t.Fatal(err)
		}
		if e := faultEvent(t, w, lab.FaultStopApp); e.Object != "pod/far" || e.Pod == nil || !e.Pod.AppStopped {
			t.Errorf("stop-app event: %s, pod state %+v; want pod/far with AppStopped", e.Object, e.Pod)
		}
		rep, err := l.Send(ctx, tcp)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Result != plane.FlowReset || rep.Flow == nil || rep.Flow.Reason != plane.ReasonAppStopped {
			t.Errorf("TCP to a stopped app: the client saw %s (%v), flow %+v; want reset, %q", rep.Result, rep.Err, rep.Flow, plane.ReasonAppStopped)
		}
		if err := l.Inject(lab.Fault{Kind: lab.FaultStartApp, Pod: "far"}); err != nil {
			t.Fatal(err)
		}
		if e := faultEvent(t, w, lab.FaultStartApp); e.Pod == nil || e.Pod.AppStopped {
			t.Errorf("start-app event: pod state %+v; want AppStopped false", e.Pod)
		}
		sendOK("TCP after the app started again", tcp)
	})

	t.Run("a node's link down and up", func(t *testing.T) {
		if err := l.Inject(lab.Fault{Kind: lab.FaultLinkDown, Node: "node-2"}); err != nil {
			t.Fatal(err)
		}
		if e := faultEvent(t, w, lab.FaultLinkDown); e.Object != "node/node-2" || e.Node == nil || e.Node.LinkUp {
			t.Errorf("link-down event: %s, node state %+v; want node/node-2 with its link down", e.Object, e.Node)
		}
		if n, _ := l.State().Node("node-2"); n.LinkUp {
			t.Errorf("State: node-2's link is up")
		}
		// What the client sees is what a cluster gives (no answer); the
		// flow says why.
		rep, err := l.Send(ctx, udp)
		if err != nil {
			t.Fatal(err)
		}
		f := rep.Flow
		if rep.Result != plane.FlowTimedOut || f == nil || f.Reason != plane.ReasonNodeLinkDown || f.Detail != "node-2's link is down" || f.Pod != "far" {
			t.Fatalf("UDP to far with node-2's link down: the client saw %s, flow %+v; want timed out, %q", rep.Result, f, plane.ReasonNodeLinkDown)
		}
		if s := lab.FlowString(f); !strings.Contains(s, "node-2's link is down") {
			t.Errorf("the flow's line does not say why: %s", s)
		}
		if err := l.Inject(lab.Fault{Kind: lab.FaultLinkUp, Node: "node-2"}); err != nil {
			t.Fatal(err)
		}
		if e := faultEvent(t, w, lab.FaultLinkUp); e.Node == nil || !e.Node.LinkUp {
			t.Errorf("link-up event: node state %+v; want its link up", e.Node)
		}
		sendOK("UDP after the link came up", udp)
	})

	t.Run("the entry node's own link down", func(t *testing.T) {
		// No node sees the request: the lab reports it, and the client
		// still just times out.
		if err := l.Inject(lab.Fault{Kind: lab.FaultLinkDown, Node: "node-1"}); err != nil {
			t.Fatal(err)
		}
		faultEvent(t, w, lab.FaultLinkDown)
		req := tcp
		req.Timeout = time.Second
		rep, err := l.Send(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		f := rep.Flow
		if rep.Result != plane.FlowTimedOut || f == nil || f.Reason != plane.ReasonNodeLinkDown || f.Detail != "node-1's link is down" ||
			f.EntryNode != "node-1" || f.Service != "default/far" || f.Kernel {
			t.Errorf("TCP to node-1 with its own link down: the client saw %s, flow %+v; want timed out, a flow saying node-1's link is down", rep.Result, f)
		}
		deadline := time.After(5 * time.Second)
		for seen := false; !seen; {
			select {
			case e := <-w.Events:
				w.State.Apply(e)
				seen = e.Type == lab.EventFlow && e.Flow != nil && f != nil && *e.Flow == *f
			case <-deadline:
				t.Fatal("the flow is not on the stream")
			}
		}
		if err := l.Inject(lab.Fault{Kind: lab.FaultLinkUp, Node: "node-1"}); err != nil {
			t.Fatal(err)
		}
		faultEvent(t, w, lab.FaultLinkUp)
		sendOK("TCP after node-1's link came up", tcp)
	})

	t.Run("impair a link", func(t *testing.T) {
		im := plane.Impairment{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, LossPercent: 1}
		switch err := l.Inject(lab.Fault{Kind: lab.FaultImpair, Node: "node-1", Impairment: im}); {
		case err == nil:
			if e := faultEvent(t, w, lab.FaultImpair); e.Node == nil || e.Node.Impairment != im {
				t.Errorf("impair event: node state %+v; want impairment %v", e.Node, im)
			}
			sendOK("TCP through a delayed link", tcp)
		case errors.Is(err, plane.ErrNotSupported) && strings.Contains(err.Error(), "netem") && strings.Contains(err.Error(), "node-1"):
			t.Logf("this kernel has no netem: %v", err)
			if n, _ := l.State().Node("node-1"); !n.Impairment.IsZero() {
				t.Errorf("a refused impairment is in the State: %v", n.Impairment)
			}
		default:
			t.Fatalf("impair node-1: %v; want nil, or an error wrapping plane.ErrNotSupported that names netem and node-1", err)
		}
		// A rate limit alone is tc's tbf, which needs no netem.
		rate := plane.Impairment{RateBitsPerSec: 10_000_000}
		if err := l.Inject(lab.Fault{Kind: lab.FaultImpair, Node: "node-1", Impairment: rate}); err != nil {
			t.Fatalf("a rate limit on node-1: %v", err)
		}
		if e := faultEvent(t, w, lab.FaultImpair); e.Node == nil || e.Node.Impairment != rate {
			t.Errorf("rate limit event: node state %+v; want %v", e.Node, rate)
		}
		sendOK("TCP through a rate-limited link", tcp)
		if err := l.Inject(lab.Fault{Kind: lab.FaultClearImpair, Node: "node-1"}); err != nil {
			t.Fatal(err)
		}
		if e := faultEvent(t, w, lab.FaultClearImpair); e.Node == nil || !e.Node.Impairment.IsZero() {
			t.Errorf("clear-impair event: node state %+v; want a healthy link", e.Node)
		}
	})

	t.Run("delete the pod", func(t *testing.T) {
		if err := l.Inject(lab.Fault{Kind: lab.FaultDeletePod, Pod: "far"}); err != nil {
			t.Fatal(err)
		}
		faultEvent(t, w, lab.FaultDeletePod)
		follow(t, w, 20*time.Second, "pod far gone", func(s lab.State) bool { _, ok := s.Pods["far"]; return !ok })
		if err := l.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err := l.Send(ctx, tcp)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Result != plane.FlowRefused || rep.Flow == nil || rep.Flow.Reason != plane.ReasonNoEndpoints {
			t.Errorf("TCP to far's Service after its pod was deleted: %s, flow %+v; want refused, %q", rep.Result, rep.Flow, plane.ReasonNoEndpoints)
		}
	})

	// The watcher that followed all of it holds what the lab holds, at
	// the same Seq (follow stops at the first event that reaches it).
	final := l.State()
	follow(t, w, 5*time.Second, "the watcher to catch up", func(s lab.State) bool { return s.Seq >= final.Seq })
	if !reflect.DeepEqual(w.State, final) {
		t.Errorf("the watcher's state is not the lab's\nwatcher: %+v\nlab:     %+v", w.State, final)
	}
}
