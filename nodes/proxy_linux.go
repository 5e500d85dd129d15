package nodes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nplab/nplab/netsim"
)

// Proxy tunables. They are variables so tests can shorten them.
var (
	// udpFlowIdle is how long a UDP flow stays pinned to its endpoint
	// without traffic, like conntrack's UDP timeout.
	udpFlowIdle = 30 * time.Second
	// backendDialTimeout bounds the proxy's connect to an endpoint.
	backendDialTimeout = 5 * time.Second
	// udpMaxFlows caps the UDP flows of one frontend, like a small
	// nf_conntrack_max: a new flow beyond it evicts the least recently
	// used one, so a flood from ever-changing source ports cannot open
	// sockets without bound.
	udpMaxFlows = 1024
)

// tproxyTable is the routing table that delivers pod replies to the
// proxy's transparent sockets under externalTrafficPolicy: Local.
const tproxyTable = 100

// localTable is the kernel's local routing table (RT_TABLE_LOCAL).
const localTable = 255

// tproxyRulePriority puts the reply rules after the local table (which
// netsim moves to 100 once a blackhole exists) and before the main table.
const tproxyRulePriority = 200

// blackholePriority puts the Local-policy drop rules before the local
// table, so a packet to the node's own address:nodePort is dropped before
// it is delivered.
const blackholePriority = 10

// podBypassPriority puts, just before each blackhole rule, one rule per
// pod range of the cluster that sends pod traffic to the local table
// anyway: under Local policy traffic from pods (on any node) still goes to
// cluster-wide endpoints (spec §5.3 4(a), §5.6), and a pod on another node
// reaches this node over eth0 like an external client does.
const podBypassPriority = blackholePriority - 1

// proxyEnv is what a node's proxy knows of the cluster around it.
type proxyEnv struct {
	node    string
	host    netsim.Host
	nodeIP  netip.Addr
	podCIDR netip.Prefix
	// podCIDRs are every node's pod range (the cluster CIDR, piece by
	// piece): the sources that bypass Local policy's blackhole rules.
	podCIDRs []netip.Prefix
	// isPodIP reports whether an address is in any node's pod range (the
	// "local traffic detector" by cluster CIDR).
	isPodIP func(netip.Addr) bool
	// isNodeIP reports whether an address is some node's IP.
	isNodeIP func(netip.Addr) bool
	// listens reports whether an endpoint's pod has an app listening on
	// its port for protocol, as the image catalog says; true when the pod
	// is not known. Nil: every endpoint listens.
	listens func(e Endpoint, protocol string) bool
	// serviceCIDR: ClusterIPs are local addresses of every node.
	serviceCIDR netip.Prefix
	mode        ProxyMode
	emit        func(Event)
	seed        uint64
	// noTransparent makes Local policy dial from the node (unit tests on
	// loopback, or a kernel that refuses IP_TRANSPARENT).
	noTransparent bool
}

// proxy is one node's kube-proxy: listeners on every nodePort and
// ClusterIP:port with usable endpoints, forwarding per connection / flow /
// association.
type proxy struct {
	env proxyEnv
	// ctx is cancelled by close: backend dials in flight give up at once.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	svcs      map[string]*svcState
	fronts    map[frontKey]*frontend
	rules     map[netsim.Rule]bool // blackhole and tproxy rules in place
	tproxyDst map[netip.Addr]bool  // client addresses with a local route in tproxyTable
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// svcState is one ServicePort as this node's proxy sees it.
type svcState struct {
	key string
	sp  atomic.Pointer[ServicePort]
	ch  *chooser
}

type frontKey struct {
	proto string // "TCP", "UDP", "SCTP"
	addr  netip.AddrPort
}

func (k frontKey) String() string { return k.addr.String() + "/" + k.proto }

// frontend is one listening socket of the proxy.
type frontend struct {
	key      frontKey
	nodePort bool // 0.0.0.0:nodePort (external traffic policy applies)
	svc      atomic.Pointer[svcState]
	closer   interface{ Close() error }

	// UDP only.
	mu    sync.Mutex
	flows map[netip.AddrPort]*udpFlow
	udp   *net.UDPConn // with IP_PKTINFO, or nil
	pc    net.PacketConn
}

func svcKey(sp *ServicePort) string {
	return sp.Service + ":" + sp.PortName + "/" + strings.ToUpper(sp.Protocol)
}

func newProxy(env proxyEnv) *proxy {
	ctx, cancel := context.WithCancel(context.Background())
	return &proxy{
		env:       env,
		ctx:       ctx,
		cancel:    cancel,
		svcs:      map[string]*svcState{},
		fronts:    map[frontKey]*frontend{},
		rules:     map[netsim.Rule]bool{},
		tproxyDst: map[netip.Addr]bool{},
		conns:     map[net.Conn]struct{}{},
	}
}

func (p *proxy) errorEvent(format string, args ...any) {
	p.env.emit(Event{Time: time.Now(), Kind: EventProxyError, Node: p.env.node, Message: fmt.Sprintf(format, args...)})
}

// sync makes the proxy's listeners, rules and flows match ports. It is
// cheap when nothing changed: unchanged listeners are kept.
func (p *proxy) sync(ports []ServicePort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	wantFront := map[frontKey]*svcState{}
	frontNodePort := map[frontKey]bool{}
	wantRules := map[netsim.Rule]bool{}
	newSvcs := map[string]*svcState{}
	for i := range ports {
		sp := ports[i]
		sp.Protocol = strings.ToUpper(sp.Protocol)
		if sp.Protocol == "" {
			sp.Protocol = "TCP"
		}
		k := svcKey(&sp)
		st := p.svcs[k]
		if st == nil {
			st = &svcState{key: k, ch: newChooser(p.env.seed + uint64(len(p.svcs)+len(newSvcs))*7919)}
		}
		st.sp.Store(&sp)
		newSvcs[k] = st
		usable := usableEndpoints(sp.Endpoints, "")
		if len(usable) == 0 {
			// No usable endpoint anywhere: no listener, so the node's
			// kernel refuses (TCP RST, ICMP port unreachable) like
			// kube-proxy's REJECT rule.
			continue
		}
		if !p.anyListens(usable, sp.Protocol) {
			// Endpoints, but no app listens on their port (nginx behind
			// targetPort 8080): kube-proxy would DNAT and every pod's
			// kernel would refuse. Without a listener the node's kernel
			// refuses the same way, where a proxy that accepted could
			// only reset.
			continue
		}
		if sp.ClusterIP.IsValid() && sp.Port > 0 {
			fk := frontKey{sp.Protocol, netip.AddrPortFrom(sp.ClusterIP, sp.Port)}
			if other, dup := wantFront[fk]; dup {
				p.errorEvent("%s and %s both want %s; keeping %s", other.key, k, fk, other.key)
			} else {
				wantFront[fk] = st
			}
		}
		if sp.NodePort > 0 {
			fk := frontKey{sp.Protocol, netip.AddrPortFrom(netip.IPv4Unspecified(), sp.NodePort)}
			if other, dup := wantFront[fk]; dup {
				p.errorEvent("%s and %s both want nodePort %s; keeping %s", other.key, k, fk, other.key)
			} else {
				wantFront[fk] = st
				frontNodePort[fk] = true
			}
			if sp.ExternalTrafficPolicy == "Local" {
				local := usableEndpoints(sp.Endpoints, p.env.node)
				if len(local) == 0 {
					// Endpoints elsewhere but none here: external
					// traffic is dropped (the client times out), while
					// pods and the node itself still get through.
					proto := strings.ToLower(sp.Protocol)
					wantRules[netsim.Rule{Priority: blackholePriority, IIF: "eth0", Proto: proto, DPort: sp.NodePort, Blackhole: true}] = true
					for _, pc := range p.env.podCIDRs {
						wantRules[netsim.Rule{Priority: podBypassPriority, IIF: "eth0", From: pc.Masked(), Proto: proto, DPort: sp.NodePort, Table: localTable}] = true
					}
				}
				if !p.env.noTransparent {
					for _, e := range local {
						wantRules[netsim.Rule{Priority: tproxyRulePriority, From: netip.PrefixFrom(e.Addr.Addr(), 32),
							Proto: strings.ToLower(sp.Protocol), SPort: e.Addr.Port(), Table: tproxyTable}] = true
					}
				}
			}
		}
	}
	p.svcs = newSvcs

	// Listeners: close what is no longer wanted, open what is new.
	for fk, f := range p.fronts {
		if _, ok := wantFront[fk]; !ok {
			f.close()
			delete(p.fronts, fk)
		}
	}
	for fk, st := range wantFront {
		if f := p.fronts[fk]; f != nil {
			f.svc.Store(st)
			continue
		}
		f, err := p.open(fk, frontNodePort[fk], st)
		if err != nil {
			p.errorEvent("service %s: could not open %s: %v", st.key, fk, err)
			continue
		}
		p.fronts[fk] = f
	}
	// UDP flows whose endpoint stopped serving are flushed (§5.9), so the
	// client's next datagram picks a new endpoint.
	for _, f := range p.fronts {
		if f.key.proto == "UDP" {
			f.flushStale()
		}
	}
	// Rules.
	for r := range p.rules {
		if !wantRules[r] {
			if err := p.env.host.DelRule(r); err != nil {
				p.errorEvent("could not delete rule %+v: %v", r, err)
			}
			delete(p.rules, r)
		}
	}
	for r := range wantRules {
		if p.rules[r] {
			continue
		}
		if err := p.env.host.AddRule(r); err != nil {
			p.errorEvent("could not add rule %+v: %v", r, err)
			continue
		}
		p.rules[r] = true
	}
}

// anyListens reports whether some endpoint of eps has an app listening on
// its port for protocol.
func (p *proxy) anyListens(eps []Endpoint, protocol string) bool {
	if p.env.listens == nil {
		return true
	}
	for _, e := range eps {
		if p.env.listens(e, protocol) {
			return true
		}
	}
	return false
}

// open starts a frontend listener inside the node.
func (p *proxy) open(fk frontKey, nodePort bool, st *svcState) (*frontend, error) {
	f := &frontend{key: fk, nodePort: nodePort}
	f.svc.Store(st)
	ctx := context.Background()
	switch fk.proto {
	case "TCP", "SCTP":
		network := "tcp4"
		if fk.proto == "SCTP" {
			network = "sctp"
		}
		l, err := p.env.host.Listen(ctx, network, fk.addr.String())
		if err != nil {
			return nil, err
		}
		f.closer = l
		p.wg.Go(func() { p.acceptLoop(f, l) })
	case "UDP":
		pc, err := p.env.host.ListenPacket(ctx, "udp4", fk.addr.String())
		if err != nil {
			return nil, err
		}
		f.closer = pc
		f.pc = pc
		f.flows = map[netip.AddrPort]*udpFlow{}
		f.udp = enablePktinfo(pc)
		p.wg.Go(func() { p.udpLoop(f) })
	default:
		return nil, fmt.Errorf("unknown protocol %q", fk.proto)
	}
	return f, nil
}

func (f *frontend) close() {
	_ = f.closer.Close()
	if f.key.proto == "UDP" {
		f.mu.Lock()
		flows := f.flows
		f.flows = nil // closed: newUDPFlow adds no more
		f.mu.Unlock()
		for _, fl := range flows {
			fl.close()
		}
	}
}

// close stops every listener and connection and removes the proxy's rules.
func (p *proxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cancel()
	for _, f := range p.fronts {
		f.close()
	}
	p.fronts = nil
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// route is the decision for one new connection or flow.
type route struct {
	ep          Endpoint
	ok          bool
	transparent bool // dial with the client's address as source
	result      FlowResult
}

// decide picks an endpoint for a new connection from client to frontend f,
// following kube-proxy's chains (spec §5.3): ClusterIP traffic and
// Cluster-policy nodePort traffic may go to any usable endpoint; under
// Local policy, traffic from a pod or from the node itself still may, but
// external traffic goes only to this node's endpoints and keeps its source
// address, and is dropped when there is none.
func (p *proxy) decide(f *frontend, sp *ServicePort, st *svcState, client netip.Addr) route {
	node := ""
	external := false
	if f.nodePort && sp.ExternalTrafficPolicy == "Local" && !p.internalSource(client) {
		node, external = p.env.node, true
	}
	cands := usableEndpoints(sp.Endpoints, node)
	if len(cands) == 0 {
		if external && len(usableEndpoints(sp.Endpoints, "")) > 0 {
			return route{result: FlowDropped}
		}
		return route{result: FlowRefused}
	}
	ep, _ := st.ch.pick(cands, client, p.env.mode, sp.AffinityTimeout, time.Now())
	// Transparent only for clients outside the cluster: a node IP as
	// source would need a local route for that node's address here, which
	// would swallow that node's own proxied replies from our pods.
	// Linux SCTP cannot send from a foreign address even with
	// IP_TRANSPARENT (netsim.ErrTransparentSCTP), so SCTP under Local keeps
	// the node's address: the one place nplab cannot show the client's.
	tr := external && !p.env.noTransparent && !p.env.isNodeIP(client) && sp.Protocol != "SCTP"
	return route{ep: ep, ok: true, transparent: tr, result: FlowOK}
}

// internalSource reports whether client is a pod (anywhere in the cluster)
// or an address of this node.
func (p *proxy) internalSource(a netip.Addr) bool {
	return p.env.isPodIP(a) || a == p.env.nodeIP || a.IsLoopback() ||
		a == gatewayOf(p.env.podCIDR) || p.env.serviceCIDR.Contains(a)
}

// dial opens the proxy's side of a connection to the chosen endpoint.
func (p *proxy) dial(ctx context.Context, network string, r route, client netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, backendDialTimeout)
	defer cancel()
	if r.transparent {
		d := netsim.Dial{Network: network, Local: client, Remote: r.ep.Addr, Transparent: true, Timeout: backendDialTimeout}
		if err := p.ensureTproxyRoute(client.Addr()); err != nil {
			return nil, err
		}
		c, err := p.env.host.DialFrom(ctx, d)
		if errors.Is(err, syscall.EADDRINUSE) {
			d.Local = netip.AddrPortFrom(client.Addr(), 0)
			c, err = p.env.host.DialFrom(ctx, d)
		}
		return c, err
	}
	return p.env.host.Dial(ctx, network, r.ep.Addr.String())
}

// ensureTproxyRoute makes replies to client (from pods matched by the
// tproxy rules) local to the node, where the transparent socket takes
// them: ip route add local <client>/32 dev lo table 100.
func (p *proxy) ensureTproxyRoute(client netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tproxyDst[client] {
		return nil
	}
	err := p.env.host.AddRoute(netsim.Route{Dst: netip.PrefixFrom(client, 32), Dev: "lo", Local: true, Table: tproxyTable})
	if err != nil && !errors.Is(err, os.ErrExist) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("local route for %s in table %d: %w", client, tproxyTable, err)
	}
	p.tproxyDst[client] = true
	return nil
}

func (p *proxy) flowEvent(fl *Flow) {
	p.env.emit(Event{Time: time.Now(), Kind: EventFlow, Node: p.env.node, Pod: fl.Pod, Flow: fl,
		Message: flowMessage(fl)})
}

func flowMessage(fl *Flow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s → %s (%s)", fl.Protocol, fl.Client, fl.Frontend, fl.Service)
	if fl.Pod != "" {
		fmt.Fprintf(&b, " → %s on %s at %s", fl.Pod, fl.PodNode, fl.Backend)
	}
	fmt.Fprintf(&b, ": %s", fl.Result)
	if fl.Result == FlowReset {
		b.WriteString(" (the pod refused the proxy's connection, so the proxy reset the client's)")
	}
	return b.String()
}

// classify maps a dial or I/O error to a FlowResult.
func classify(err error) FlowResult {
	var ne net.Error
	switch {
	case err == nil:
		return FlowOK
	case errors.Is(err, syscall.ECONNREFUSED):
		return FlowRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return FlowReset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return FlowTimedOut
	}
	return FlowError
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	switch v := a.(type) {
	case *net.TCPAddr:
		return unmap(v.AddrPort())
	case *net.UDPAddr:
		return unmap(v.AddrPort())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		// SCTP addresses may list several IPs: "10.0.0.1/10.0.0.2:80".
		s := a.String()
		if i := strings.LastIndex(s, ":"); i > 0 {
			host := strings.Split(s[:i], "/")[0]
			if ip, err := netip.ParseAddr(host); err == nil {
				if port, err := strconv.Atoi(s[i+1:]); err == nil {
					return netip.AddrPortFrom(ip.Unmap(), uint16(port))
				}
			}
		}
		return netip.AddrPort{}
	}
	return unmap(ap)
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// gatewayOf is the node side of a pod range: 10.244.N.1.
func gatewayOf(p netip.Prefix) netip.Addr {
	return p.Masked().Addr().Next()
}
