//go:build linux

package nodes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nplab/nplab/lab/plane"
)

// udpFlow is one UDP "connection" through the proxy, the userspace twin of
// a conntrack entry: datagrams from one client address:port go to one
// endpoint until the flow is idle for udpFlowIdle or its endpoint stops
// serving. Everything a datagram needs is found once, when the flow
// starts: the socket to the pod (up), and the control message that makes
// replies leave from the address the client sent to (oob).
type udpFlow struct {
	f      *frontend
	client netip.AddrPort
	local  netip.Addr // where the client sent to; replies come from here
	// oob is the IP_PKTINFO control message for replies from local on a
	// wildcard frontend; nil when the socket's own address is right.
	oob    []byte
	svcKey string
	ep     plane.Endpoint
	up     net.Conn
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
	in     atomic.Int64 // bytes client → pod until the flow is reported
	dead   atomic.Bool  // closed: the next datagram needs a new flow
	once   sync.Once
}

func (fl *udpFlow) touch() { fl.last.Store(time.Now().UnixNano()) }

func (fl *udpFlow) close() {
	fl.once.Do(func() {
		fl.dead.Store(true)
		_ = fl.up.Close()
	})
}

// udpEvictSample is how many flows a full table compares to pick the one
// to evict.
const udpEvictSample = 8

// udpFlowTable is a frontend's UDP flows by client address and port: the
// conntrack table of one frontend. Its lock is held only for a map
// operation; the forward loop finds a flow once per client datagram (and
// skips even that while one client keeps sending, see udpLoop), and the
// reply path never looks a flow up.
type udpFlowTable struct {
	mu     sync.Mutex
	m      map[netip.AddrPort]*udpFlow
	max    int
	closed bool
}

func newUDPFlowTable(max int) *udpFlowTable {
	return &udpFlowTable{m: map[netip.AddrPort]*udpFlow{}, max: max}
}

// get returns client's flow, or nil.
func (t *udpFlowTable) get(client netip.AddrPort) *udpFlow {
	t.mu.Lock()
	fl := t.m[client]
	t.mu.Unlock()
	return fl
}

// add inserts fl. When the table is full it first removes the flow idle
// longest among udpEvictSample picked at random (Go's map iteration
// starts at a random place), as Redis approximates LRU: O(1) where a
// scan of every flow cost a microsecond per thousand flows, for each new
// flow of a flood. The evicted flow, if any, is the caller's to close.
// ok is false when the table is closed (fl was not added).
func (t *udpFlowTable) add(fl *udpFlow) (evicted *udpFlow, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false
	}
	if len(t.m) >= t.max {
		n := 0
		for _, old := range t.m {
			if evicted == nil || old.last.Load() < evicted.last.Load() {
				evicted = old
			}
			if n++; n == udpEvictSample {
				break
			}
		}
		delete(t.m, evicted.client)
	}
	t.m[fl.client] = fl
	return evicted, true
}

// remove deletes fl if it is still its client's flow.
func (t *udpFlowTable) remove(fl *udpFlow) {
	t.mu.Lock()
	if t.m[fl.client] == fl {
		delete(t.m, fl.client)
	}
	t.mu.Unlock()
}

// removeFunc deletes and returns the flows stale says are stale.
func (t *udpFlowTable) removeFunc(stale func(*udpFlow) bool) []*udpFlow {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*udpFlow
	for k, fl := range t.m {
		if stale(fl) {
			out = append(out, fl)
			delete(t.m, k)
		}
	}
	return out
}

// close empties the table for good and returns what it held.
func (t *udpFlowTable) close() []*udpFlow {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	out := make([]*udpFlow, 0, len(t.m))
	for _, fl := range t.m {
		out = append(out, fl)
	}
	clear(t.m)
	return out
}

// len is how many flows the table holds.
func (t *udpFlowTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// enablePktinfo turns on IP_PKTINFO so a wildcard socket learns which
// local address each datagram was sent to and can answer from it (a pod
// that sent to its node's IP must get the answer from that IP, or its
// connected socket drops it).
func enablePktinfo(pc net.PacketConn) *net.UDPConn {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		growRcvbuf(fd)
	}); err != nil || serr != nil {
		return nil
	}
	return uc
}

// udpRcvbuf is the receive buffer of the proxy's UDP sockets: a limit on
// what may queue (memory is taken only by datagrams waiting), large
// enough to ride out the milliseconds the proxy's goroutine waits for a
// CPU the client and the pod share, where the default (212992 bytes,
// some 300 small datagrams) overflows.
const udpRcvbuf = 4 << 20

// growRcvbuf raises a socket's receive buffer to udpRcvbuf: with
// SO_RCVBUFFORCE as root (net.core.rmem_max does not cap it), else as far
// as rmem_max allows.
// Equivalent to: setsockopt(SO_RCVBUFFORCE, 4 MiB)
func growRcvbuf(fd uintptr) {
	if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpRcvbuf) != nil {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, udpRcvbuf)
	}
}

// pktinfoDst returns the header destination address from an IP_PKTINFO
// control message (struct in_pktinfo: ifindex, spec_dst, addr). It
// parses in place: once per datagram, it must not allocate.
func pktinfoDst(oob []byte) netip.Addr {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		if h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= 12 {
			return netip.AddrFrom4([4]byte(data[8:12]))
		}
		oob = rest
	}
	return netip.Addr{}
}

func (f *frontend) read(buf, oob []byte) (int, netip.AddrPort, netip.Addr, error) {
	if f.udp != nil {
		n, oobn, _, from, err := f.udp.ReadMsgUDPAddrPort(buf, oob)
		return n, unmap(from), pktinfoDst(oob[:oobn]), err
	}
	n, from, err := f.pc.ReadFrom(buf)
	return n, addrPortOf(from), netip.Addr{}, err
}

// writeTo relays a reply of fl's pod to its client, from the address the
// client sent to.
func (f *frontend) writeTo(b []byte, fl *udpFlow) error {
	if f.udp != nil {
		var err error
		if fl.oob != nil {
			_, _, err = f.udp.WriteMsgUDPAddrPort(b, fl.oob, fl.client)
		} else {
			_, err = f.udp.WriteToUDPAddrPort(b, fl.client)
		}
		return err
	}
	_, err := f.pc.WriteTo(b, net.UDPAddrFromAddrPort(fl.client))
	return err
}

// udpLoop serves one UDP frontend until its socket closes: per datagram
// one read, a flow lookup (none while the same client keeps sending) and
// one write to the flow's socket, without allocating.
func (p *proxy) udpLoop(f *frontend) {
	buf := make([]byte, 65535)
	oob := make([]byte, 256)
	var last *udpFlow // the flow of the previous datagram
	for {
		n, client, dst, err := f.read(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		fl := last
		if fl == nil || fl.client != client || fl.dead.Load() {
			fl = f.flows.get(client)
			if fl == nil {
				fl = p.newUDPFlow(f, client, dst)
				if fl == nil {
					continue
				}
			}
			last = fl
		}
		// Counted before it is sent: the reply may be read (and the
		// flow reported) before Write returns.
		fl.in.Add(int64(n))
		if _, err := fl.up.Write(buf[:n]); err == nil {
			fl.touch()
		}
	}
}

// newUDPFlow picks an endpoint for a new flow, opens the proxy's socket to
// it and starts relaying its answers. It returns nil when the datagram is
// dropped (and reports that flow at once).
func (p *proxy) newUDPFlow(f *frontend, client netip.AddrPort, dst netip.Addr) *udpFlow {
	st := f.svc.Load()
	sp := st.sp.Load()
	front := f.key.addr
	if dst.IsValid() {
		front = netip.AddrPortFrom(dst, f.key.addr.Port())
	}
	rec := plane.Flow{Protocol: "UDP", Client: client, EntryNode: p.env.node, Frontend: front, Service: sp.Service,
		PortName: sp.PortName, Start: time.Now()}
	r := p.decide(f, sp, st, client.Addr())
	if !r.ok {
		rec.Result, rec.Reason = r.result, r.reason
		p.env.report(rec)
		return nil
	}
	rec.Pod, rec.PodNode, rec.Backend = r.ep.Pod, r.ep.Node, r.ep.Addr
	up, err := p.dial(p.ctx, "udp", r, client)
	if err != nil && r.transparent && p.ctx.Err() == nil {
		p.warn("transparent UDP socket for %s failed (%v); sending from the node instead", client, err)
		r.transparent = false
		up, err = p.dial(p.ctx, "udp", r, client)
	}
	if err != nil {
		p.failure(&rec, err)
		rec.Duration = time.Since(rec.Start)
		p.env.report(rec)
		return nil
	}
	fl := &udpFlow{f: f, client: client, local: dst, svcKey: st.key, ep: r.ep, up: up}
	if f.udp != nil && dst.IsValid() && f.key.addr.Addr().IsUnspecified() {
		fl.oob = unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: dst.As4()})
	}
	fl.touch()
	// A full table evicts a flow, as conntrack's early drop does, so
	// sockets stay bounded.
	evicted, ok := f.flows.add(fl)
	if !ok {
		_ = up.Close()
		return nil
	}
	if evicted != nil {
		evicted.close()
	}
	if r.transparent {
		rec.SourceSeen = client.Addr()
	} else {
		rec.SourceSeen = addrPortOf(up.LocalAddr()).Addr()
	}
	p.wg.Go(func() { p.udpReplies(fl, rec) })
	return fl
}

// udpBufs holds the flows' reply buffers (each the largest datagram):
// under a flood from ever-new source ports, flows are evicted and created
// thousands of times a second, and allocating 64 KiB for each made the
// garbage collector, not the traffic, the lab's bottleneck.
var udpBufs = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

// udpReplies relays the endpoint's datagrams back to the client until the
// flow idles out or is flushed. It reports the flow once, when its first
// exchange is complete: at the pod's first reply (before relaying it, so
// the client never has its answer before the flow is known), at a refusal
// (ICMP port unreachable from the pod), or when no reply came within
// udpReplyTimeout.
//
// Per reply it does one read and one write and no allocation: the read
// deadline is not moved per datagram but only when it fires (the flow was
// idle, or has been used since, and the deadline moves to udpFlowIdle
// after its last datagram).
func (p *proxy) udpReplies(fl *udpFlow, rec plane.Flow) {
	reported := false
	report := func(res plane.FlowResult, reason plane.FlowReason, detail string) {
		if reported {
			return
		}
		reported = true
		rec.Result, rec.Reason, rec.Detail = res, reason, detail
		rec.BytesIn = fl.in.Load()
		rec.Duration = time.Since(rec.Start)
		if res != plane.FlowOK && p.env.explain != nil {
			if why, d := p.env.explain(rec.Pod, rec.PodNode); why != plane.ReasonNone {
				rec.Reason, rec.Detail = why, d
			}
		}
		p.env.report(rec)
	}
	defer func() {
		fl.close()
		fl.f.flows.remove(fl)
	}()
	bp := udpBufs.Get().(*[]byte)
	defer udpBufs.Put(bp)
	buf := *bp
	// deadline is when the flow idles out, or, until the pod first
	// replies, when it has not replied in time, if that is sooner.
	deadline := func() time.Time {
		dl := time.Unix(0, fl.last.Load()).Add(udpFlowIdle)
		if rd := rec.Start.Add(udpReplyTimeout); !reported && rd.Before(dl) {
			dl = rd
		}
		return dl
	}
	_ = fl.up.SetReadDeadline(deadline())
	for {
		n, err := fl.up.Read(buf)
		if err != nil {
			switch res := classify(err); {
			case res == plane.FlowTimedOut && !reported && time.Since(rec.Start) >= udpReplyTimeout:
				report(plane.FlowTimedOut, plane.ReasonNoReply, fmt.Sprintf("no reply from %s within %v", rec.Backend, udpReplyTimeout))
				_ = fl.up.SetReadDeadline(deadline())
				continue // the pod may still answer later datagrams
			case res == plane.FlowTimedOut && time.Since(time.Unix(0, fl.last.Load())) < udpFlowIdle:
				_ = fl.up.SetReadDeadline(deadline())
				continue // traffic since the deadline was set
			case res == plane.FlowTimedOut:
				return
			case errors.Is(err, net.ErrClosed):
				if p.ctx.Err() == nil {
					report(plane.FlowError, plane.ReasonNone, "the flow was flushed before the pod replied")
				}
				return
			case res == plane.FlowRefused:
				// ICMP port unreachable from the pod: nothing listens.
				// The client is not told (it times out); the flow says
				// refused.
				report(plane.FlowRefused, plane.ReasonPodRefused, err.Error())
				return
			default:
				report(res, plane.ReasonNone, err.Error())
				return
			}
		}
		fl.touch()
		if !reported {
			rec.BytesOut = int64(n)
			report(plane.FlowOK, plane.ReasonNone, "")
		}
		_ = fl.f.writeTo(buf[:n], fl)
	}
}

// flushStale drops flows whose endpoint no longer serves this frontend's
// service, like kube-proxy's conntrack cleanup after a sync (§5.9).
func (f *frontend) flushStale() {
	st := f.svc.Load()
	sp := st.sp.Load()
	stale := f.flows.removeFunc(func(fl *udpFlow) bool {
		return fl.svcKey != st.key || !servingEndpoint(sp.Endpoints, fl.ep.Addr)
	})
	for _, fl := range stale {
		fl.close()
	}
}
