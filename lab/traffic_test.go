package lab

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// sendPlane is a fake data plane whose Send answers from reply and records
// what it was asked and how many requests were in flight at once.
type sendPlane struct {
	*fakeDataPlane
	reply func(n int, r plane.Request) plane.Reply

	smu              sync.Mutex
	reqs             []plane.Request
	inFlight, maxFly int
}

func (s *sendPlane) Send(ctx context.Context, r plane.Request) (plane.Reply, error) {
	s.smu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r)
	s.inFlight++
	s.maxFly = max(s.maxFly, s.inFlight)
	s.smu.Unlock()
	defer func() {
		s.smu.Lock()
		s.inFlight--
		s.smu.Unlock()
	}()
	time.Sleep(2 * time.Millisecond) // long enough for requests to overlap
	return s.reply(n, r), nil
}

func newSendLab(t *testing.T, reply func(int, plane.Request) plane.Reply) (*Lab, *sendPlane) {
	t.Helper()
	sp := &sendPlane{fakeDataPlane: &fakeDataPlane{}, reply: reply}
	l, err := New(Config{Name: "test", Rand: rand.New(rand.NewPCG(1, 2)),
		DataPlane: func(_ context.Context, _ plane.Topology, _ plane.Options, ctl plane.Control) (plane.DataPlane, error) {
			sp.ctl = ctl
			return sp, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, sp
}

// TestTraffic: a burst is counted per pod (ok replies only), per result and
// per entry node from the replies' flows; its defaults are a student's
// curl of /hostname from the outside client; at most Concurrency requests
// are in flight; targets are taken in turn.
func TestTraffic(t *testing.T) {
	node1 := netip.MustParseAddrPort("172.18.0.2:30080")
	node2 := netip.MustParseAddrPort("172.18.0.3:30080")
	pods := []string{"web-a", "web-b", "web-c"}
	l, sp := newSendLab(t, func(n int, r plane.Request) plane.Reply {
		entry := "node-1"
		if r.Target == node2 {
			entry = "node-2"
		}
		if n%10 == 9 { // every tenth is refused by the pod
			return plane.Reply{Result: plane.FlowReset, Flow: &plane.Flow{EntryNode: entry, Pod: pods[n%3], Result: plane.FlowReset, Reason: plane.ReasonPodRefused}}
		}
		return plane.Reply{Result: plane.FlowOK, Flow: &plane.Flow{EntryNode: entry, Pod: pods[n%3], Result: plane.FlowOK}}
	})
	ctx := context.Background()
	res, err := l.Traffic(ctx, TrafficSpec{Targets: []netip.AddrPort{node1, node2}, Count: 30, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 30 {
		t.Errorf("Sent = %d, want 30", res.Sent)
	}
	if want := map[plane.FlowResult]int{plane.FlowOK: 27, plane.FlowReset: 3}; !reflect.DeepEqual(res.PerResult, want) {
		t.Errorf("PerResult = %v, want %v", res.PerResult, want)
	}
	var ok int
	for _, n := range res.PerPod {
		ok += n
	}
	if ok != 27 || len(res.PerPod) != 3 {
		t.Errorf("PerPod = %v: want the 27 ok requests over the 3 pods", res.PerPod)
	}
	if want := map[string]int{"node-1": 15, "node-2": 15}; !reflect.DeepEqual(res.PerNode, want) {
		t.Errorf("PerNode = %v, want %v (the targets in turn)", res.PerNode, want)
	}
	if sp.maxFly > 3 {
		t.Errorf("%d requests in flight at once, Concurrency is 3", sp.maxFly)
	}
	for _, r := range sp.reqs {
		if r.From != plane.ClientHost || r.Protocol != "TCP" || r.Message != "/hostname" {
			t.Fatalf("request %+v: want the defaults, TCP /hostname from %q", r, plane.ClientHost)
		}
	}

	// UDP's default message is netexec's command; Count defaults to 10.
	sp.reqs = nil
	if res, err := l.Traffic(ctx, TrafficSpec{Protocol: "UDP", Targets: []netip.AddrPort{node1}}); err != nil || res.Sent != 10 {
		t.Fatalf("UDP burst: %+v, %v; want 10 sent", res, err)
	}
	if r := sp.reqs[0]; r.Protocol != "UDP" || r.Message != "hostname" {
		t.Errorf("UDP request %+v: want netexec's hostname command", r)
	}

	if _, err := l.Traffic(ctx, TrafficSpec{}); err == nil {
		t.Error("a burst without a target: no error")
	}
	noDP, _ := newLab(t, nil)
	if _, err := noDP.Traffic(ctx, TrafficSpec{Targets: []netip.AddrPort{node1}}); !errors.Is(err, ErrNoDataPlane) {
		t.Errorf("Traffic without a data plane: %v, want ErrNoDataPlane", err)
	}
}

// TestTrafficRate: Rate spaces the requests out (5 at 50/s span at least 4
// intervals of 20ms), and a burst stops early, with what it counted, when
// its context ends.
func TestTrafficRate(t *testing.T) {
	l, sp := newSendLab(t, func(int, plane.Request) plane.Reply { return plane.Reply{Result: plane.FlowOK} })
	target := []netip.AddrPort{netip.MustParseAddrPort("172.18.0.2:30080")}
	start := time.Now()
	res, err := l.Traffic(context.Background(), TrafficSpec{Targets: target, Count: 5, Rate: 50})
	if err != nil || res.Sent != 5 {
		t.Fatalf("rated burst: %+v, %v", res, err)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("5 requests at 50/s took %s, want at least 80ms", d)
	}

	sp.reqs = nil
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err = l.Traffic(ctx, TrafficSpec{Targets: target, Count: 1000, Rate: 20})
	if err != nil {
		t.Fatalf("a burst cut short: %v", err)
	}
	if res.Sent == 0 || res.Sent >= 1000 || res.Sent != len(sp.reqs) {
		t.Errorf("a burst of 1000 at 20/s cut short after 200ms: Sent %d, %d requests made", res.Sent, len(sp.reqs))
	}
	t.Logf("sent %d before the context ended", res.Sent)
}

// TestSendLinkDownFlow: a request that no node can see because a link on
// its way is down is still a Flow, reported by the lab: in the reply, on
// the stream and in the State, with the client's result, the reason and
// the node whose link is down. A request whose links are up but that no
// node reported gets none made up.
func TestSendLinkDownFlow(t *testing.T) {
	l, _ := newSendLab(t, func(_ int, r plane.Request) plane.Reply {
		return plane.Reply{Result: plane.FlowTimedOut, Local: netip.MustParseAddrPort("172.18.0.100:40000")}
	})
	for _, r := range l.Apply("default.yaml", DefaultManifest) {
		if r.Err != nil {
			t.Fatal(r)
		}
	}
	waitIdle(t, l)
	ctx := context.Background()
	node1 := netip.AddrPortFrom(l.Nodes()[0].IP, 30080)
	node2 := netip.AddrPortFrom(l.Nodes()[1].IP, 30080)
	if rep, err := l.Send(ctx, plane.Request{From: plane.ClientHost, Target: node1, Message: "/hostname"}); err != nil || rep.Flow != nil {
		t.Fatalf("links up, no flow reported: %+v, %v; want no flow made up", rep.Flow, err)
	}
	if err := l.Inject(Fault{Kind: FaultLinkDown, Node: "node-1"}); err != nil {
		t.Fatal(err)
	}
	w := l.Watch()
	defer w.Stop()
	rep, err := l.Send(ctx, plane.Request{From: plane.ClientHost, Target: node1, Message: "/hostname"})
	if err != nil {
		t.Fatal(err)
	}
	want := plane.Flow{Protocol: "TCP", Client: rep.Local, EntryNode: "node-1", Frontend: node1, Service: "default/web", PortName: "http",
		Result: plane.FlowTimedOut, Reason: plane.ReasonNodeLinkDown, Detail: "node-1's link is down"}
	f := rep.Flow
	if f == nil {
		t.Fatal("a request to a node whose link is down: no flow")
	}
	got := *f
	got.Start, got.Duration = time.Time{}, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flow\n got %+v\nwant %+v", got, want)
	}
	e := collect(t, w, w.State.Seq+1, 5*time.Second)[0]
	if e.Type != EventFlow || e.Flow == nil || *e.Flow != *f || e.Object != "service/web" {
		t.Errorf("event %v (flow %+v), want the reply's flow on service/web", e, e.Flow)
	}
	if want := "TCP 172.18.0.100:40000 → node-1 172.18.0.2:30080: timed out (node-1's link is down)"; e.Message != want {
		t.Errorf("event line %q, want %q", e.Message, want)
	}
	k := FlowKey{Service: "default/web", Node: "node-1", Protocol: "TCP", Result: plane.FlowTimedOut}
	if n := l.State().Flows[k].Count; n != 1 {
		t.Errorf("State.Flows[%+v] = %d, want 1", k, n)
	}

	// From a pod on the node whose link is down, to another node.
	var pod string
	for _, p := range l.Pods() {
		if p.Spec.NodeName == "node-1" {
			pod = p.Name
		}
	}
	rep, err = l.Send(ctx, plane.Request{From: pod, Protocol: "UDP", Target: node2, Message: "hostname"})
	if err != nil || rep.Flow == nil || rep.Flow.EntryNode != "node-2" || rep.Flow.Detail != "node-1's link is down" || rep.Flow.Protocol != "UDP" {
		t.Errorf("from %s on node-1 to node-2: %+v, %v; want a flow through node-2 saying node-1's link is down", pod, rep.Flow, err)
	}
}
