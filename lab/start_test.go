package lab_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	_ "github.com/nplab/nplab/lab/dataplane"
	"github.com/nplab/nplab/lab/plane"
)

func labName() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := []byte("s")
	for range 5 {
		b = append(b, letters[rand.IntN(len(letters))])
	}
	return string(b)
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitFor polls cond every 50ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartDefaultLab runs the default lab for real: the manifests go
// through the control plane, pods start in namespaces, readiness comes back
// from the probes, and the client reaches every pod through every node.
func TestStartDefaultLab(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	r, err := lab.Start(ctx, lab.Config{Name: labName(), ProbeScale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for _, res := range r.Apply("default.yaml", lab.DefaultManifest) {
		if res.Err != nil {
			t.Fatalf("applying the default lab: %v", res)
		}
	}
	waitFor(t, 20*time.Second, "3 ready pods", func() bool {
		n := 0
		for _, p := range r.Pods() {
			if isReady(p) {
				n++
			}
		}
		return n == 3
	})
	// Ready in the API server comes before the proxies have the endpoint:
	// WaitIdle returns once the data plane has been given everything.
	if err := r.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	pods := map[string]string{} // name → node
	for _, p := range r.Pods() {
		pods[p.Name] = p.Spec.NodeName
	}
	var svc *corev1.Service
	for _, s := range r.Services() {
		if s.Name == "web" {
			svc = s
		}
	}
	if svc == nil || svc.Spec.Ports[0].NodePort != 30080 {
		t.Fatalf("service web with nodePort 30080 missing: %+v", svc)
	}

	for _, proto := range []string{"TCP", "UDP"} {
		for _, n := range r.Nodes() {
			seen := map[string]bool{}
			for try := 0; try < 40 && len(seen) < len(pods); try++ {
				req := plane.Request{From: plane.ClientHost, Protocol: proto,
					Target: netip.AddrPortFrom(n.IP, 30080), Message: "/hostname", Timeout: 2 * time.Second}
				if proto == "UDP" {
					req.Message = "hostname"
				}
				rep, err := r.Send(ctx, req)
				if err != nil || rep.Result != plane.FlowOK {
					t.Fatalf("%s via %s: %v %v", proto, n.Name, rep.Result, err)
				}
				name := strings.TrimSpace(rep.Body)
				if _, ok := pods[name]; !ok {
					t.Fatalf("%s via %s answered %q, not one of the pods %v", proto, n.Name, name, pods)
				}
				seen[name] = true
			}
			if len(seen) != len(pods) {
				t.Errorf("%s via %s reached %d of %d pods in 40 tries: %v", proto, n.Name, len(seen), len(pods), seen)
			}
		}
	}

	// Every connection is an event on the lab's one stream.
	flows := 0
	for _, e := range r.Events() {
		if e.Type == lab.EventFlow && strings.Contains(e.Message, "→ pod ") {
			flows++
		}
	}
	if flows == 0 {
		t.Errorf("no Flow events on the lab's stream")
	}

	// Deleting a pod: terminating, then gone once the node agent stopped
	// it; the Deployment replaces it and the new pod answers.
	var victim string
	for name := range pods {
		victim = name
		break
	}
	if err := r.Delete("pod", lab.Namespace, victim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range r.Events() {
				if e.Type != lab.EventFlow {
					t.Log(e)
				}
			}
		}
	})
	waitFor(t, 20*time.Second, "the deleted pod to be gone and a replacement ready", func() bool {
		ready := 0
		for _, p := range r.Pods() {
			if p.Name == victim {
				return false
			}
			if isReady(p) {
				ready++
			}
		}
		return ready == 3
	})
}

// TestWatchWithDataPlane: with pods, probes and proxies running for real,
// and applies, scaling, faults and traffic racing each other, a watcher's
// snapshot plus its events is exactly the lab's state at any later Seq: no
// gap, no duplicate, and the flows counted per pod.
func TestWatchWithDataPlane(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Config{Name: labName(), ProbeScale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	w := l.Watch()
	defer w.Stop()
	l.Apply("default.yaml", lab.DefaultManifest)
	if err := l.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	node1 := netip.AddrPortFrom(l.Nodes()[0].IP, 30080)
	done := make(chan struct{})
	go func() { // traffic, all along
		defer close(done)
		for range 5 {
			_, _ = l.Traffic(ctx, lab.TrafficSpec{Targets: []netip.AddrPort{node1}, Count: 20, Timeout: time.Second})
		}
	}()
	l.Scale("web", 4)
	for _, p := range l.Pods()[:1] {
		_ = l.Inject(lab.Fault{Kind: lab.FaultPodUnready, Pod: p.Name})
	}
	_ = l.Inject(lab.Fault{Kind: lab.FaultLinkDown, Node: "node-3"})
	l.Scale("web", 2)
	_ = l.Inject(lab.Fault{Kind: lab.FaultLinkUp, Node: "node-3"})
	<-done
	if err := l.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	final := l.State()

	s := w.State.Clone()
	next := s.Seq + 1
	timeout := time.After(10 * time.Second)
	for s.Seq < final.Seq {
		select {
		case e, ok := <-w.Events:
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			if e.Seq != next {
				t.Fatalf("seq %d, want %d: a gap or a duplicate", e.Seq, next)
			}
			next++
			s.Apply(e)
		case <-timeout:
			t.Fatalf("events stopped at seq %d, want %d", s.Seq, final.Seq)
		}
	}
	if !reflect.DeepEqual(s, final) {
		t.Errorf("snapshot + events != state at seq %d\nfolded: %+v\nstate:  %+v", final.Seq, s, final)
	}
	var ok int64
	for _, n := range final.PodCounts("web") {
		ok += n
	}
	if ok == 0 {
		t.Errorf("no flow reached a pod: %+v", final.Flows)
	}
	if n, _ := final.Node("node-1"); len(n.Listeners) == 0 {
		t.Errorf("node-1 listens on nothing in the state: %+v", n)
	}
}
