package nodes

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

func ep(pod, node, addr string, ready, serving, terminating bool) plane.Endpoint {
	return plane.Endpoint{Pod: pod, Node: node, Addr: netip.MustParseAddrPort(addr), Ready: ready, Serving: serving, Terminating: terminating}
}

func TestUsableEndpoints(t *testing.T) {
	a := ep("a", "node-1", "10.244.1.10:8080", true, true, false)
	b := ep("b", "node-2", "10.244.2.10:8080", true, true, false)
	unready := ep("u", "node-1", "10.244.1.11:8080", false, false, false)
	termServing := ep("t", "node-2", "10.244.2.11:8080", false, true, true)
	termGone := ep("g", "node-1", "10.244.1.12:8080", false, false, true)
	tests := []struct {
		name string
		eps  []plane.Endpoint
		node string
		want []string
	}{
		{"ready ones only", []plane.Endpoint{b, unready, a, termServing}, "", []string{"a", "b"}},
		{"none ready: serving and terminating", []plane.Endpoint{unready, termServing, termGone}, "", []string{"t"}},
		{"nothing usable", []plane.Endpoint{unready, termGone}, "", nil},
		{"Local: this node's only", []plane.Endpoint{a, b}, "node-2", []string{"b"}},
		{"Local: local terminating beats remote ready", []plane.Endpoint{a, termServing}, "node-2", []string{"t"}},
		{"Local: no local endpoint", []plane.Endpoint{b, termServing}, "node-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := usableEndpoints(tt.eps, tt.node)
			var pods []string
			for _, e := range got {
				pods = append(pods, e.Pod)
			}
			if len(pods) != len(tt.want) {
				t.Fatalf("usable = %v, want %v", pods, tt.want)
			}
			for i := range pods {
				if pods[i] != tt.want[i] {
					t.Fatalf("usable = %v, want %v", pods, tt.want)
				}
			}
		})
	}
}

func TestChooser(t *testing.T) {
	cands := []plane.Endpoint{
		ep("a", "n", "10.0.0.1:80", true, true, false),
		ep("b", "n", "10.0.0.2:80", true, true, false),
		ep("c", "n", "10.0.0.3:80", true, true, false),
	}
	client := netip.MustParseAddr("172.18.0.100")
	now := time.Unix(1000, 0)
	t.Run("random is roughly uniform", func(t *testing.T) {
		ch := newChooser(1)
		counts := map[string]int{}
		for i := 0; i < 3000; i++ {
			e, _ := ch.pick(cands, client, plane.ProxyRandom, 0, now)
			counts[e.Pod]++
		}
		for _, p := range []string{"a", "b", "c"} {
			if counts[p] < 850 || counts[p] > 1150 {
				t.Errorf("random: %v is far from 1000 each", counts)
			}
		}
	})
	t.Run("round robin cycles", func(t *testing.T) {
		ch := newChooser(1)
		var got string
		for i := 0; i < 6; i++ {
			e, _ := ch.pick(cands, client, plane.ProxyRoundRobin, 0, now)
			got += e.Pod
		}
		if got != "abcabc" {
			t.Errorf("round robin = %s, want abcabc", got)
		}
	})
	t.Run("ClientIP affinity sticks until the timeout", func(t *testing.T) {
		ch := newChooser(2)
		first, _ := ch.pick(cands, client, plane.ProxyRandom, 10*time.Second, now)
		for i := 1; i <= 20; i++ {
			e, _ := ch.pick(cands, client, plane.ProxyRandom, 10*time.Second, now.Add(time.Duration(i)*time.Second))
			if e.Pod != first.Pod {
				t.Fatalf("pick %d went to %s, affinity said %s", i, e.Pod, first.Pod)
			}
		}
		// A different client is chosen for independently.
		spread := map[string]bool{}
		for i := 0; i < 50; i++ {
			e, _ := ch.pick(cands, netip.AddrFrom4([4]byte{172, 18, 1, byte(i)}), plane.ProxyRandom, 10*time.Second, now)
			spread[e.Pod] = true
		}
		if len(spread) < 2 {
			t.Errorf("50 clients all went to %v", spread)
		}
		// After the timeout without traffic the choice is free again:
		// over many tries it must leave the old endpoint at least once.
		moved := false
		for i := 0; i < 50 && !moved; i++ {
			e, _ := ch.pick(cands, client, plane.ProxyRandom, 10*time.Second, now.Add(time.Hour*time.Duration(i+1)))
			moved = e.Pod != first.Pod
		}
		if !moved {
			t.Errorf("affinity never expired")
		}
	})
	t.Run("affinity to an endpoint that is gone", func(t *testing.T) {
		ch := newChooser(3)
		first, _ := ch.pick(cands, client, plane.ProxyRandom, time.Hour, now)
		var rest []plane.Endpoint
		for _, e := range cands {
			if e.Pod != first.Pod {
				rest = append(rest, e)
			}
		}
		e, ok := ch.pick(rest, client, plane.ProxyRandom, time.Hour, now)
		if !ok || e.Pod == first.Pod {
			t.Errorf("picked %v, %v after its endpoint left", e.Pod, ok)
		}
	})
	t.Run("no candidates", func(t *testing.T) {
		if _, ok := newChooser(1).pick(nil, client, plane.ProxyRandom, 0, now); ok {
			t.Errorf("pick from nothing succeeded")
		}
	})
}

func TestPodHostName(t *testing.T) {
	long := "web-0123456789012345678901234567890123456789012345678901234567890"
	tests := map[string]string{
		"web-1": "pod-web-1",
		long:    "pod-" + long[:39] + "-" + shortHash(long),
	}
	for in, want := range tests {
		if got := podHostName(in); got != want {
			t.Errorf("podHostName(%q) = %q, want %q", in, got, want)
		}
	}
	if podHostName(long) == podHostName(long+"x") {
		t.Errorf("long names must stay distinct")
	}
}

// BenchmarkEndpointChoice is the endpoint choice of one new connection
// (or UDP flow, or SCTP association), with 3 and 100 endpoints on 10
// nodes, half of them ready:
//
//   - filter+pick filters and sorts the usable endpoints and then picks,
//     as the proxy did per connection before it kept endpointSets;
//   - cached picks from the sets a sync computed (what decide does now).
//
// Both report their allocations; cached allocates nothing.
func BenchmarkEndpointChoice(b *testing.B) {
	client := netip.MustParseAddr("172.18.0.100")
	now := time.Unix(1000, 0)
	for _, n := range []int{3, 100} {
		var eps []plane.Endpoint
		for i := range n {
			node := fmt.Sprintf("node-%d", i%10+1)
			eps = append(eps, plane.Endpoint{Pod: fmt.Sprintf("web-%d", i), Node: node,
				Addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(i%10 + 1), byte(i/10 + 2)}), 8080),
				Ready: i%2 == 0 || n == 3, Serving: true})
		}
		for _, mode := range []struct {
			name     string
			mode     plane.ProxyMode
			affinity time.Duration
		}{{"random", plane.ProxyRandom, 0}, {"roundrobin", plane.ProxyRoundRobin, 0}, {"affinity", plane.ProxyRandom, 3 * time.Hour}} {
			b.Run(fmt.Sprintf("filter+pick/%d/%s", n, mode.name), func(b *testing.B) {
				ch := newChooser(1)
				b.ReportAllocs()
				for b.Loop() {
					if _, ok := ch.pick(usableEndpoints(eps, ""), client, mode.mode, mode.affinity, now); !ok {
						b.Fatal("no endpoint")
					}
				}
			})
			b.Run(fmt.Sprintf("cached/%d/%s", n, mode.name), func(b *testing.B) {
				ch := newChooser(1)
				sets := newEndpointSets(eps, "node-1")
				b.ReportAllocs()
				for b.Loop() {
					if _, ok := ch.pick(sets.all, client, mode.mode, mode.affinity, now); !ok {
						b.Fatal("no endpoint")
					}
				}
			})
		}
	}
}
