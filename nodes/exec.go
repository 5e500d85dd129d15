package nodes

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nplab/nplab/netsim"
)

// Exec replaces this process with argv run in host of the running lab: a
// node ("node-1"), the client ("client"), or a pod by its name (its host is
// "pod-<name>"), as `ip netns exec` does (netsim.Exec), with the host's
// name as its hostname: a pod's name, as in a pod's container, or the
// node's. An unknown host is an error listing the lab's hosts as a
// student names them.
// Equivalent to: ip netns exec nplab-<lab>-<host> unshare --uts sh -c 'hostname <name>; exec argv...'
func Exec(lab, host string, argv []string) error {
	hosts, err := netsim.Hosts(lab)
	if err != nil {
		return planeErr(err)
	}
	hostname := host
	switch {
	case slices.Contains(hosts, host):
		hostname = strings.TrimPrefix(host, "pod-")
	case slices.Contains(hosts, podHostName(host)):
		host = podHostName(host)
	default:
		var names []string
		for _, h := range hosts {
			names = append(names, strings.TrimPrefix(h, "pod-"))
		}
		return fmt.Errorf("lab %q has no host %q; its hosts are: %s", lab, host, strings.Join(names, ", "))
	}
	return planeErr(netsim.Exec(lab, host, hostname, argv))
}
