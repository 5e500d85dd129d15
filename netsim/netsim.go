package netsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ErrNotSupported is returned by every operation on a platform or kernel that
// lacks what it needs (no Linux, no netem qdisc, no SCTP). Wrapped errors
// name what is missing; test with errors.Is.
var ErrNotSupported = errors.New("netsim: not supported here")

// ErrLabRunning is what Clean and CleanAll return (wrapped in a
// *RunningError) for a lab whose process is still alive.
var ErrLabRunning = errors.New("lab is still running")

// RunningError says which lab Clean refused to remove, and which process
// still runs it.
type RunningError struct {
	Lab string
	PID int
}

func (e *RunningError) Error() string {
	return fmt.Sprintf("lab %q is still running (pid %d): stop it with Ctrl-C, or kill it first", e.Lab, e.PID)
}

// Unwrap makes errors.Is(err, ErrLabRunning) true.
func (e *RunningError) Unwrap() error { return ErrLabRunning }

// Network is one lab's network: every host and link it creates, and nothing
// else. Closing it removes all of them. A Network is safe for concurrent use.
type Network interface {
	// Lab is the lab name; every namespace is called "nplab-<lab>-<host>".
	Lab() string

	// AddHost creates a host (a named network namespace whose lo is up).
	// Equivalent to: ip netns add nplab-<lab>-<name>; ip -n ... link set lo up
	AddHost(name string) (Host, error)
	// Host returns a host by name, or nil.
	Host(name string) Host
	// RemoveHost deletes a host, its sockets' namespace and its links.
	// Removing a host that is already gone is not an error.
	RemoveHost(name string) error

	// AddBridge creates a Linux bridge device inside host and sets it up.
	// Equivalent to: ip -n <ns> link add <name> type bridge; ip -n <ns> link set <name> up
	AddBridge(host Host, name string) error

	// AddLink joins two hosts with a veth pair built in one netlink request,
	// each end placed directly in its host, given its addresses and set up.
	// Equivalent to: ip link add <A.Name> netns <A> type veth peer <B.Name> netns <B> ...
	AddLink(spec LinkSpec) (Link, error)
	// Link returns a link by its name (LinkSpec.Name), or nil.
	Link(name string) Link

	// Close removes every host and link of the lab and its state file.
	// It keeps going after a failure and returns the first error; the lab
	// then takes nothing new, and calling Close again retries what is
	// left. Once Close has succeeded, further calls do nothing.
	Close() error
}

// LinkSpec describes one veth pair.
type LinkSpec struct {
	// Name identifies the link within the lab ("node-1", "pod/web-x").
	Name string
	A, B LinkEnd
}

// LinkEnd is one end of a veth pair.
type LinkEnd struct {
	Host Host
	// Dev is the interface name inside Host, at most 15 bytes ("eth0").
	Dev string
	// Addrs are assigned to the interface.
	Addrs []netip.Prefix
	// Bridge, if set, names a bridge in Host (see AddBridge) to enslave Dev to.
	Bridge string
}

// Route is one route in a host. Zero Table means the main table.
type Route struct {
	Dst netip.Prefix
	// Via is the gateway; invalid means a directly connected (link-scope) route.
	Via netip.Addr
	// Dev names the outgoing interface; optional when Via is set.
	Dev string
	// Src is the preferred source address; optional.
	Src netip.Addr
	// Local makes it a "local" route (deliver to this host), used with a
	// Table for transparent proxying:
	// ip route add local 0.0.0.0/0 dev lo table 100
	Local bool
	Table int
}

// Rule is one policy-routing rule in a host (ip rule).
type Rule struct {
	// Priority is the rule's preference; 0 lets the kernel choose (just
	// before the main table's rule, as plain `ip rule add` does).
	Priority int
	// IIF matches the incoming interface ("eth0"); empty matches any.
	IIF string
	// From matches the source prefix; invalid matches any.
	From netip.Prefix
	// Proto is "tcp", "udp" or "sctp"; empty matches any.
	Proto string
	// SPort and DPort match the source / destination port; 0 matches any.
	SPort, DPort uint16
	// Table to look up; ignored when Blackhole.
	Table int
	// Blackhole silently drops matching packets (ip rule ... blackhole);
	// this is how a node drops NodePort traffic it has no local endpoint
	// for. A blackhole rule takes effect before the local table when its
	// Priority is below 100: the host's "lookup local" rule is moved from
	// priority 0 to 100 the first time such a rule is added.
	Blackhole bool
}

// Host is one network namespace: a node, a pod, the client or the bridge.
// Sockets it opens live in its namespace for their whole life and may be
// used from any goroutine.
type Host interface {
	// Name is the host's name in the lab ("node-1").
	Name() string
	// Namespace is the name `ip netns list` shows ("nplab-demo-node-1").
	Namespace() string

	// AddAddr adds an address to an interface; one already there is not an
	// error. Equivalent to: ip -n <ns> addr add <p> dev <dev>
	AddAddr(dev string, p netip.Prefix) error
	// DelAddr removes an address; a missing one is not an error.
	// Equivalent to: ip -n <ns> addr del <p> dev <dev>
	DelAddr(dev string, p netip.Prefix) error
	// AddRoute adds (or replaces) the route to r.Dst in r.Table. Routes
	// through a link come back when the link is set up again.
	// Equivalent to: ip -n <ns> route replace <dst> via <via> dev <dev> table <t>
	AddRoute(r Route) error
	// AddRule adds a policy-routing rule; one already there is not an
	// error. The first rule with a priority below 100 moves the host's
	// "lookup local" rule from priority 0 to 100 (see Rule.Blackhole).
	// Equivalent to: ip -n <ns> rule add pref <p> iif <i> from <f> ipproto <x> sport <s> dport <d> lookup <t>|blackhole
	AddRule(r Rule) error
	// DelRule deletes a rule added by AddRule; a missing rule is not an error.
	// Equivalent to: ip -n <ns> rule del <the same selectors>
	DelRule(r Rule) error
	// Sysctl sets a sysctl inside the namespace, key as in
	// "net.ipv4.ip_forward".
	// Equivalent to: ip netns exec <ns> sysctl -w <key>=<value>
	Sysctl(key, value string) error

	// Listen opens a stream listener: network "tcp", "tcp4" or "sctp"
	// (IPv4). Equivalent to: ip netns exec <ns> nc -l <port>
	// An SCTP listener's conns implement MessageConn. Closing the listener
	// wakes a blocked Accept.
	Listen(ctx context.Context, network, address string) (net.Listener, error)
	// ListenPacket opens "udp"/"udp4" sockets.
	// Equivalent to: ip netns exec <ns> nc -u -l <port>
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
	// Dial connects from this host: network "tcp", "udp" or "sctp",
	// giving up at ctx's deadline.
	// Equivalent to: ip netns exec <ns> nc <ip> <port>
	Dial(ctx context.Context, network, address string) (net.Conn, error)
	// DialFrom is Dial with options: a fixed local address, or a
	// transparent socket (IP_TRANSPARENT) whose local address is not one of
	// this host's, so the peer sees Local as the source.
	DialFrom(ctx context.Context, d Dial) (net.Conn, error)
}

// Observe opens a packet socket inside h that reports the first packet
// of attempts to the watched destinations (see Observer.SetWatch; it
// starts with none): a TCP SYN without ACK, an SCTP packet whose first
// chunk is INIT, a UDP datagram, received on any interface of the host
// (never one the host sends). It changes nothing the kernel does with
// them: a refused or blackholed attempt stays refused or blackholed, and
// is still seen. IPv4 only. The observer is closed when ctx ends.
// Equivalent to: ip netns exec <ns> tcpdump -i any -Q in 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst port P'
//
// Every host netsim creates can observe. Observe is a function, not a
// method of Host, so that other implementations of Host (test fakes)
// need not change: for a Host without a method
// Observe(context.Context) (Observer, error) it returns an error wrapping
// ErrNotSupported.
func Observe(ctx context.Context, h Host) (Observer, error) {
	if o, ok := h.(interface {
		Observe(context.Context) (Observer, error)
	}); ok {
		return o.Observe(ctx)
	}
	return nil, fmt.Errorf("observe in host %v: %w (a %T cannot observe)", h, ErrNotSupported, h)
}

// Observer reports attempts to reach watched destinations in one host
// (see Observe). A classic BPF filter in the kernel copies only matching
// packets to it, so traffic to unwatched ports costs nothing extra.
type Observer interface {
	// SetWatch replaces the watched destinations; an empty set reports
	// nothing. Once it returns, only packets matching the new set are
	// delivered (those already in Packets stay there).
	SetWatch(ws []Watch) error
	// Packets delivers what was observed. It buffers ObserveBuffer
	// packets; when the reader falls behind, new packets are dropped and
	// counted (Dropped) rather than blocking. It is closed when Close
	// returns, or when the context given to Observe ends.
	Packets() <-chan Packet
	// Dropped counts matching packets that were not delivered: Packets
	// was full, or the kernel's socket buffer was.
	Dropped() uint64
	// Close stops observing and closes Packets. Closing again does
	// nothing.
	Close() error
}

// ObserveBuffer is how many packets an Observer's Packets channel holds.
const ObserveBuffer = 1024

// Watch is one watched destination of an Observer.
type Watch struct {
	// Protocol is "TCP", "UDP" or "SCTP" (as in a Service's ports).
	Protocol string
	// Dst is the destination. An unspecified (or invalid) address, as in
	// 0.0.0.0:30080, matches any destination address with that port.
	// IPv4 only; the port must not be 0.
	Dst netip.AddrPort
}

// Packet is one observed attempt: the first packet of a TCP connection
// (SYN) or SCTP association (INIT), or one UDP datagram. A client that
// retries (TCP retransmits its SYN after 1 s, 3 s, ...) is reported once
// per packet: dedupe by Src if one attempt is wanted.
type Packet struct {
	// Time is when the observer read the packet.
	Time time.Time
	// Protocol is "TCP", "UDP" or "SCTP".
	Protocol string
	Src, Dst netip.AddrPort
	// Dev is the interface the packet came in on ("eth0", "lo", a pod's
	// veth), or "if<index>" when its name could not be found.
	Dev string
}

// Dial is a dial with its options, for Host.DialFrom.
type Dial struct {
	Network string // "tcp", "udp" or "sctp"
	Local   netip.AddrPort
	Remote  netip.AddrPort
	// Transparent sets IP_TRANSPARENT so Local need not be this host's
	// (TCP and UDP; SCTP returns an error wrapping ErrNotSupported).
	Transparent bool
	Timeout     time.Duration
}

// Link is one veth pair.
type Link interface {
	Name() string
	// SetUp sets both ends up or down.
	// Equivalent to: ip -n <ns> link set <dev> down
	SetUp(up bool) error
	// SetRate limits the A→B and B→A rate with a tbf qdisc, in bits per
	// second; 0 removes the limit.
	// Equivalent to: tc -n <ns> qdisc replace dev <dev> root tbf rate <bps>bit burst <b> limit <l> (both ends)
	SetRate(bitsPerSecond uint64) error
	// SetImpairment adds delay and loss with netem on both ends' egress
	// (a round trip gains 2×Delay); the zero Impairment removes it. It
	// returns an error wrapping ErrNotSupported ("netem qdisc unavailable")
	// where the kernel lacks netem.
	// Equivalent to: tc -n <ns> qdisc replace dev <dev> root netem delay <d> <jitter> loss <p>% (both ends)
	SetImpairment(im Impairment) error
}

// Impairment is what netem adds to a link, in each direction. Zero value:
// none.
type Impairment struct {
	Delay  time.Duration
	Jitter time.Duration
	// LossPercent is 0..100.
	LossPercent float64
}

// MessageConn is a conn that keeps message boundaries (SCTP): one Read is
// one message; stream ids and payload protocol ids travel with them.
type MessageConn interface {
	net.Conn
	ReadMessage(b []byte) (n int, info MessageInfo, err error)
	WriteMessage(b []byte, info MessageInfo) (int, error)
}

// MessageInfo is the SCTP stream and payload protocol id of one message.
// Stream must be below SCTPStreams.
type MessageInfo struct {
	Stream uint16
	PPID   uint32
}
