//go:build linux

package nodes

import (
	"strings"
	"testing"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// TestNeighbourTableWarning: a lab that outgrows the kernel's neighbour
// table (here a cap of 20 entries, set on the cluster: the machine's is
// not the test's to change) gets one Warning naming the setting and the
// command that raises it, when the pod that crosses the cap starts.
func TestNeighbourTableWarning(t *testing.T) {
	c, log := newCluster(t, 3, plane.ProxyRandom)
	c.mu.Lock()
	c.neighLimit = netsim.NeighboursNeeded(3, 1) // room for one pod
	c.mu.Unlock()
	warned := func() []record {
		var out []record
		for _, r := range log.all() {
			if r.Kind == recWarning && strings.Contains(r.Message, netsim.NeighbourSysctl) {
				out = append(out, r)
			}
		}
		return out
	}
	startPod(t, c, log, 1, 2, agnhost("a", "--http-port=8080"), false)
	if w := warned(); len(w) != 0 {
		t.Fatalf("warned with room left: %v", w)
	}
	startPod(t, c, log, 2, 2, agnhost("b", "--http-port=8080"), false)
	startPod(t, c, log, 3, 2, agnhost("c", "--http-port=8080"), false)
	w := warned()
	if len(w) != 1 {
		t.Fatalf("%d warnings, want one: %v", len(w), w)
	}
	for _, want := range []string{"3 nodes, 2 pods", "neighbor table overflow", "sysctl -w " + netsim.NeighbourSysctl + "="} {
		if !strings.Contains(w[0].Message, want) {
			t.Errorf("warning lacks %q: %s", want, w[0].Message)
		}
	}
	if w[0].Node != "node-2" {
		t.Errorf("warning on %q, want node-2 (where the pod that crossed the cap starts)", w[0].Node)
	}
}

func TestNeighboursNeeded(t *testing.T) {
	for _, tc := range []struct{ nodes, pods, want int }{
		{3, 3, 18},        // the default lab
		{100, 500, 11100}, // nplab bench's big lab
	} {
		if got := netsim.NeighboursNeeded(tc.nodes, tc.pods); got != tc.want {
			t.Errorf("NeighboursNeeded(%d, %d) = %d, want %d", tc.nodes, tc.pods, got, tc.want)
		}
	}
}
