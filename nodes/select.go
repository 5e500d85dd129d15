package nodes

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// usableEndpoints returns the endpoints kube-proxy would send new traffic
// to (spec §5.5): the ready ones; if none is ready, the ones that are
// serving and terminating. With node != "" only that node's endpoints count
// (externalTrafficPolicy: Local). The result is sorted by address so round
// robin is stable.
func usableEndpoints(eps []plane.Endpoint, node string) []plane.Endpoint {
	var ready, terminating []plane.Endpoint
	for _, e := range eps {
		if node != "" && e.Node != node {
			continue
		}
		switch {
		case e.Ready:
			ready = append(ready, e)
		case e.Serving && e.Terminating:
			terminating = append(terminating, e)
		}
	}
	out := ready
	if len(out) == 0 {
		out = terminating
	}
	slices.SortFunc(out, func(a, b plane.Endpoint) int { return a.Addr.Compare(b.Addr) })
	return out
}

// endpointSets are a service port's usable endpoints as one node's proxy
// sees them, computed once per sync (newEndpointSets) so that a new
// connection only picks: filtering and sorting the endpoints for each
// connection cost allocations and a sort per connection.
type endpointSets struct {
	all   []plane.Endpoint // usableEndpoints(eps, "")
	local []plane.Endpoint // usableEndpoints(eps, node): Local policy
}

func newEndpointSets(eps []plane.Endpoint, node string) endpointSets {
	return endpointSets{all: usableEndpoints(eps, ""), local: usableEndpoints(eps, node)}
}

// servingEndpoint reports whether addr is still a serving endpoint of eps:
// the test conntrack flushing uses for UDP (§5.9).
func servingEndpoint(eps []plane.Endpoint, addr netip.AddrPort) bool {
	for _, e := range eps {
		if e.Addr == addr && (e.Serving || e.Ready) {
			return true
		}
	}
	return false
}

// chooser is the per-service-port state of endpoint selection: the round
// robin position and the ClientIP affinity table.
type chooser struct {
	mu       sync.Mutex
	next     uint64
	affinity map[netip.Addr]affinityEntry
	rng      *rand.Rand
}

type affinityEntry struct {
	backend netip.AddrPort
	last    time.Time
}

func newChooser(seed uint64) *chooser {
	return &chooser{affinity: map[netip.Addr]affinityEntry{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// pick chooses the endpoint for one new connection or flow from client.
// With affinity > 0 a client IP that connected within affinity goes back to
// the same endpoint while it is still a candidate (iptables' "recent"
// match: keyed by source IP only, refreshed on every new connection);
// otherwise the choice is uniform random (iptables, nftables) or round
// robin (IPVS rr).
func (c *chooser) pick(cands []plane.Endpoint, client netip.Addr, mode plane.ProxyMode, affinity time.Duration, now time.Time) (plane.Endpoint, bool) {
	if len(cands) == 0 {
		return plane.Endpoint{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if affinity > 0 {
		if a, ok := c.affinity[client]; ok && now.Sub(a.last) < affinity {
			for _, e := range cands {
				if e.Addr == a.backend {
					c.affinity[client] = affinityEntry{backend: e.Addr, last: now}
					return e, true
				}
			}
		}
		// Reap expired entries now and then so the table stays small.
		if len(c.affinity) > 1024 {
			for ip, a := range c.affinity {
				if now.Sub(a.last) >= affinity {
					delete(c.affinity, ip)
				}
			}
		}
	}
	var e plane.Endpoint
	if mode == plane.ProxyRoundRobin {
		e = cands[c.next%uint64(len(cands))]
		c.next++
	} else {
		e = cands[c.rng.IntN(len(cands))]
	}
	if affinity > 0 {
		c.affinity[client] = affinityEntry{backend: e.Addr, last: now}
	}
	return e, true
}
