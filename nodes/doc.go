// Package nodes is nplab's node agents: the part of Kubernetes that runs on
// every node — the kubelet (pods, their apps, readiness probes) and
// kube-proxy (the NodePort and ClusterIP data path) — on top of the real
// network that package netsim builds out of Linux network namespaces.
//
// # The cluster (NewCluster)
//
// A Cluster is one lab's network and agents. With the default topology:
//
//	host "net"     bridge br0, the cluster network 172.18.0.0/16
//	host "node-N"  eth0 = 172.18.0.(1+N)/16 on br0, ip_forward=1,
//	               a route to every other node's 10.244.M.0/24 via node-M,
//	               every ClusterIP as a /32 on lo (like IPVS's kube-ipvs0)
//	host "client"  eth0 = 172.18.0.100/16 on br0 and no route to pod
//	               ranges: the student's laptop reaches node IPs only
//	host "pod-X"   eth0 = 10.244.N.x/24, default route via 10.244.N.1; the
//	               node side of the veth ("veth" + a hash of the pod name)
//	               carries 10.244.N.1/32 and the node has a /32 route to
//	               the pod, as Calico-style CNIs do
//
// Every host is the namespace nplab-<lab>-<host>, so students can look in:
// `ip netns exec nplab-demo-node-1 ss -ltnu` shows the proxy's listeners.
//
// # Pods (the kubelet)
//
// StartPod creates the pod's host and runs each container's app from the
// image catalog in package nodes/apps: agnhost netexec (HTTP /hostname,
// /clientip, /echo, /healthz, /readyz; UDP and SCTP commands), nginx,
// hashicorp/http-echo, and no server for curl and busybox. Apps answer with
// the pod's name as their hostname. As in Kubernetes, containerPort is
// informational: an nginx pod declared on 8080 listens on 80 and refuses
// 8080, and nplab emits a PodNotice saying so.
//
// Readiness probes (httpGet, tcpSocket) really run from the node's
// namespace against the pod IP with the kubelet's rules: readiness starts
// false, initialDelaySeconds before the first probe, then every
// periodSeconds with timeoutSeconds; successThreshold passes in a row make
// the pod ready, failureThreshold failures unready. A pod without a probe
// is ready once its app listens. Config.ProbeScale shrinks these times for
// tests and impatient students. nplab cannot run exec or grpc probes (there
// are no containers) and treats them as passing, with a notice.
//
// nodes does not compute endpoints: the control plane (package lab) turns
// PodReady/PodUnready events into EndpointSlice conditions and hands the
// result to SyncServices, as the endpoints controller and kube-proxy do.
//
// # The proxy (kube-proxy)
//
// Every node runs a userspace proxy with kube-proxy's behaviour
// (kubernetes-nodeport.md §5):
//
//   - For each service port with a usable endpoint it listens on
//     0.0.0.0:nodePort and ClusterIP:port, per protocol (TCP, UDP, SCTP).
//   - Usable endpoints are the ready ones, else the serving and
//     terminating ones (§5.5).
//   - Each new TCP connection, UDP flow or SCTP association picks an
//     endpoint uniformly at random (iptables/nftables), or round robin
//     (IPVS rr) with ProxyRoundRobin. sessionAffinity: ClientIP pins a
//     client IP to its endpoint per service port until the timeout passes
//     without a new connection (iptables' "recent" match).
//   - A service port without usable endpoints has no listener, so the
//     node's kernel answers a TCP SYN with RST ("connection refused") and a
//     UDP datagram with ICMP port unreachable, like kube-proxy's REJECT.
//     So does a service port none of whose usable endpoints has an app
//     listening on its port, as the image catalog knows (nginx behind
//     targetPort 8080): kube-proxy would DNAT and the pod's kernel would
//     refuse, and the client sees the same fast "connection refused".
//   - externalTrafficPolicy: Local sends external traffic only to this
//     node's endpoints; a node without one drops it with a blackhole rule
//     (`ip rule add pref 10 iif eth0 ipproto tcp dport <nodePort>
//     blackhole`), so the client times out, while traffic from pods and
//     from the node itself still goes to any endpoint (§5.3, §5.6). A pod
//     on another node arrives over eth0 too, so just before each blackhole
//     one rule per node's pod range lets pods through
//     (`ip rule add pref 9 iif eth0 from 10.244.M.0/24 ipproto tcp dport
//     <nodePort> lookup local`), like kube-proxy's local-traffic detector
//     by cluster CIDR.
//   - UDP flows are pinned like conntrack entries, keyed by the client's
//     address and port, idle after 30 s, and flushed when their endpoint
//     stops serving (§5.9), so a client on a fixed source port moves to a
//     new pod at its next datagram. Each frontend keeps at most 1024 flows
//     (a small nf_conntrack_max); a new flow beyond that evicts the least
//     recently used one, so a flood from changing source ports cannot
//     open sockets without bound.
//   - SCTP associations are relayed message by message, keeping message
//     boundaries, stream ids and payload protocol ids.
//   - Every forwarded connection, flow or association is an EventFlow:
//     entry node, client, frontend, service, chosen pod and node, the
//     source address the pod saw, result, bytes and duration.
//
// # Where a userspace proxy differs from kernel DNAT
//
// kube-proxy rewrites packets in the kernel; nplab terminates each
// connection on the node and opens a second one to the pod. What a student
// can observe differs in these ways, and nplab is honest about them:
//
//   - A client's TCP handshake completes with the node before the proxy
//     knows whether the pod accepts. When no endpoint listens at all, or
//     there is none, nplab opens no listener and the refusal is the
//     kernel's own, as in Kubernetes. But when some endpoints listen and
//     the one picked refuses (a pod the catalog does not know, an app
//     stopped, a mixed set like nginx and netexec behind 8080), the proxy
//     has already accepted and can only reset the client's connection:
//     curl prints "Connection reset by peer" (exit 56) where a real cluster
//     prints "Connection refused" (exit 7). The flow event and Cluster.Send
//     report that as FlowReset ("reset"), never as refused. An SCTP
//     association is closed the same way (FlowReset).
//   - An ICMP port unreachable from a pod is not relayed to a UDP client:
//     where kube-proxy's client would get "connection refused" at its
//     next read, nplab's client times out; the flow event says refused.
//   - Cluster policy: the pod sees the entry node's address, exactly what
//     MASQUERADE gives (the node IP, or 10.244.N.1 for a pod on the entry
//     node).
//   - Local policy: the pod sees the client's real address. The proxy dials
//     the pod from a transparent socket (IP_TRANSPARENT) bound to the
//     client's address and port, and the node delivers the pod's replies
//     to it with policy routing:
//     `ip rule add pref 200 from <podIP> ipproto tcp sport <targetPort> lookup 100`
//     and `ip route add local <clientIP>/32 dev lo table 100`.
//     Replies to anyone else fall through table 100 to the main table, so
//     the same pod still serves Cluster-policy hops from other nodes. For
//     this reason an external client that is itself a node IP is dialed
//     from the entry node instead (the pod sees the entry node).
//     SCTP is the exception: Linux SCTP will not send from an address
//     that is not the host's own, even with IP_TRANSPARENT, so under
//     Local an SCTP pod sees the entry node's address, not the client's.
//   - ClusterIP traffic from a pod: kube-proxy does not masquerade it, so
//     the backend sees the calling pod's IP; nplab's pod sees its node's
//     address.
//   - A pod using a Local nodePort on its own node (or on another node) is
//     seen by the backend as the entry node's address (the node IP, or
//     10.244.N.1 on the pod's own node), where kube-proxy would keep the
//     pod's IP (pod traffic is not masqueraded under Local, §5.3 4(a)).
//   - internalTrafficPolicy: Local is not implemented: the data plane
//     treats every ClusterIP as internalTrafficPolicy: Cluster, so a pod
//     may reach endpoints on other nodes where kube-proxy would use only
//     its own node's (and drop the traffic when there are none).
//   - Established TCP connections and SCTP associations survive a sync
//     that removes their endpoint, as with conntrack; UDP flows are
//     flushed, as kube-proxy does.
//   - The nodePort listener is bound to 0.0.0.0, so every local address of
//     a node accepts it (iptables mode's default); nftables mode's
//     "primary address only" default is not modelled.
//
// # Preconditions
//
// Root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and Linux, for netsim. SCTP needs the
// kernel's sctp module; where it is missing, SCTP listeners fail with a
// ProxyError event and the SCTP tests skip.
package nodes
