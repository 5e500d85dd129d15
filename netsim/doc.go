// Package netsim is nplab's network: hosts, links, addresses, routes, and
// sockets opened inside a host. It is the only package that knows about
// network namespaces and netlink.
//
// The Linux backend (New) makes every host a named network namespace,
// "nplab-<lab>-<host>", so students can look inside with the usual tools:
//
//	ip netns list
//	ip netns exec nplab-demo-node-1 ss -ltn
//
// Links are veth pairs created in one netlink request with each end placed
// straight into its namespace; the cluster's bridge lives in a namespace of
// its own, so the host's own network namespace is never touched. Sockets are
// opened on a locked OS thread switched into the host's namespace (a socket
// keeps the namespace it was created in) and then used from ordinary
// goroutines.
//
// Preconditions: Linux, root (CAP_SYS_ADMIN and CAP_NET_ADMIN). Elsewhere
// every constructor returns an error wrapping ErrNotSupported. SCTP sockets
// need the kernel's SCTP module; netem impairments need the sch_netem qdisc.
//
// A state file per lab under /run/nplab records what the lab created, so
// Clean can remove what a killed lab left behind, and only that.
package netsim
