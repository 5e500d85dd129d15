package netsim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// NeighbourSysctl is the setting that caps the kernel's IPv4 neighbour
// (ARP) table. The table is one for the whole machine, shared by every
// network namespace, and only the initial namespace can change the cap.
const NeighbourSysctl = "net.ipv4.neigh.default.gc_thresh3"

// NeighbourLimit returns the most IPv4 neighbour entries the kernel keeps
// (NeighbourSysctl) across every namespace: past it, a namespace that
// needs a new one drops the packet ("neighbor table overflow" in dmesg),
// and a connection between two lab hosts times out. The setting is
// readable only from the machine's own network namespace: in a user
// namespace (rootless mode) it is an error.
// Equivalent to: sysctl net.ipv4.neigh.default.gc_thresh3
func NeighbourLimit() (int, error) {
	path := "/proc/sys/" + strings.ReplaceAll(NeighbourSysctl, ".", "/")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", NeighbourSysctl, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", NeighbourSysctl, err)
	}
	return n, nil
}

// NeighboursNeeded is how many neighbour entries a lab of nodes nodes,
// pods pods and one outside client can hold at once, when every node
// talks to every other (a NodePort with externalTrafficPolicy: Cluster
// spreads each node's connections over the pods of every node): one per
// pod on each side of its link, one per other node on each node, and the
// client and each node for each other.
func NeighboursNeeded(nodes, pods int) int {
	return 2*pods + nodes*(nodes-1) + 2*nodes
}
