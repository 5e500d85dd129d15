// Package plane is the contract between nplab's control plane (package lab,
// the emulated API server and controllers) and its data plane (package
// nodes, the emulated kubelet and kube-proxy on network namespaces).
//
// It is a leaf: it imports neither side, links no netlink and builds on every
// OS, so the control plane, `nplab validate` and every front end build
// without the data plane. It holds what both sides speak of:
//
//   - the addressing plan: [Topology], [NodeSpec], [DefaultTopology] and the
//     host and namespace names ([ClientHost], [NamespaceName]);
//   - what kube-proxy is told: [ServicePort] with its [Endpoint]s, and the
//     [ProxyMode];
//   - what kube-proxy reports: a [Flow] for every attempt, with its
//     [FlowResult] and the [FlowReason] it ended that way (and, for an
//     attempt on a pod's hostPort, Flow.HostPort: the node's kernel DNATed
//     it as the CNI portmap plugin does);
//   - what the kubelet reports of a pod's containers: [PodStatus], their
//     states, last terminations and restart counts;
//   - traffic a student sends: [Request] and [Reply];
//   - faults: [Impairment] of a node's link;
//   - `nplab bench`: [BenchSpec], [BenchTarget], the [Metric]s and a
//     [BenchPath]'s figures, and [Bencher], which a data plane may
//     implement;
//   - the two interfaces: [DataPlane], what the control plane drives, and
//     [Control], the handle through which the data plane reports back.
//     Only the data plane receives a Control; front ends never see one.
//
// Errors: an operation the platform or kernel cannot do wraps
// [ErrNotSupported] (no Linux, no netem, no SCTP); an unknown node, pod or
// host is a [*NotFoundError].
package plane
