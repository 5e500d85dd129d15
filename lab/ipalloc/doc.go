// Package ipalloc is kube-apiserver's ClusterIP allocator
// (pkg/registry/core/service/ipallocator, the bitmap kind) for one service
// CIDR, --service-cluster-ip-range (default 10.96.0.0/12). Pure Go.
//
// What it emulates:
//
//   - The network address and, for IPv4, the broadcast address are never
//     handed out; asking for them, or for anything outside the CIDR, is
//     "the provided IP (1.2.3.4) is not in the valid range. The range of
//     valid IPs is 10.96.0.0/12". A taken one is "provided IP is already
//     allocated"; the registry wraps both as kube-apiserver does:
//     spec.clusterIPs: Invalid value: ["1.2.3.4"]: failed to allocate IP 1.2.3.4: ...
//   - KEP-3070's bands: RangeOffset is min(max(size/16, 16), 256) for CIDRs
//     of more than 16 addresses. AllocateNext picks a random address in the
//     upper band first (forward scan, wrapping), the lower band only when the
//     upper one is full, so requested static IPs (DNS at 10.96.0.10) rarely
//     collide with dynamic ones.
//   - First() is 10.96.0.1 in the default range, by convention the address of
//     the "kubernetes" Service; the registry reserves it at startup.
//
// There is no kernel operation here: a ClusterIP exists only in the API
// object and in kube-proxy's rules (`iptables -t nat -L KUBE-SERVICES`, or an
// address on kube-ipvs0 in IPVS mode: `ip addr show kube-ipvs0`).
package ipalloc
