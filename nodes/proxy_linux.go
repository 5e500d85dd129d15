//go:build linux

package nodes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// Proxy tunables. They are variables so tests can shorten them.
var (
	// udpFlowIdle is how long a UDP flow stays pinned to its endpoint
	// without traffic, like conntrack's UDP timeout.
	udpFlowIdle = 30 * time.Second
	// udpReplyTimeout is how long a new UDP flow waits for the pod's first
	// reply before it is reported as timed out (plane.ReasonNoReply).
	udpReplyTimeout = 2 * time.Second
	// backendDialTimeout bounds the proxy's connect to an endpoint.
	backendDialTimeout = 5 * time.Second
	// udpMaxFlows caps the UDP flows of one frontend, like a small
	// nf_conntrack_max: a new flow beyond it evicts an idle one (the least
	// recently used of a few sampled, see udpFlowTable.add), so a flood
	// from ever-changing source ports cannot open sockets without bound.
	udpMaxFlows = 1024
)

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
	// serviceCIDR: ClusterIPs are local addresses of every node.
	serviceCIDR netip.Prefix
	mode        plane.ProxyMode
	// ctl receives warnings and listener sets.
	ctl plane.Control
	// report receives every finished flow; nil: ctl.Flow.
	report func(plane.Flow)
	// pods snapshots the running pods and what their apps listen on, for
	// the plan; nil: every endpoint listens.
	pods func() map[string]podFacts
	// explain says why an attempt to pod on podNode failed when the
	// cluster knows (a link down, the app stopped); nil: it never knows.
	explain func(pod, podNode string) (plane.FlowReason, string)
	seed    uint64
	// noTransparent makes Local policy dial from the node (unit tests on
	// loopback, or a kernel that refuses IP_TRANSPARENT).
	noTransparent bool
	// watch replaces what the node's observer watches (see
	// kernelWatches); nil: the node's kernel is not observed.
	watch func([]netsim.Watch)
}

// proxy is one node's kube-proxy: listeners on every nodePort and
// ClusterIP:port with usable endpoints, forwarding per connection / flow /
// association.
//
// A sync plans (planProxy, pure) and then applies the plan: it takes mu
// only to read and swap state, never across opening a socket or a netlink
// call; syncMu keeps syncs in order.
type proxy struct {
	env proxyEnv
	// ctx is cancelled by close: backend dials in flight give up at once.
	ctx    context.Context
	cancel context.CancelFunc

	// syncMu serializes syncs; rules and listening belong to the sync
	// holding it.
	syncMu    sync.Mutex
	rules     map[netsim.Rule]bool // blackhole and tproxy rules in place
	listening []plane.Listener     // the set last reported
	watching  map[frontKey]verdict // the verdicts the observer watches

	// routeMu guards tproxyDst: client addresses with a local route in
	// tproxyTable.
	routeMu   sync.Mutex
	tproxyDst map[netip.Addr]bool

	mu       sync.Mutex
	closed   bool
	svcs     map[string]*svcState
	fronts   map[frontKey]*frontend
	verdicts map[frontKey]verdict
	// prevVerdicts were the verdicts until verdictsAt, when the last
	// sync that changed them swapped in verdicts: an attempt the kernel
	// answered before then is judged by them (see verdict).
	prevVerdicts map[frontKey]verdict
	verdictsAt   time.Time
	conns        map[net.Conn]struct{}
	wg           sync.WaitGroup
}

// svcState is one ServicePort as this node's proxy sees it.
type svcState struct {
	key string
	sp  atomic.Pointer[svcPort]
	ch  *chooser
}

// svcPort is a ServicePort with its usable endpoints, swapped in whole by
// a sync, so a connection reads one consistent snapshot with one atomic
// load and takes no lock until it picks.
type svcPort struct {
	plane.ServicePort
	eps endpointSets
}

// frontend is one listening socket of the proxy.
type frontend struct {
	key      frontKey
	nodePort bool // 0.0.0.0:nodePort (external traffic policy applies)
	svc      atomic.Pointer[svcState]
	closer   interface{ Close() error }
	serve    func() // the accept or read loop, started once registered

	// UDP only.
	flows *udpFlowTable
	udp   *net.UDPConn // with IP_PKTINFO, or nil
	pc    net.PacketConn
}

func newProxy(env proxyEnv) *proxy {
	if env.ctl == nil {
		env.ctl = nopControl{}
	}
	if env.report == nil {
		env.report = env.ctl.Flow
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &proxy{
		env:       env,
		ctx:       ctx,
		cancel:    cancel,
		svcs:      map[string]*svcState{},
		fronts:    map[frontKey]*frontend{},
		verdicts:  map[frontKey]verdict{},
		rules:     map[netsim.Rule]bool{},
		tproxyDst: map[netip.Addr]bool{},
		conns:     map[net.Conn]struct{}{},
	}
}

// warn reports a problem of this node's proxy to the control plane.
func (p *proxy) warn(format string, args ...any) {
	p.env.ctl.Warning(p.env.node, "", fmt.Sprintf(format, args...))
}

// sync makes the proxy's listeners, rules and flows match ports: it plans
// (planProxy) and applies the plan. It is cheap when nothing changed:
// unchanged listeners are kept. When the set of listeners changed it
// reports the complete new set with Control.Listening.
func (p *proxy) sync(ports []plane.ServicePort) {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	env := planEnv{node: p.env.node, podCIDRs: p.env.podCIDRs, transparent: !p.env.noTransparent}
	if p.env.pods != nil {
		env.pods = p.env.pods()
	}
	pl := planProxy(ports, env)
	for _, w := range pl.warnings {
		p.warn("%s", w)
	}

	// While listeners and rules move, the observer watches only the
	// frontends the kernel answers the same way before and after (not
	// one about to get a listener, lose its blackhole or gain either), so
	// an attempt a proxy socket takes is never also a kernel flow. The
	// new plan's frontends are watched once it is in place.
	if p.env.watch != nil {
		listened := map[frontKey]bool{}
		p.mu.Lock()
		for fk := range p.fronts {
			listened[fk] = true
		}
		p.mu.Unlock()
		for fk := range pl.fronts {
			listened[fk] = true
		}
		p.env.watch(kernelWatches(steadyVerdicts(p.watching, pl.verdicts), listened, p.ownAddrs()))
	}

	// Swap in the new service state and find the listeners to close and
	// to open.
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	newSvcs := make(map[string]*svcState, len(pl.keys))
	for i, k := range pl.keys {
		sp := pl.ports[k]
		st := p.svcs[k]
		if st == nil {
			st = &svcState{key: k, ch: newChooser(p.env.seed + uint64(len(p.svcs)+i)*7919)}
		}
		st.sp.Store(&svcPort{ServicePort: sp, eps: newEndpointSets(sp.Endpoints, p.env.node)})
		newSvcs[k] = st
	}
	p.svcs = newSvcs
	if !maps.Equal(p.verdicts, pl.verdicts) {
		// Only a change starts a new plan for verdict's purposes, so
		// the syncs that change nothing do not push the one before out.
		p.prevVerdicts, p.verdicts, p.verdictsAt = p.verdicts, pl.verdicts, time.Now()
	}
	var toClose []*frontend
	var toOpen []frontKey
	for fk, f := range p.fronts {
		if want, ok := pl.fronts[fk]; !ok || want.nodePort != f.nodePort {
			toClose = append(toClose, f)
			delete(p.fronts, fk)
		}
	}
	for fk, want := range pl.fronts {
		if f := p.fronts[fk]; f != nil {
			f.svc.Store(newSvcs[want.svc])
			continue
		}
		toOpen = append(toOpen, fk)
	}
	p.mu.Unlock()

	for _, f := range toClose {
		f.close()
	}
	opened := map[frontKey]*frontend{}
	for _, fk := range toOpen {
		want := pl.fronts[fk]
		f, err := p.open(fk, want.nodePort)
		if err != nil {
			p.warn("service %s: could not open %s: %v", want.svc, fk, planeErr(err))
			continue
		}
		opened[fk] = f
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		for _, f := range opened {
			f.close()
		}
		return
	}
	for fk, f := range opened {
		f.svc.Store(newSvcs[pl.fronts[fk].svc])
		p.fronts[fk] = f
		p.wg.Go(f.serve)
	}
	var udp []*frontend
	have := map[frontKey]planFront{}
	for fk, f := range p.fronts {
		if fk.proto == "UDP" {
			udp = append(udp, f)
		}
		have[fk] = pl.fronts[fk]
	}
	p.mu.Unlock()

	// UDP flows whose endpoint stopped serving are flushed (§5.9), so the
	// client's next datagram picks a new endpoint.
	for _, f := range udp {
		f.flushStale()
	}
	p.applyRules(pl.rules)
	if p.env.watch != nil {
		listened := map[frontKey]bool{}
		for fk := range pl.fronts {
			listened[fk] = true
		}
		p.env.watch(kernelWatches(pl.verdicts, listened, p.ownAddrs()))
		p.watching = pl.verdicts
	}
	if ls := listenerSet(have); !slices.Equal(ls, p.listening) {
		p.listening = ls
		p.env.ctl.Listening(p.env.node, ls)
	}
}

// ownAddrs are the node's addresses a nodePort is reached on besides the
// ClusterIPs: its IP, the node side of its pods' veths, loopback.
func (p *proxy) ownAddrs() []netip.Addr {
	return []netip.Addr{p.env.nodeIP, gatewayOf(p.env.podCIDR), netip.AddrFrom4([4]byte{127, 0, 0, 1})}
}

// ownAddr reports whether a is an address of this node a client can
// reach a frontend on (not a pod's address the node only forwards to).
func (p *proxy) ownAddr(a netip.Addr) bool {
	return a == p.env.nodeIP || a == gatewayOf(p.env.podCIDR) || a.IsLoopback() || p.env.serviceCIDR.Contains(a)
}

// applyRules adds and deletes ip rules so exactly want are in place.
// syncMu is held.
func (p *proxy) applyRules(want map[netsim.Rule]bool) {
	for r := range p.rules {
		if !want[r] {
			if err := p.env.host.DelRule(r); err != nil {
				p.warn("could not delete rule %+v: %v", r, err)
			}
			delete(p.rules, r)
		}
	}
	for r := range want {
		if p.rules[r] {
			continue
		}
		if err := p.env.host.AddRule(r); err != nil {
			p.warn("could not add rule %+v: %v", r, err)
			continue
		}
		p.rules[r] = true
	}
}

// verdict is what the node's kernel did with a new attempt from client to
// frontend (proto "TCP", "UDP", "SCTP") that arrived at time at: refuse
// (no listener) or drop (Local policy, external clients only). ok is false
// when the proxy takes it (or the node knows no service there).
//
// It judges by the plan in force when the attempt arrived: the last one,
// or, for an attempt that arrived before the last sync swapped its plan
// in, the one before (a sync opens listeners and changes rules only after
// the swap, so until then the kernel did what the previous plan says).
// Only one plan back is kept, and only a sync that changed the verdicts
// makes a new one: an attempt that waited out two such syncs is judged by
// the older of the two.
func (p *proxy) verdict(proto string, frontend netip.AddrPort, client netip.Addr, at time.Time) (verdict, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	verdicts := p.verdicts
	if at.Before(p.verdictsAt) && p.prevVerdicts != nil {
		verdicts = p.prevVerdicts
	}
	keys := []frontKey{{proto, frontend}}
	if !p.env.serviceCIDR.Contains(frontend.Addr()) {
		// Any of the node's own addresses: its nodePort.
		keys = append(keys, frontKey{proto, netip.AddrPortFrom(netip.IPv4Unspecified(), frontend.Port())})
	}
	for _, k := range keys {
		v, ok := verdicts[k]
		if !ok {
			continue
		}
		if v.ExternalOnly && p.internalSource(client) {
			return verdict{}, false
		}
		return v, true
	}
	return verdict{}, false
}

// knows reports whether the last plan, or the one before, has a verdict
// for proto traffic to frontend (for any client).
func (p *proxy) knows(proto string, frontend netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := []frontKey{{proto, frontend}}
	if !p.env.serviceCIDR.Contains(frontend.Addr()) {
		keys = append(keys, frontKey{proto, netip.AddrPortFrom(netip.IPv4Unspecified(), frontend.Port())})
	}
	for _, k := range keys {
		if _, ok := p.verdicts[k]; ok {
			return true
		}
		if _, ok := p.prevVerdicts[k]; ok {
			return true
		}
	}
	return false
}

// open opens a frontend's socket inside the node. Its serving loop
// (f.serve) starts once the frontend is registered.
func (p *proxy) open(fk frontKey, nodePort bool) (*frontend, error) {
	f := &frontend{key: fk, nodePort: nodePort}
	ctx := context.Background()
	switch fk.proto {
	case "TCP", "SCTP":
		network := "tcp4"
		if fk.proto == "SCTP" {
			network = "sctp"
		}
		// Without TCP keep-alive: see netsim.ProxyListen.
		l, err := netsim.ProxyListen(ctx, p.env.host, network, fk.addr.String())
		if err != nil {
			return nil, err
		}
		f.closer = l
		f.serve = func() { p.acceptLoop(f, l) }
	case "UDP":
		pc, err := p.env.host.ListenPacket(ctx, "udp4", fk.addr.String())
		if err != nil {
			return nil, err
		}
		f.closer = pc
		f.pc = pc
		f.flows = newUDPFlowTable(udpMaxFlows)
		f.udp = enablePktinfo(pc)
		f.serve = func() { p.udpLoop(f) }
	default:
		return nil, fmt.Errorf("unknown protocol %q", fk.proto)
	}
	return f, nil
}

func (f *frontend) close() {
	_ = f.closer.Close()
	if f.key.proto == "UDP" {
		// Closed: newUDPFlow adds no more.
		for _, fl := range f.flows.close() {
			fl.close()
		}
	}
}

// close stops every listener and connection. The rules stay: they go
// with the node's namespace.
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
	ep          plane.Endpoint
	ok          bool
	transparent bool // dial with the client's address as source
	// result and reason when !ok.
	result plane.FlowResult
	reason plane.FlowReason
}

// decide picks an endpoint for a new connection from client to frontend f,
// following kube-proxy's chains (spec §5.3): ClusterIP traffic and
// Cluster-policy nodePort traffic may go to any usable endpoint; under
// Local policy, traffic from a pod or from the node itself still may, but
// external traffic goes only to this node's endpoints and keeps its source
// address, and is dropped when there is none.
func (p *proxy) decide(f *frontend, sp *svcPort, st *svcState, client netip.Addr) route {
	cands := sp.eps.all
	external := false
	if f.nodePort && sp.ExternalTrafficPolicy == "Local" && !p.internalSource(client) {
		cands, external = sp.eps.local, true
	}
	if len(cands) == 0 {
		if external && len(sp.eps.all) > 0 {
			return route{result: plane.FlowDropped, reason: plane.ReasonLocalPolicy}
		}
		return route{result: plane.FlowRefused, reason: plane.ReasonNoEndpoints}
	}
	ep, _ := st.ch.pick(cands, client, p.env.mode, sp.AffinityTimeout, time.Now())
	// Transparent only for clients outside the cluster: a node IP as
	// source would need a local route for that node's address here, which
	// would swallow that node's own proxied replies from our pods.
	// Linux SCTP cannot send from a foreign address even with
	// IP_TRANSPARENT (netsim.ErrTransparentSCTP), so SCTP under Local keeps
	// the node's address: the one place nplab cannot show the client's.
	tr := external && !p.env.noTransparent && !p.env.isNodeIP(client) && sp.Protocol != "SCTP"
	return route{ep: ep, ok: true, transparent: tr, result: plane.FlowOK}
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
		c, err := netsim.ProxyDial(ctx, p.env.host, d)
		if errors.Is(err, syscall.EADDRINUSE) {
			d.Local = netip.AddrPortFrom(client.Addr(), 0)
			c, err = netsim.ProxyDial(ctx, p.env.host, d)
		}
		return c, err
	}
	// A socket made ahead of time, without keep-alive: see netsim.ProxyDial.
	return netsim.ProxyDial(ctx, p.env.host, netsim.Dial{Network: network, Remote: r.ep.Addr})
}

// ensureTproxyRoute makes replies to client (from pods matched by the
// tproxy rules) local to the node, where the transparent socket takes
// them: ip route add local <client>/32 dev lo table 100.
func (p *proxy) ensureTproxyRoute(client netip.Addr) error {
	p.routeMu.Lock()
	defer p.routeMu.Unlock()
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

// failure fills in why an attempt to the chosen endpoint failed with err:
// what the cluster knows (a link on the path down, the pod's app
// stopped), else what the error says.
func (p *proxy) failure(fl *plane.Flow, err error) {
	fl.Result = classify(err)
	if fl.Result == plane.FlowOK {
		fl.Result = plane.FlowError
	}
	fl.Detail = err.Error()
	if p.env.explain != nil {
		if reason, detail := p.env.explain(fl.Pod, fl.PodNode); reason != plane.ReasonNone {
			fl.Reason, fl.Detail = reason, detail
			return
		}
	}
	switch fl.Result {
	case plane.FlowRefused:
		fl.Reason = plane.ReasonPodRefused
	case plane.FlowReset:
		fl.Reason = plane.ReasonPodReset
	case plane.FlowTimedOut:
		fl.Reason = plane.ReasonPodTimeout
	}
}

// classify maps a dial or I/O error to a FlowResult.
func classify(err error) plane.FlowResult {
	var ne net.Error
	switch {
	case err == nil:
		return plane.FlowOK
	case errors.Is(err, syscall.ECONNREFUSED):
		return plane.FlowRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return plane.FlowReset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return plane.FlowTimedOut
	}
	return plane.FlowError
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
