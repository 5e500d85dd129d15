package nodes

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nplab/nplab/netsim"
)

// acceptLoop serves one TCP or SCTP frontend until its listener closes.
func (p *proxy) acceptLoop(f *frontend, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.mu.Lock()
			closed := p.closed || p.fronts[f.key] != f
			p.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Go(func() {
			defer p.untrack(c)
			p.serveStream(f, c)
		})
	}
}

// serveStream forwards one accepted connection or association.
func (p *proxy) serveStream(f *frontend, c net.Conn) {
	start := time.Now()
	st := f.svc.Load()
	sp := st.sp.Load()
	client := addrPortOf(c.RemoteAddr())
	fl := &Flow{
		EntryNode: p.env.node, Client: client, Frontend: addrPortOf(c.LocalAddr()),
		Service: sp.Service, PortName: sp.PortName, Protocol: sp.Protocol,
	}
	defer func() {
		fl.Duration = time.Since(start)
		p.flowEvent(fl)
	}()
	r := p.decide(f, sp, st, client.Addr())
	if !r.ok {
		// Local policy with no local endpoint (the blackhole rule should
		// have dropped it already), or endpoints vanished since sync.
		fl.Result = r.result
		resetClose(c)
		return
	}
	fl.Pod, fl.PodNode, fl.Backend = r.ep.Pod, r.ep.Node, r.ep.Addr
	network := "tcp"
	if f.key.proto == "SCTP" {
		network = "sctp"
	}
	up, err := p.dial(p.ctx, network, r, client)
	if err != nil && r.transparent && p.ctx.Err() == nil {
		p.errorEvent("transparent dial to %s for %s failed (%v); dialing from the node instead", r.ep.Addr, client, err)
		r.transparent = false
		up, err = p.dial(p.ctx, network, r, client)
	}
	if err != nil {
		fl.Result = classify(err)
		switch fl.Result {
		case FlowOK:
			fl.Result = FlowError
		case FlowRefused:
			// The pod refused, but the client's connection was already
			// accepted: it sees a reset, not a refusal.
			fl.Result = FlowReset
		}
		// The endpoint refused or is unreachable: reset the client's
		// connection, the closest a userspace proxy gets to passing the
		// pod's RST through.
		resetClose(c)
		return
	}
	if !p.track(up) {
		_ = up.Close()
		_ = c.Close()
		fl.Result = FlowError
		return
	}
	defer p.untrack(up)
	if r.transparent {
		fl.SourceSeen = client.Addr()
	} else {
		fl.SourceSeen = addrPortOf(up.LocalAddr()).Addr()
	}
	in, out := splice(c, up)
	fl.BytesIn, fl.BytesOut = in, out
	fl.Result = FlowOK
}

// resetClose closes c with an RST (SO_LINGER 0) where it can.
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// splice copies both ways until both directions are done; it returns the
// bytes client→pod and pod→client. SCTP conns keep message boundaries and
// stream ids.
func splice(client, up net.Conn) (in, out int64) {
	var wg sync.WaitGroup
	var bin, bout atomic.Int64
	wg.Go(func() { bin.Store(copyHalf(up, client)) })
	wg.Go(func() { bout.Store(copyHalf(client, up)) })
	wg.Wait()
	_ = client.Close()
	_ = up.Close()
	return bin.Load(), bout.Load()
}

// copyHalf copies src to dst, then half-closes dst's write side (or closes
// both when the conn cannot half-close, as with SCTP).
func copyHalf(dst, src net.Conn) int64 {
	var n int64
	sm, sok := src.(netsim.MessageConn)
	dm, dok := dst.(netsim.MessageConn)
	if sok && dok {
		buf := make([]byte, 64*1024)
		for {
			k, info, err := sm.ReadMessage(buf)
			if k > 0 {
				if _, werr := dm.WriteMessage(buf[:k], info); werr != nil {
					break
				}
				n += int64(k)
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
		return n
	}
	n, err := io.Copy(dst, src)
	if err != nil {
		// A reset or a closed peer: tear both down so the other half
		// does not wait forever.
		_ = dst.Close()
		_ = src.Close()
		return n
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
	if cr, ok := src.(interface{ CloseRead() error }); ok {
		_ = cr.CloseRead()
	}
	return n
}
