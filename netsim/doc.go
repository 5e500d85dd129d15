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
// goroutines. Only socket(2), its options and bind run on that thread: a
// dial's connect, and the wait for its handshake, run on Go's netpoller, so
// ten thousand pending dials to an endpoint that never answers hold a few
// dozen OS threads, not ten thousand (Go's limit, which is fatal).
//
// Preconditions: Linux, root (CAP_SYS_ADMIN and CAP_NET_ADMIN). Elsewhere
// every constructor returns an error wrapping ErrNotSupported. SCTP sockets
// need the kernel's SCTP module; netem impairments need the sch_netem qdisc.
//
// A state file per lab under /run/nplab records what the lab created, so
// Clean can remove what a killed lab left behind, and only that.
//
// # A two-host lab, and what it does in the kernel
//
//	n, _ := netsim.New("demo")                // /run/nplab/demo.json
//	defer n.Close()                           // removes everything below
//	a, _ := n.AddHost("a")                    // ip netns add nplab-demo-a; ip -n nplab-demo-a link set lo up
//	b, _ := n.AddHost("b")
//	n.AddLink(netsim.LinkSpec{Name: "ab",     // ip -n nplab-demo-a link add eth0 type veth peer eth0 netns nplab-demo-b
//		A: netsim.LinkEnd{Host: a, Dev: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
//		B: netsim.LinkEnd{Host: b, Dev: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24")}},
//	})
//	l, _ := b.Listen(ctx, "tcp", "10.0.0.2:8080") // ip netns exec nplab-demo-b nc -l 8080
//	c, _ := a.Dial(ctx, "tcp", "10.0.0.2:8080")   // ip netns exec nplab-demo-a nc 10.0.0.2 8080
//
// # Hosts
//
// A host's namespace is unshared on a throw-away locked thread, which
// also opens its netlink sockets and sets lo up from the inside. The
// thread is never unlocked, so the Go runtime discards it: no goroutine's
// thread ever changes namespace behind its back. It is named with a
// symlink, /run/netns/nplab-<lab>-<host> → /proc/<pid>/fd/<fd>, to the
// file descriptor netsim keeps on it, not with the bind mount `ip netns
// add` makes: `ip netns list`, `ip netns exec` and `ip -n` work the same,
// the machine's mount table does not grow with the lab, and the namespace
// lives exactly as long as the lab's process (and the sockets made in
// it). Removing a host deletes its links, then its name and handles; a
// socket still open in the host keeps the (now nameless) namespace alive
// until it is closed, so callers close their sockets first. Hosts and
// links may be added from several goroutines at once: they are built in
// parallel. A veth pair is one netlink request (see AddLink), with
// interface indexes netsim picks, so nothing is looked up by name after.
//
// # Routes, rules and link state
//
// Setting a link down makes the kernel delete every route through it, and
// setting it up brings back only the routes of its own addresses. Hosts
// remember the routes added with AddRoute and Link.SetUp(true) adds them
// back, so "take a node's link down and up" leaves the node as it was.
//
// Every namespace starts with the rule "0: from all lookup local", which no
// other rule can precede, so a blackhole rule could never drop traffic for
// one of the host's own addresses. The first time a host gets a rule with a
// priority below 100, netsim moves the local rule to priority 100 (ip rule
// add pref 100 lookup local; ip rule del pref 0 lookup local). That is how
// a node drops NodePort traffic it has no local endpoint for:
//
//	node.AddRule(netsim.Rule{Priority: 10, IIF: "eth0", Proto: "tcp", DPort: 30080, Blackhole: true})
//
// A client then times out (no RST), while the node's own traffic (iif lo)
// still gets through. A rule just before it (priority 9, From a pod range,
// Table 255) lets chosen sources through to the local table anyway.
//
// # Transparent proxying
//
// DialFrom with Transparent sets IP_TRANSPARENT before bind, so a proxy
// can connect to a backend from the client's address. The backend's replies
// are addressed to the client, so two more things are needed: the backend
// routes the client's address back through the proxy's host (a pod's
// default route via its node does that), and the proxy's host delivers
// those replies locally instead of forwarding them:
//
//	ip rule add from <backend> ipproto tcp sport <port> lookup 100
//	ip route add local 0.0.0.0/0 dev lo table 100
//
// TestTransparentDial runs exactly this recipe, for TCP and UDP. Linux's
// SCTP cannot send from a non-local address (it ignores IP_TRANSPARENT), so
// a transparent SCTP dial fails at once with ErrTransparentSCTP, which
// wraps ErrNotSupported; an SCTP proxy dials from its own address.
//
// # A proxy's sockets
//
// A proxy opens a connection for every connection it accepts, and each
// system call counts. ProxyListen is Listen whose accepted conns have no
// TCP keep-alive; ProxyDial is DialFrom for TCP that takes its socket
// from a per-host pool made ahead of time on one thread in the namespace
// (only socket(2) needs it), and returns that socket as a net.Conn
// without duplicating it. The host's removal closes the pool, so no
// pooled socket keeps a removed namespace alive.
//
// # Observing attempts the kernel refuses or drops
//
// When a Service has no usable endpoint, nothing listens on its nodePort
// and the node's kernel refuses the client itself (TCP RST, ICMP port
// unreachable); under externalTrafficPolicy: Local a blackhole rule drops
// the packet. No nplab code sees either. Observe opens a packet socket
// inside a host that does:
//
//	o, _ := netsim.Observe(ctx, node)
//	defer o.Close()
//	o.SetWatch([]netsim.Watch{{Protocol: "TCP", Dst: netip.MustParseAddrPort("0.0.0.0:30080")}})
//	for p := range o.Packets() { ... } // {TCP 172.18.0.100:51234 → 172.18.0.2:30080 on eth0}
//
// It is the equivalent of
//
//	ip netns exec <ns> tcpdump -i any -Q in -n \
//	  'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst port 30080'
//
// (with "udp dst port P" for UDP; for SCTP, "sctp dst port P" and the
// first chunk's type, the byte after SCTP's 12-byte common header, is 1,
// INIT), and the refusal itself shows in the kernel's counters:
//
//	ip netns exec <ns> nstat -az TcpOutRsts IcmpOutDestUnreachs
//
// The socket is AF_PACKET, SOCK_DGRAM, bound to ETH_P_IP on every
// interface; it sees each IPv4 packet as it arrives, before routing, so a
// packet a blackhole rule drops is still seen, and nothing the kernel does
// with it changes. A classic BPF filter, rebuilt by SetWatch, makes the
// kernel copy only the packets the watch set matches (and none the host
// sends): traffic to an unwatched port, including a proxy's UDP hot path,
// costs one short filter run and nothing else. Reported are a TCP SYN
// without ACK (so an established connection's packets never are), an SCTP
// packet whose first chunk is INIT, and every UDP datagram. What to know:
//
//   - A client that retries is reported each time: TCP retransmits an
//     unanswered SYN (after 1 s, 3 s, ...), SCTP its INIT. Dedupe by Src.
//   - Traffic a host sends to itself leaves and comes back on lo; it is
//     reported once, with Dev "lo". A host that forwards (a node routing
//     to its pods) reports a packet to a watched 0.0.0.0:P as it comes in,
//     whoever it is for.
//   - Packets holds ObserveBuffer packets; when its reader falls behind,
//     new packets are dropped and counted in Dropped (as are those the
//     kernel drops when the socket's buffer is full). The observer never
//     blocks, and never slows the traffic it watches.
//   - IPv4 only; fragments after the first are never reported (they
//     carry no ports).
//   - An observer is a socket in the host's namespace: close it before
//     removing the host.
//
// # Rate limits and impairments
//
// Link.SetRate puts a tbf qdisc on each end's egress (burst: 10 ms at the
// rate, at least 4 KiB; queue: 100 ms at the rate plus the burst).
// Link.SetImpairment puts netem there instead, with the tbf as its child when
// both are set. Kernels without sch_netem (like the development machine)
// return an error wrapping ErrNotSupported that says "netem qdisc
// unavailable".
//
// # SCTP
//
// SCTP sockets are one-to-one style (SOCK_STREAM), IPv4, non-blocking and
// wrapped with os.NewFile so they live in the Go runtime's poller: closing
// a listener wakes a blocked Accept, closing a conn wakes a blocked Read,
// and deadlines work. Their conns implement MessageConn: one ReadMessage is
// one message, with its stream id and PPID (github.com/ishidawataru/sctp's
// SCTPRead/SCTPWrite, with the data I/O event subscribed). Each
// association asks for SCTPStreams streams each way. Where the kernel has
// no SCTP, Listen and Dial fail with the kernel's "protocol not supported".
//
// # Errors
//
// Errors name the object and the host ("add veth "node-1" (eth0 in host
// "node-1", node-1 in host "bridge"): file exists"); socket errors wrap the
// net package's *net.OpError ("in host "client": dial tcp
// 10.244.2.5:80: connect: network is unreachable"), so errors.As and
// net.Error's Timeout work on them.
//
// # Leftovers
//
// Every namespace is recorded in /run/nplab/<lab>.json before it is
// created: a snapshot, then one appended line per change, so recording
// costs one write(2) at any lab size. Network.Close removes every name and
// handle and then the state file; it deletes no veth one by one (each
// costs the kernel an RCU grace period): the kernel frees the namespaces,
// and their veths, in the background and in batches. If something cannot
// be removed Close says so, keeps the state file listing
// what is left, and a second Close retries it. Clean(lab) does the same
// from the state file alone, for a lab whose process was killed (`nplab
// clean --name <lab>`: its namespaces died with it, their names are
// left); CleanAll cleans every lab with a state file. Clean
// refuses a lab whose recorded process is still alive ("lab "x" is still
// running (pid N): stop it with Ctrl-C, or kill it first", a *RunningError
// wrapping ErrLabRunning) unless that process is the caller; CleanAll skips
// such labs and its error names each. Nothing else is ever touched,
// whatever its name: a namespace called nplab-foo-x that no state file
// lists survives CleanAll.
// New refuses a lab name whose state file lists a namespace that still
// exists, and says to run `nplab clean --name <lab>`.
package netsim
