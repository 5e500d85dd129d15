package lab

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nplab/nplab/lab/plane"
)

// collect reads w's events until it has read up to seq or d passes.
func collect(t *testing.T, w *Watcher, seq uint64, d time.Duration) []Event {
	t.Helper()
	var got []Event
	timeout := time.After(d)
	for len(got) == 0 || got[len(got)-1].Seq < seq {
		select {
		case e, ok := <-w.Events:
			if !ok {
				t.Fatalf("watch ended early: %v", w.Err())
			}
			got = append(got, e)
		case <-timeout:
			t.Fatalf("timed out: read up to seq %d, want %d", lastSeq(got), seq)
		}
	}
	return got
}

func lastSeq(evs []Event) uint64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// TestWatchConsistent: while applies, scaling, faults, data plane reports
// and flows run concurrently, a watcher's snapshot plus its events fold to
// exactly the lab's final state, with Seq strictly increasing from the
// snapshot on, no gap and no duplicate; and that state agrees with the
// objects themselves.
func TestWatchConsistent(t *testing.T) {
	dp := &fakeDataPlane{callback: true}
	l, _ := newLab(t, dp)
	l.Apply("default.yaml", DefaultManifest)

	w := l.Watch()
	defer w.Stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 5 {
			l.Scale("web", 2+i%3)
			l.Apply("two.yaml", readFile(t, "two-services.yaml"))
		}
	})
	wg.Go(func() {
		for i := range 200 {
			dp.ctl.Flow(plane.Flow{Protocol: "TCP", EntryNode: fmt.Sprintf("node-%d", 1+i%3), Service: "default/web",
				Pod: fmt.Sprintf("pod-%d", i%4), Result: plane.FlowOK, BytesIn: 10, BytesOut: 20})
		}
	})
	wg.Go(func() {
		for range 10 {
			for _, p := range l.Pods() {
				_ = l.Inject(Fault{Kind: FaultPodUnready, Pod: p.Name})
				dp.ctl.PodReady(p.Name, false)
				dp.ctl.PodReady(p.Name, true)
			}
			dp.ctl.Listening("node-2", []plane.Listener{{Protocol: "TCP", Addr: netip.MustParseAddrPort("0.0.0.0:30080"), Service: "default/web", NodePort: true}})
		}
	})
	wg.Wait()
	waitIdle(t, l)
	final := l.State()
	// The data plane's readiness reports run the endpoints controllers on
	// the controller worker, coalesced (endpointsSoon): once it is idle,
	// the endpoints, the slices, the data plane's last sync and the State
	// (endpoints included) are what a recomputation from every object
	// gives.
	checkIncremental(t, l, dp, "after the race")

	got := collect(t, w, final.Seq, 10*time.Second)
	s := w.State.Clone()
	next := w.State.Seq + 1
	for _, e := range got {
		if e.Seq != next {
			t.Fatalf("event seq %d after %d: want %d (gap or duplicate)", e.Seq, next-1, next)
		}
		next++
		s.Apply(e)
	}
	if !reflect.DeepEqual(s, final) {
		t.Errorf("snapshot + events != final state\nfolded: %+v\nfinal:  %+v", s, final)
	}

	// The state is the objects'.
	var pods []string
	for _, p := range l.Pods() {
		pods = append(pods, p.Name)
		if ps := final.Pods[p.Name]; ps.Ready != podReady(p) || ps.Node != p.Spec.NodeName || ps.IP.String() != p.Status.PodIP {
			t.Errorf("state of pod %s = %+v, object says ready=%v node=%s ip=%s", p.Name, ps, podReady(p), p.Spec.NodeName, p.Status.PodIP)
		}
	}
	if !reflect.DeepEqual(final.PodNames(), sorted(pods)) {
		t.Errorf("state pods %v, objects %v", final.PodNames(), pods)
	}
	var svcs []string
	for _, s := range l.Services() {
		svcs = append(svcs, s.Name)
	}
	if !reflect.DeepEqual(final.ServiceNames(), sorted(svcs)) {
		t.Errorf("state services %v, objects %v", final.ServiceNames(), svcs)
	}
	if n, _ := final.Node("node-2"); len(n.Listeners) != 1 {
		t.Errorf("node-2 listeners = %v, want the one reported", n.Listeners)
	}
	var flows int64
	for _, c := range final.PodCounts("web") {
		flows += c
	}
	if flows != 200 {
		t.Errorf("state counts %d ok flows to web's pods, want 200", flows)
	}
	for _, e := range l.Events() {
		if e.Type == EventUpdated {
			t.Errorf("an object changed with no event saying so: %v", e)
		}
	}
}

func sorted(s []string) []string { sort.Strings(s); return s }

// TestWatchStalledDuringApply: a watcher that stops reading while one
// Apply makes more events than its buffer holds does not hold that Apply
// up: it is dropped with ErrFellBehind in the middle of it, and a watcher
// that reads along gets every event, with no gap.
func TestWatchStalledDuringApply(t *testing.T) {
	l, _ := newLab(t, nil)
	// 1400 NodePort Services: each is applied, gets a clusterIP and a
	// nodePort, so 4200 events, more than WatchBuffer.
	var b strings.Builder
	for i := range 1400 {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d}\nspec: {type: NodePort, selector: {app: x}, ports: [{port: 80}]}\n", i)
	}
	stalled := l.Watch()
	reader := l.Watch()
	defer reader.Stop()
	var read []Event
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for e := range reader.Events {
			read = append(read, e)
			if len(read) == 4200 {
				return
			}
		}
	}()
	done := make(chan []Result)
	go func() { done <- l.Apply("many.yaml", []byte(b.String())) }()
	select {
	case res := <-done:
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("apply: %v", r)
			}
		}
	case <-time.After(time.Minute):
		t.Fatal("Apply blocked behind a watcher that does not read")
	}
	n := 0
	for range stalled.Events {
		n++
	}
	if n != WatchBuffer || !errors.Is(stalled.Err(), ErrFellBehind) {
		t.Errorf("stalled watcher: read %d events then Err %v; want %d then ErrFellBehind", n, stalled.Err(), WatchBuffer)
	}
	select {
	case <-readerDone:
	case <-time.After(time.Minute):
		t.Fatalf("the reading watcher got %d events of 4200", len(read))
	}
	for i, e := range read {
		if e.Seq != reader.State.Seq+1+uint64(i) {
			t.Fatalf("reading watcher: event %d has Seq %d, want %d", i, e.Seq, reader.State.Seq+1+uint64(i))
		}
	}
	if err := reader.Err(); err != nil {
		t.Errorf("the reading watcher was dropped: %v", err)
	}
}

// TestWatchStalled: a watcher that never reads does not slow the lab; once
// its buffer is full it is told it fell behind, and a new Watch starts
// from a fresh snapshot.
func TestWatchStalled(t *testing.T) {
	dp := &fakeDataPlane{callback: true}
	l, _ := newLab(t, dp)
	stalled := l.Watch()
	for range WatchBuffer + 10 {
		dp.ctl.Flow(plane.Flow{Protocol: "UDP", EntryNode: "node-1", Service: "default/web", Result: plane.FlowRefused, Reason: plane.ReasonNoEndpoints})
	}
	done := make(chan struct{})
	go func() {
		l.Apply("default.yaml", DefaultManifest)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Apply blocked behind a watcher that does not read")
	}
	n := 0
	for range stalled.Events {
		n++
	}
	if n != WatchBuffer || !errors.Is(stalled.Err(), ErrFellBehind) {
		t.Errorf("stalled watcher: read %d events then Err %v; want %d then ErrFellBehind", n, stalled.Err(), WatchBuffer)
	}
	waitIdle(t, l)
	again := l.Watch()
	defer again.Stop()
	if got := again.State.Flows[FlowKey{Service: "default/web", Node: "node-1", Protocol: "UDP", Result: plane.FlowRefused}].Count; got != WatchBuffer+10 {
		t.Errorf("new snapshot counts %d refused flows, want %d", got, WatchBuffer+10)
	}
	if len(again.State.Pods) != 3 {
		t.Errorf("new snapshot has %d pods, want 3", len(again.State.Pods))
	}
}

// TestWatchClose: closing the lab ends every watch with ErrLabClosed.
func TestWatchClose(t *testing.T) {
	l, _ := newLab(t, nil)
	w := l.Watch()
	_ = l.Close()
	for range w.Events {
	}
	if !errors.Is(w.Err(), ErrLabClosed) {
		t.Errorf("Err after Close = %v, want ErrLabClosed", w.Err())
	}
	if w2 := l.Watch(); !errors.Is(w2.Err(), ErrLabClosed) {
		t.Errorf("Watch on a closed lab: Err = %v", w2.Err())
	}
}

// TestTypedPayloads: allocations (and their release), rejections, pods
// (scheduled, readiness), faults and endpoints carry typed payloads, not
// just text.
func TestTypedPayloads(t *testing.T) {
	l, _ := newLab(t, nil)
	w := l.Watch()
	defer w.Stop()
	l.Apply("docs.yaml", []byte(`apiVersion: v1
kind: Service
metadata: {name: a}
spec: {type: NodePort, selector: {app: x}, ports: [{port: 80, nodePort: 30080}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {type: NodePort, selector: {app: x}, ports: [{port: 80, nodePort: 30080}]}
`))
	var alloc, rej bool
	for _, e := range collect(t, w, l.State().Seq, 5*time.Second) {
		if a := e.Alloc; a != nil && a.Kind == "NodePort" && a.Value == "30080" && a.Service == "a" && !a.Released {
			alloc = true
		}
		if r := e.Rejection; r != nil && e.Object == "service/b" {
			rej = true
			want := `The Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`
			if r.Text != want || r.Err == nil {
				t.Errorf("rejection = %q (%v), want %q", r.Text, r.Err, want)
			}
		}
		if e.Type == EventApplied && e.Object == "service/a" && (e.Service == nil || e.Service.Ports[0].NodePort != 30080) {
			t.Errorf("applied service/a carries %+v", e.Service)
		}
	}
	if !alloc || !rej {
		t.Errorf("allocation payload seen: %v, rejection payload seen: %v", alloc, rej)
	}

	// Pods: scheduled with a node and an IP, readiness changes; the
	// endpoints that follow; a fault; allocations released on delete.
	if err := l.Delete("service", "", "a"); err != nil { // frees 30080 for web
		t.Fatal(err)
	}
	for _, r := range l.Apply("default.yaml", DefaultManifest) {
		if r.Err != nil {
			t.Fatal(r)
		}
	}
	waitIdle(t, l)
	victim := l.State().PodNames()[0]
	if err := l.Inject(Fault{Kind: FaultPodUnready, Pod: victim}); err != nil {
		t.Fatal(err)
	}
	var scheduled, unready, fault, endpoints int
	var lastEps []plane.Endpoint // the last EndpointsChanged of web
	released := map[string]bool{}
	for _, e := range collect(t, w, l.State().Seq, 5*time.Second) {
		switch {
		case e.Type == EventScheduled:
			if p := e.Pod; p != nil && p.Node != "" && p.IP.IsValid() && p.Deployment == "web" {
				scheduled++
			} else {
				t.Errorf("%v carries pod %+v, want its node, IP and Deployment", e, p)
			}
		case e.Type == EventPodUnready:
			// (ForcedUnready comes with the Fault event that follows.)
			if p := e.Pod; p != nil && p.Name == victim && !p.Ready && p.Phase == corev1.PodRunning {
				unready++
			} else {
				t.Errorf("%v carries pod %+v, want %s Running and not ready", e, p, victim)
			}
		case e.Type == EventFault:
			if f := e.Fault; f != nil && f.Kind == FaultPodUnready && f.Pod == victim && e.Pod != nil && !e.Pod.Ready && e.Pod.ForcedUnready {
				fault++
			} else {
				t.Errorf("%v carries fault %+v, pod %+v", e, f, e.Pod)
			}
		case e.Type == EventEndpoints && e.Object == "endpoints/web":
			if e.Service == nil || len(e.Service.Ports) == 0 {
				t.Errorf("%v carries service %+v, want web's ports and endpoints", e, e.Service)
				continue
			}
			endpoints++
			lastEps = e.Service.Ports[0].Endpoints
		case e.Alloc != nil && e.Alloc.Released:
			released[e.Alloc.Kind+" "+e.Alloc.Value] = e.Alloc.Service == "a"
		}
	}
	if scheduled != 3 || unready != 1 || fault != 1 || endpoints == 0 {
		t.Errorf("events with typed payloads: %d Scheduled (want 3), %d PodUnready (want 1), %d Fault (want 1), %d EndpointsChanged of web (want some)",
			scheduled, unready, fault, endpoints)
	}
	if !released["NodePort 30080"] || len(released) != 2 {
		t.Errorf("released on deleting service a: %v, want its nodePort 30080 and its clusterIP", released)
	}
	if len(lastEps) != 3 || countReady(lastEps) != 2 {
		t.Errorf("the last EndpointsChanged of web carries %+v, want 2 ready of 3", lastEps)
	}
	if ss := l.State().Services["web"]; len(ss.Ports) == 0 || !reflect.DeepEqual(ss.Ports[0].Endpoints, lastEps) {
		t.Errorf("State: web's endpoints %+v, want the last event's", ss.Ports)
	}
}

func countReady(eps []plane.Endpoint) int {
	n := 0
	for _, e := range eps {
		if e.Ready {
			n++
		}
	}
	return n
}

// TestInjectErrors: faults name what they concern.
func TestInjectErrors(t *testing.T) {
	l, _ := newLab(t, nil)
	if err := l.Inject(Fault{Kind: FaultLinkDown, Node: "node-9"}); err == nil || err.Error() != `node "node-9" not found in lab "test"` {
		t.Errorf("unknown node: %v", err)
	}
	if err := l.Inject(Fault{Kind: FaultStopApp, Pod: "nope"}); err == nil || err.Error() != `pods "nope" not found` {
		t.Errorf("unknown pod: %v", err)
	}
	for _, tc := range []struct {
		im   plane.Impairment
		want string
	}{
		{plane.Impairment{LossPercent: 150}, "impair node node-1: loss 150%: must be from 0% to 100%"},
		{plane.Impairment{LossPercent: -1}, "impair node node-1: loss -1%: must be from 0% to 100%"},
		{plane.Impairment{LossPercent: math.NaN()}, "impair node node-1: loss NaN%: must be from 0% to 100%"},
		{plane.Impairment{Delay: -time.Millisecond}, "impair node node-1: delay -1ms: must not be negative"},
		{plane.Impairment{Delay: time.Millisecond, Jitter: -time.Millisecond}, "impair node node-1: jitter -1ms: must not be negative"},
	} {
		// Bad input is named before anything asks for a data plane.
		if err := l.Inject(Fault{Kind: FaultImpair, Node: "node-1", Impairment: tc.im}); err == nil || err.Error() != tc.want {
			t.Errorf("impair %+v: %v, want %q", tc.im, err, tc.want)
		}
	}
	l.Apply("default.yaml", DefaultManifest)
	waitIdle(t, l)
	p := l.Pods()[0].Name
	if err := l.Inject(Fault{Kind: FaultStopApp, Pod: p}); !errors.Is(err, ErrNoDataPlane) {
		t.Errorf("stop app without a data plane: %v", err)
	}
	if err := l.Inject(Fault{Kind: FaultPodUnready, Pod: p}); err != nil {
		t.Fatal(err)
	}
	if ps := l.State().Pods[p]; ps.Ready || !ps.ForcedUnready {
		t.Errorf("after pod-unready: %+v", ps)
	}
}

// TestApplyObjects: an object goes through the same path as a file: a
// changed policy is "configured", an invalid one is kubectl's error.
func TestApplyObjects(t *testing.T) {
	l, _ := newLab(t, nil)
	l.Apply("default.yaml", DefaultManifest)
	svc := l.Services()[1] // web
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if got := resultLines(l.ApplyObjects(svc)); got != "service/web configured\n" {
		t.Errorf("apply a changed object: %q", got)
	}
	if p := l.State().Services["web"].ExternalTrafficPolicy; p != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("policy in the state = %q", p)
	}
	bad := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Port: 80, NodePort: 80}}}}
	want := `The Service "x" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767` + "\n"
	if got := resultLines(l.ApplyObjects(bad)); got != want {
		t.Errorf("apply an invalid object:\n got %q\nwant %q", got, want)
	}
}

// TestScaleErrors: Scale names what is wrong, and a bad count changes
// nothing (spec.replicas is an int32: a larger count must not wrap).
func TestScaleErrors(t *testing.T) {
	l, _ := newLab(t, nil)
	l.Apply("default.yaml", DefaultManifest)
	waitIdle(t, l)
	for _, tc := range []struct {
		name     string
		replicas int
		want     string
	}{
		{"nope", 1, `deployments.apps "nope" not found`},
		{"web", -1, "deployment.apps/web: the replicas count must not be negative (got -1)"},
		{"web", math.MaxInt32 + 1, "deployment.apps/web: the replicas count must be at most 2147483647 (got 2147483648)"},
	} {
		if err := l.Scale(tc.name, tc.replicas); err == nil || err.Error() != tc.want {
			t.Errorf("Scale(%q, %d) = %v, want %q", tc.name, tc.replicas, err, tc.want)
		}
	}
	if d := l.Deployments()[0]; *d.Spec.Replicas != 3 {
		t.Errorf("after refused scales: replicas %d, want 3", *d.Spec.Replicas)
	}
}
