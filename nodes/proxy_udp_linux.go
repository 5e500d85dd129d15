package nodes

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
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
	ep     Endpoint
	up     net.Conn
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
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
			fl = p.newUDPFlow(f, client, dst, n)
			if fl == nil {
				continue
			}
		}
		if _, err := fl.up.Write(buf[:n]); err == nil {
			fl.touch()
		}
	}
}

// newUDPFlow picks an endpoint for a new flow, opens the proxy's socket to
// it and starts relaying its answers. It returns nil when the datagram is
// dropped.
func (p *proxy) newUDPFlow(f *frontend, client netip.AddrPort, dst netip.Addr, n int) *udpFlow {
	st := f.svc.Load()
	sp := st.sp.Load()
	front := f.key.addr
	if dst.IsValid() {
		front = netip.AddrPortFrom(dst, f.key.addr.Port())
	}
	ev := &Flow{EntryNode: p.env.node, Client: client, Frontend: front, Service: sp.Service,
		PortName: sp.PortName, Protocol: "UDP", BytesIn: int64(n)}
	r := p.decide(f, sp, st, client.Addr())
	if !r.ok {
		ev.Result = r.result
		p.flowEvent(ev)
		return nil
	}
	ev.Pod, ev.PodNode, ev.Backend = r.ep.Pod, r.ep.Node, r.ep.Addr
	up, err := p.dial(p.ctx, "udp", r, client)
	if err != nil && r.transparent && p.ctx.Err() == nil {
		p.errorEvent("transparent UDP socket for %s failed (%v); sending from the node instead", client, err)
		r.transparent = false
		up, err = p.dial(p.ctx, "udp", r, client)
	}
	if err != nil {
		ev.Result = classify(err)
		if ev.Result == FlowOK {
			ev.Result = FlowError
		}
		p.flowEvent(ev)
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
		ev.SourceSeen = client.Addr()
	} else {
		ev.SourceSeen = addrPortOf(up.LocalAddr()).Addr()
	}
	ev.Result = FlowOK
	p.flowEvent(ev)
	p.wg.Go(func() { p.udpReplies(fl, ev) })
	return fl
}

// udpReplies relays the endpoint's datagrams back to the client until the
// flow idles out or is flushed.
func (p *proxy) udpReplies(fl *udpFlow, ev *Flow) {
	defer func() {
		fl.close()
		fl.f.mu.Lock()
		if fl.f.flows[fl.client] == fl {
			delete(fl.f.flows, fl.client)
		}
		fl.f.mu.Unlock()
	}()
	buf := make([]byte, 65535)
	for {
		_ = fl.up.SetReadDeadline(time.Unix(0, fl.last.Load()).Add(udpFlowIdle))
		n, err := fl.up.Read(buf)
		if err != nil {
			if classify(err) == FlowTimedOut && time.Since(time.Unix(0, fl.last.Load())) < udpFlowIdle {
				continue // traffic since the deadline was set
			}
			if errors.Is(err, net.ErrClosed) || classify(err) == FlowTimedOut {
				return
			}
			if classify(err) == FlowRefused {
				// ICMP port unreachable from the pod: nothing listens.
				refused := *ev
				refused.Result = FlowRefused
				p.flowEvent(&refused)
				return
			}
			return
		}
		fl.touch()
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
