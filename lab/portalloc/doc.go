// Package portalloc is kube-apiserver's NodePort allocator
// (pkg/registry/core/service/portallocator plus the bitmap of
// pkg/registry/core/service/allocator), pure Go, no root, no sockets.
//
// What it emulates:
//
//   - The --service-node-port-range flag: ParseRange reads "30000-32767" or a
//     single port with PortRange.Set's error text; Range.String prints it back
//     the way it appears inside error messages.
//   - One bitmap for the whole cluster. A nodePort number is unique across
//     every namespace and every protocol: TCP 30080 in one Service blocks
//     UDP 30080 in another.
//   - KEP-3668's two bands. RangeOffset(size) is the static (lower) band:
//     0 for ranges of 16 ports or fewer, else size/32 clamped to 16..128. For
//     the default 2768-port range that is 86: static 30000-30085, dynamic
//     30086-32767.
//   - AllocateNext: a random start in the dynamic band and a forward scan that
//     wraps inside it; only when that band is full, the same in the static
//     band; then "range is full". A user may still request any free port of
//     either band with Allocate. Deleting and recreating a Service without an
//     explicit nodePort gets a new random port.
//   - Release of a free or out-of-range port is a silent no-op.
//
// Errors carry Kubernetes' text: "provided port is already allocated",
// "provided port is not in the valid range. The range of valid ports is
// 30000-32767", "range is full". The registry wraps them the way the API
// server does (a field error on spec.ports[i].nodePort, or a 500 "failed to
// allocate a nodePort: range is full").
//
// Inject a seeded *rand.Rand (math/rand/v2) to make allocation repeatable.
//
// There is no kernel operation here. On a real cluster the allocation is
// visible only in the Service (`kubectl get svc` PORT(S) 80:30080/TCP) and in
// the repair controller's events; kube-proxy then opens the port on every
// node (`ss -ltn 'sport = :30080'` on a node in iptables mode shows nothing,
// `iptables -t nat -L KUBE-NODEPORTS` shows the rule).
package portalloc
