//go:build linux

package nodes

import (
	"fmt"

	"github.com/nplab/nplab/netsim"
)

// checkNeighbours warns, once per lab, when the lab has grown past what
// the kernel's neighbour (ARP) table holds: the table is the machine's,
// shared by every namespace, and its default cap (1,024 entries) is
// reached by a lab of about 30 nodes whose nodes all talk to each other,
// or by 100 nodes and 500 pods long before that. Past the cap, new
// connections between lab hosts time out for no reason a student could
// see, so the warning names the setting. Real clusters' large nodes
// raise the same setting. c.mu is held.
func (c *Cluster) checkNeighbours(node string) {
	if c.neighWarned || c.neighLimit <= 0 {
		return
	}
	need := netsim.NeighboursNeeded(len(c.topo.Nodes), len(c.pods))
	if need <= c.neighLimit {
		return
	}
	c.neighWarned = true
	c.ctl.Warning(node, "", fmt.Sprintf("this lab (%d nodes, %d pods and the client) can need %d neighbour (ARP) entries, "+
		"and the kernel keeps at most %d for the whole machine (%s): past that, connections between nodes and pods time out "+
		"(\"neighbor table overflow\" in dmesg). Raise it as root: sysctl -w %s=%d net.ipv4.neigh.default.gc_thresh2=%d",
		len(c.topo.Nodes), len(c.pods), need, c.neighLimit, netsim.NeighbourSysctl, netsim.NeighbourSysctl, 2*need, need))
}
