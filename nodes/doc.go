// Package nodes is nplab's node agents: the part of Kubernetes that runs on
// every node — the kubelet (pods, their apps, readiness probes) and
// kube-proxy (the NodePort and ClusterIP data path) — on top of the real
// network that package netsim builds out of Linux network namespaces.
//
// It is the data plane of package lab/plane's contract: a *Cluster is a
// plane.DataPlane, built by New (or NewDataPlane, the plane.Factory), and
// it speaks only plane's types (Topology, ServicePort, Endpoint, Flow,
// Request, Reply, Impairment).
//
// # The cluster (New)
//
// New(ctx, topo, opts, ctl) builds one lab's network and agents. With the
// default topology (plane.DefaultTopology):
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
// Every host is the namespace nplab-<lab>-<host> (plane.NamespaceName), so
// students can look in: `ip netns exec nplab-demo-node-1 ss -ltnu` shows
// the proxy's listeners.
//
// # Reporting back: the plane.Control
//
// The agents report everything through the plane.Control given to New,
// calling it directly from their own goroutines (there is no queue): the
// control plane's implementation is quick, never calls back into the
// Cluster, and may be called with the agents' locks held. Per pod the
// calls come in order: PodNotice (catalog remarks), PodStarted, then
// PodReady on every readiness change (reported under the pod's lock, so
// true and false never swap), and PodStopped once StopPod is done.
// Warning reports what went wrong on a node (a listener that could not be
// opened, a rule that could not be added). Flow reports every attempt
// through a node's proxy when it ends, and every attempt a node's kernel
// answered itself (see "Attempts the kernel answers"). Listening reports a node's
// complete listener set after each service sync that changed it.
//
// Unknown nodes, pods and hosts are *plane.NotFoundError; what the kernel
// or the platform cannot do (netem, SCTP, anything off Linux) wraps
// plane.ErrNotSupported, and netsim.ErrNotSupported too.
//
// # Pods (the kubelet)
//
// StartPod creates the pod's host and runs each container's app from the
// image catalog in package nodes/apps: agnhost netexec (HTTP /hostname,
// /clientip, /echo, /dial, /healthz, /readyz, /exit; UDP and SCTP
// commands), nginx, hashicorp/http-echo, the images of the Service
// tutorials (echoserver, kicbase/echo-server, hello-app, hello-go-gke,
// traefik/whoami), and no server for curl and busybox. Apps answer with
// the pod's name as their hostname; netexec's /dial dials from the pod.
// As in Kubernetes, containerPort is informational: an nginx pod declared
// on 8080 listens on 80 and refuses 8080, and nplab reports a PodNotice
// saying so. An image outside the catalog that declares no port runs
// nothing, and nplab reports a Warning with the pod.
//
// Readiness probes (httpGet, tcpSocket) really run from the node's
// namespace against the pod IP with the kubelet's rules: readiness starts
// false, initialDelaySeconds before the first probe, then every
// periodSeconds with timeoutSeconds; successThreshold passes in a row make
// the pod ready, failureThreshold failures unready. A pod without a probe
// is ready once its app listens. plane.Options.ProbeScale shrinks these
// times for tests and impatient students. nplab cannot run exec or grpc
// probes (there are no containers) and treats them as passing, with a
// notice.
//
// StopPod is the kubelet's SIGTERM and returns at once: in a goroutine the
// Cluster owns (Close waits for it), /readyz fails, the servers keep
// serving for --delay-shutdown, but no longer than the grace period the
// control plane gives (the deletion's: the pod's
// terminationGracePeriodSeconds, default 30, or kubectl delete
// --grace-period; at least 2 s as the kubelet floors it; a PodNotice says
// when the kill cut the delay short; StopPod again may shorten it), then
// stop, the pod's namespace is removed and PodStopped is reported (after
// a Warning, if that failed). A new pod of the same name or IP waits for
// it, as the kubelet does.
//
// Logs (kubectl logs): each start of a container has its log
// (apps.Log: netexec's log lines, nginx's access log, the message of a
// program that refused to start), the latest and the one before kept
// (--previous).
//
// Containers (kubelet_linux.go). Each container runs its own app and has
// the state the kubelet reports (plane.Control.PodStatus, after every
// change, in order): Waiting (ContainerCreating, PodInitializing,
// CrashLoopBackOff with the kubelet's "back-off 10s restarting failed
// container=... pod=..." message), Running, or Terminated with its exit
// code and reason (Completed, Error), plus the last termination and the
// restart count. An app that exits by itself (netexec's /exit,
// /shutdown) or cannot start — the catalog's apps.Spec.Exit, a program
// that refuses its arguments (http-echo without -text: 127), or a socket
// it cannot open (1) — terminates; the pod turns unready and the container
// is started again as restartPolicy says (Always by default; OnFailure
// after a non-zero code; Never not), the first time at once, then after
// the kubelet's back-off of 10 s doubling to 5 minutes, reset after 10
// minutes running (backoff.go; scaled by ProbeScale, the messages say the
// kubelet's times). The kubelet does not restart a container of a pod it
// is stopping.
//
// Init containers run first, one after another, in the kubelet's
// goroutine, so StartPod returns while they run (the containers' states
// say PodInitializing). nplab runs no images: an init container is an
// emulated run read from its command (apps.InitFromContainer: "sleep N"
// lasts N seconds, "exit N" and "false" fail, anything else lasts 2 s and
// succeeds), with a notice saying so. A failed one is retried with the
// back-off, or, under restartPolicy Never, ends the pod's start.
//
// hostNetwork: the pod gets no namespace of its own; its IP is its node's
// and its apps listen on the node's addresses (its IP and 127.0.0.1, not
// 0.0.0.0, so they never take the proxy's ClusterIP:port sockets on that
// node), answering with the node's name as their hostname, as a pod
// sharing the host's UTS namespace does.
//
// hostPort (hostport_linux.go): a container port with a hostPort is mapped
// on the pod's node as the CNI portmap plugin maps it, by kernel DNAT
// (netsim.SetPortMaps: table ip nplab-hostport, prerouting and output
// chains for every local address, or the hostIP; masquerade for a pod
// that reaches itself). The pod sees the client's address; only its node
// answers. A hostPort that another pod of the node holds is not mapped,
// with a Warning. No proxy socket sees those connections: the node's
// observer watches its hostPorts too, and each attempt is a flow with
// plane.Flow.HostPort and Kernel set, ok when the pod's app listens on the
// port (refused otherwise), without byte counts. localhost
// (127.0.0.1:hostPort) is not mapped.
//
// SetAppRunning(pod, false) stops the pod's servers (flows to it then say
// plane.ReasonAppStopped) and true starts them again, like a restarted
// container: its probe passes again. SetPodUnready forces readiness false.
//
// nodes does not compute endpoints: the control plane turns PodReady into
// EndpointSlice conditions and hands the result to SyncServices, as the
// endpoints controller and kube-proxy do.
//
// # The proxy (kube-proxy): plan, then apply
//
// Every node runs a userspace proxy with kube-proxy's behaviour
// (kubernetes-nodeport.md §5). SyncServices hands every node the complete
// set of service ports; each node's proxy then
//
//   - plans: planProxy, a pure function of the service ports and what the
//     node knows (its name, the pod ranges, what each running pod's apps
//     listen on), computes the listeners it wants (protocol and address →
//     service port, nodePort or not), the ip rules it wants, and for every
//     nodePort and ClusterIP:port it knows of but will not proxy, why:
//     no usable endpoint (plane.ReasonNoEndpoints: the kernel refuses),
//     endpoints none of whose apps listens on the target port
//     (plane.ReasonNoListener: refused), or externalTrafficPolicy: Local
//     without a local endpoint (plane.ReasonLocalPolicy: external traffic
//     is dropped). The plan is table-tested without root, on any OS;
//   - applies: closes and opens listeners and deletes and adds rules to
//     match, taking its lock only to read and swap state, never across
//     opening a socket or a netlink call (syncs are serialized by a lock
//     of their own), and reports plane.Control.Listening when the
//     listener set changed.
//
// What the proxy does:
//
//   - For each service port with a usable endpoint it listens on
//     0.0.0.0:nodePort and ClusterIP:port, per protocol (TCP, UDP, SCTP).
//   - Usable endpoints are the ready ones, else the serving and
//     terminating ones (§5.5).
//   - Each new TCP connection, UDP flow or SCTP association picks an
//     endpoint uniformly at random (iptables/nftables), or round robin
//     (IPVS rr) with plane.ProxyRoundRobin. sessionAffinity: ClientIP pins
//     a client IP to its endpoint per service port until the timeout passes
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
//     (a small nf_conntrack_max); a new flow beyond that evicts an idle
//     one (the least recently used of 8 sampled at random), so a flood
//     from changing source ports cannot open sockets without bound.
//   - SCTP associations are relayed message by message, keeping message
//     boundaries, stream ids and payload protocol ids.
//
// # The hot paths: what runs per connection and per datagram
//
// What the proxy does for traffic, as the benchmarks measure it
// (BenchmarkForward through real namespaces against direct routing and
// kernel DNAT; BenchmarkTCPForward, BenchmarkUDPForward,
// BenchmarkUDPFlowTable and BenchmarkEndpointChoice on loopback, with
// allocations reported):
//
//   - Per sync (not per connection): each service port's usable endpoints
//     are computed once, all of them and this node's (endpointSets), and
//     swapped in with the ServicePort as one atomic snapshot (svcPort).
//   - Per TCP connection: accept; one atomic load of the snapshot; the
//     endpoint pick (no allocation; the chooser's mutex, per service port,
//     is held for one random draw or round-robin step, and an affinity
//     lookup); the dial (netsim.ProxyDial: a socket from the node's pool,
//     made ahead of time in the node's namespace, then connect in the
//     poller); two entries in the proxy's connection set (its mutex, so
//     Close can end every connection); one goroutine for the second
//     direction; one shutdown(2) to pass the first FIN on (the second
//     travels with the close); when the pod's end comes before the
//     client's, one getsockopt(TCP_INFO) to tell its reset from its FIN
//     (resetNotFIN); one plane.Flow reported when the connection ends. Each system call costs ~5 µs on a PVM guest, so
//     they are what a new connection costs, and the proxy's sockets are
//     made for it (netsim.ProxyListen, netsim.ProxyDial): no TCP
//     keep-alive on either side (Go's default is four setsockopt calls
//     per conn; the client's own keep-alive, if any, passes through), no
//     namespace switch per dial (only socket(2) needs the namespace; a
//     pool of 32 is refilled in the background, 32 at a time, on one
//     thread switched into it), and no net.FileConn (its dup, close and
//     three queries). strace -f -c of BenchmarkForward/newconn, nplab-proxy
//     against direct, counts ~30 system calls per connection for the
//     proxy, down from ~47: accept4 (twice: the second finds the queue
//     empty), epoll_ctl, getsockname, TCP_NODELAY; connect, SO_ERROR and
//     getpeername (twice each: once before the wait, as the poller's
//     readiness was just reset, once after), getsockname (the source the
//     pod sees); the reads and writes (with one read per direction that
//     finds nothing and parks); a shutdown; two closes and their
//     epoll_ctl; plus socket, TCP_NODELAY, fcntl and epoll_ctl for the
//     pooled socket, off the connection's path.
//   - Per request/response on a kept-open connection: per direction one
//     read with the data, one write, one read that finds nothing and parks
//     the goroutine in the poller, and the poller's epoll_pwait: about
//     eight system calls per round trip more than direct. With every
//     thread pinned to one CPU, as nplab bench's latency figure runs it,
//     that is what the proxy adds to a round trip; unpinned, on an idle
//     machine, waking the other CPU costs more than the work. No deadline
//     is set per read and nothing is counted per read: the byte counts
//     are io.CopyBuffer's totals, taken when the connection ends.
//   - Per TCP byte: a relay's first bytes go through a pooled 32 KiB
//     buffer (one read and one write each, no allocation), which costs a
//     short exchange nothing extra. Once a read fills the buffer, the
//     half is a bulk transfer and the rest of it is spliced
//     (splice_linux.go): splice(2) moves the received pages from the
//     socket into a pooled 1 MiB pipe and on into the other socket, never
//     through the process. CPU per MiB in BenchmarkForward/bulk had
//     favoured the copy (a spliced page holds one received segment, so
//     the proxy sends smaller packets), but end to end, in one nplab
//     bench run, the copy reached 0.41x of direct's throughput where
//     io.Copy's splice (the go-copy path) reached 0.57-0.64x; with the
//     switch to splice nplab's proxy reaches 0.61x. 128, 256 and 512 KiB
//     copy buffers cost more than 32 KiB.
//     The relay knows which side failed: a reset read from the pod, or
//     met writing to it (a socket reports a reset once, to whichever call
//     meets it first), is the pod's (the flow says pod-reset, and the
//     client gets a reset, as kernel DNAT passes the RST); a failed write
//     to the client is the client's.
//     SCTP is relayed message by message through a pooled 64 KiB buffer,
//     with each message's stream id and PPID.
//   - Per new UDP flow: the endpoint pick, a connected socket to the pod,
//     an insert into the frontend's flow table (its mutex; at the cap it
//     evicts in O(1)), a goroutine relaying the pod's replies with a
//     pooled 64 KiB buffer, and the IP_PKTINFO control message for those
//     replies built once. The flow is reported once, at its first
//     exchange (or failure), and never per datagram.
//   - Per UDP datagram, client to pod: one read on the frontend (with
//     IP_PKTINFO, parsed in place), the flow found in the table (under its
//     mutex, and not at all while one client keeps sending: the forward
//     loop keeps the last flow), an atomic byte count and timestamp, one
//     write to the flow's socket. Pod to client: one read, an atomic
//     timestamp, one write from the address the client sent to. The read
//     deadline that idles a flow out moves only when it fires. No
//     allocation either way (BenchmarkUDPForward: 0 allocs/op;
//     TestUDPForwardAllocatesNothing keeps it so). A frontend may queue
//     4 MiB (SO_RCVBUFFORCE) so a burst outlasts the milliseconds the
//     proxy waits for a CPU it shares with client and pod.
//   - Not done, measured: batched reads (recvmmsg). A profile of
//     BenchmarkForward/udp spends most of its time in the writes, which
//     carry each datagram through the kernel's stack and veths into the
//     next namespace; the frontend's reads are 6% of it. A recvmmsg
//     reader of 8 datagrams (x/net's ReadBatch allocates an address per
//     datagram, so it was a raw one, allocation-free) saved 3-5% of the
//     CPU per datagram with 16 in flight on loopback, for 512 KiB of
//     buffers per frontend: not kept.
//
// # Flows: what happened, and why
//
// Every forwarded TCP connection, UDP flow or SCTP association is one
// plane.Flow, reported when it ends: entry node, client, frontend,
// service, chosen pod and node, the source address the pod saw, Start,
// Duration, bytes each way, the Result, and for every failure a Reason and
// a Detail:
//
//   - the chosen pod refused (plane.ReasonPodRefused), reset an
//     established connection (plane.ReasonPodReset) or did not answer in
//     time (plane.ReasonPodTimeout);
//   - its app is stopped (plane.ReasonAppStopped);
//   - the link of the entry node or of the chosen pod's node is down
//     (plane.ReasonNodeLinkDown, Detail "node-3's link is down"), as the
//     Cluster knows from SetNodeLink;
//   - a UDP pod answered nothing within 2 s (plane.ReasonNoReply).
//
// A UDP flow is reported once, when its first exchange completes: at the
// pod's first reply (with the bytes of both ways so far, before the reply
// is relayed), at a refusal, or when no reply came in time; later
// datagrams of the same pinned flow are not reported again.
//
// Send runs curl (TCP), nc -u (UDP) or ncat --sctp from a host and fills
// Reply.Local, the tool's source address and port, and Reply.Flow: the
// flow a node recorded for exactly that protocol and client address and
// port (there is no NAT between a host and a node), waiting up to a second
// after the tool is done, when a proxy may have seen the request. For TCP
// nplab picks the source port itself, so it knows it even when the proxy
// resets the connection before connect returns, or its SYNs are dropped
// and it times out. A node sending to a ClusterIP uses its own IP as the
// source. A request to a frontend a node's plan says its kernel refuses
// or drops waits the same way for the kernel's flow (below); any other
// request no proxy socket saw (a pod IP, a port no Service uses) does not
// wait.
//
// # Attempts the kernel answers
//
// When a Service has no usable endpoint, or no app listens on its target
// port, the node has no listener and its kernel refuses the client (TCP
// RST, ICMP port unreachable, SCTP ABORT); under externalTrafficPolicy:
// Local on a node without a local endpoint, the blackhole rule drops an
// external client's packets and the client times out. No proxy socket
// sees these, yet each is one flow event too, with Kernel set, no pod,
// Result refused (plane.ReasonNoEndpoints, plane.ReasonNoListener) or
// dropped (plane.ReasonLocalPolicy, external clients only):
//
//	TCP 172.18.0.100:41234 → node-1 172.18.0.2:30090: refused (no endpoints), answered by the node's kernel
//
// Nothing changes for the client: each node watches its kernel with one
// observer (netsim.Observe, a packet socket in the node's namespace that
// sees a packet as it arrives, before the kernel refuses or drops it, and
// changes nothing the kernel does), opened by New and closed by Close
// before the node's namespace goes. After every sync its watch set is
// exactly the plan's frontends the node will not proxy: TCP/UDP/SCTP
// 0.0.0.0:nodePort (any of the node's addresses: external clients and the
// node itself) and ClusterIP:port. The observer's BPF filter copies only
// those packets (a TCP SYN, an SCTP INIT, a UDP datagram), so a proxied
// connection costs nothing: no listening address is ever watched, with
// one exception, a Local nodePort on a node without a local endpoint,
// whose listener serves pods and the node while the blackhole drops
// external clients; there a pod's or the node's SYN (and each of their UDP
// datagrams) is copied too, and recognised as internal and ignored. A
// nodePort whose port number some ClusterIP:port listens on is watched on
// the node's own addresses (node IP, 10.244.N.1, 127.0.0.1) only.
//
// One goroutine per node reads the observer, owned by the Cluster and
// waited for by Close. A client that gets no answer retries: TCP
// retransmits its SYN after 1 s, 3 s, 7 s ... (tcp_syn_retries), SCTP its
// INIT, a UDP client sends again. Packets with the same protocol, client
// address and port and frontend are one attempt as long as the next comes
// within the dedupe window: 65 s for TCP and SCTP (longer than any gap
// between Linux's SYN or INIT retransmissions, so a client retrying until
// it gives up is one flow), 30 s for UDP (the proxy's UDP flow idle time,
// so a UDP client is one flow either way). A node remembers at most 4096
// attempts, the least recently seen forgotten first, so a flood of
// changing source ports costs bounded memory (and may report an attempt
// twice). The observer never blocks: when its reader falls behind it drops
// packets (netsim.Observer.Dropped), and those attempts make no flow.
//
// A flow takes its Service, port name and reason from the node's plan in
// force when its first packet arrived. A sync swaps the plan in before it
// opens or closes any listener or changes a rule, so an attempt that
// arrived before the swap is judged by the plan before (one plan back is
// kept; an attempt that waited out two syncs that changed what the kernel
// does is judged by the older of the two). And
// while a sync moves listeners and rules, the node watches only the
// frontends the kernel answers the same way before and after it; the new
// plan's are watched once it is in place. So a proxied attempt never also
// makes a kernel flow, and what races a sync is, at worst, not reported:
// an attempt refused in the instant between a listener closing and its
// frontend being watched, or one still in the observer's buffer when its
// frontend stops being watched. A refusal whose reason changed with the
// sync (no endpoints, then nothing listening) carries the reason of the
// plan it arrived under.
//
// Where a node cannot observe (a kernel without packet sockets, an
// implementation of netsim.Host that cannot, anything but Linux), New
// reports one Warning and the cluster runs without kernel flows: clients
// see the same, those attempts make no flow events, and Send does not wait
// for them.
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
//     prints "Connection refused" (exit 7). The flow and Cluster.Send
//     report that as plane.FlowReset ("reset"), never as refused, with the
//     reason the pod refused (or its app is stopped). An SCTP association
//     is closed the same way (plane.FlowReset).
//   - An ICMP port unreachable from a pod is not relayed to a UDP client:
//     where kube-proxy's client would get "connection refused" at its
//     next read, nplab's client times out; the flow says refused.
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
//   - A proxy that cannot reach the chosen pod (its node's link down)
//     has already accepted the client's connection: the client sees a
//     reset, or waits, where kube-proxy's client would see its SYN go
//     unanswered or "No route to host".
//   - The proxy's connection to the pod is its own, and the proxy passes
//     the client's FIN on first, so it ends in TIME_WAIT in the node
//     (`ip netns exec <node> ss -tan state time-wait` lists them), where
//     kube-proxy leaves none there. Nodes therefore reuse a TIME_WAIT
//     port after a second (net.ipv4.tcp_tw_reuse=1; the kernel's default
//     reuses only on loopback): without it, once the even half of the
//     ephemeral range is in TIME_WAIT towards a pod, every connect(2)
//     walks all of it for a free port. perf showed that walk
//     (__inet_hash_connect, __inet_check_established, tcp_twsk_unique)
//     taking 65% of the CPU at a few thousand new connections a second,
//     14,000 TIME_WAIT sockets in the node after 3 s; with reuse, nplab
//     bench's new connections through a NodePort went from 0.42x to
//     0.50-0.56x of direct.
//
// # Preconditions
//
// Root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and Linux, for netsim; on other
// systems New returns an error wrapping plane.ErrNotSupported, and only
// the pure parts (the plan, endpoint selection, the dedupe of
// retransmissions) build and test. SCTP needs
// the kernel's sctp module; where it is missing, SCTP listeners fail with
// a Warning and the SCTP tests skip. Impairments need the sch_netem
// qdisc; without it SetImpairment returns an error wrapping
// plane.ErrNotSupported ("netem qdisc unavailable").
package nodes
