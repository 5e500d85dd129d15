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
// serving.
type udpFlow struct {
	f      *frontend
	client netip.AddrPort
	local  netip.Addr // where the client sent to; replies come from here
	svcKey string
	ep     plane.Endpoint
	up     net.Conn
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
	in     atomic.Int64 // bytes client → pod until the flow is reported
	once   sync.Once
}

func (fl *udpFlow) touch() { fl.last.Store(time.Now().UnixNano()) }

func (fl *udpFlow) close() {
	fl.once.Do(func() { _ = fl.up.Close() })
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
	}); err != nil || serr != nil {
		return nil
	}
	return uc
}

// pktinfoDst returns the header destination address from an IP_PKTINFO
// control message (struct in_pktinfo: ifindex, spec_dst, addr).
func pktinfoDst(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= 12 {
			return netip.AddrFrom4([4]byte(m.Data[8:12]))
		}
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

func (f *frontend) writeTo(b []byte, client netip.AddrPort, local netip.Addr) error {
	if f.udp != nil && local.IsValid() && f.key.addr.Addr().IsUnspecified() {
		oob := unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: local.As4()})
		_, _, err := f.udp.WriteMsgUDPAddrPort(b, oob, client)
		return err
	}
	_, err := f.pc.WriteTo(b, net.UDPAddrFromAddrPort(client))
	return err
}

// udpLoop serves one UDP frontend until its socket closes.
func (p *proxy) udpLoop(f *frontend) {
	buf := make([]byte, 65535)
	oob := make([]byte, 256)
	for {
		n, client, dst, err := f.read(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.mu.Lock()
		fl := f.flows[client]
		f.mu.Unlock()
		if fl == nil {
			fl = p.newUDPFlow(f, client, dst)
			if fl == nil {
				continue
			}
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
	fl.touch()
	f.mu.Lock()
	if f.flows == nil {
		f.mu.Unlock()
		_ = up.Close()
		return nil
	}
	var evicted *udpFlow
	if len(f.flows) >= udpMaxFlows {
		// The table is full: evict the least recently used flow, as
		// conntrack's early drop does, so sockets stay bounded.
		for _, old := range f.flows {
			if evicted == nil || old.last.Load() < evicted.last.Load() {
				evicted = old
			}
		}
		delete(f.flows, evicted.client)
	}
	f.flows[client] = fl
	f.mu.Unlock()
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
		fl.f.mu.Lock()
		if fl.f.flows[fl.client] == fl {
			delete(fl.f.flows, fl.client)
		}
		fl.f.mu.Unlock()
	}()
	bp := udpBufs.Get().(*[]byte)
	defer udpBufs.Put(bp)
	buf := *bp
	for {
		dl := time.Unix(0, fl.last.Load()).Add(udpFlowIdle)
		if rd := rec.Start.Add(udpReplyTimeout); !reported && rd.Before(dl) {
			dl = rd
		}
		_ = fl.up.SetReadDeadline(dl)
		n, err := fl.up.Read(buf)
		if err != nil {
			switch res := classify(err); {
			case res == plane.FlowTimedOut && !reported && time.Since(rec.Start) >= udpReplyTimeout:
				report(plane.FlowTimedOut, plane.ReasonNoReply, fmt.Sprintf("no reply from %s within %v", rec.Backend, udpReplyTimeout))
				continue // the pod may still answer later datagrams
			case res == plane.FlowTimedOut && time.Since(time.Unix(0, fl.last.Load())) < udpFlowIdle:
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
		_ = fl.f.writeTo(buf[:n], fl.client, fl.local)
	}
}

// flushStale drops flows whose endpoint no longer serves this frontend's
// service, like kube-proxy's conntrack cleanup after a sync (§5.9).
func (f *frontend) flushStale() {
	st := f.svc.Load()
	sp := st.sp.Load()
	f.mu.Lock()
	var stale []*udpFlow
	for k, fl := range f.flows {
		if fl.svcKey != st.key || !servingEndpoint(sp.Endpoints, fl.ep.Addr) {
			stale = append(stale, fl)
			delete(f.flows, k)
		}
	}
	f.mu.Unlock()
	for _, fl := range stale {
		fl.close()
	}
}
