package nodes

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/nplab/nplab/netsim"
)

// BridgeDev is the cluster bridge inside host plane.BridgeHost.
const BridgeDev = "br0"

// shortHash is 8 hex digits of FNV-1a of s.
func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// podHostName is the netsim host of a pod: "pod-<name>", shortened with a
// hash when the name is long so `ip netns list` stays readable.
func podHostName(pod string) string {
	const max = 48
	if len(pod) <= max {
		return "pod-" + pod
	}
	return "pod-" + strings.TrimRight(pod[:max-9], "-.") + "-" + shortHash(pod)
}

// bridgePort names a node's port on the bridge: the node's name when it
// fits in an interface name, else "n<index>".
func bridgePort(node string, i int) string {
	if len(node) <= netsim.MaxDevName && node != BridgeDev && node != "client" {
		return node
	}
	return fmt.Sprintf("n%d", i+1)
}
