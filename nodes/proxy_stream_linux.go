//go:build linux

package nodes

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nplab/nplab/lab/plane"
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

// serveStream forwards one accepted connection or association and
// reports its flow when it ends.
func (p *proxy) serveStream(f *frontend, c net.Conn) {
	st := f.svc.Load()
	sp := st.sp.Load()
	client := addrPortOf(c.RemoteAddr())
	fl := plane.Flow{
		Protocol: sp.Protocol, Client: client, EntryNode: p.env.node, Frontend: addrPortOf(c.LocalAddr()),
		Service: sp.Service, PortName: sp.PortName, Start: time.Now(),
	}
	defer func() {
		fl.Duration = time.Since(fl.Start)
		p.env.report(fl)
	}()
	r := p.decide(f, sp, st, client.Addr())
	if !r.ok {
		// Local policy with no local endpoint (the blackhole rule should
		// have dropped it already), or endpoints vanished since sync.
		fl.Result, fl.Reason = r.result, r.reason
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
		p.warn("transparent dial to %s for %s failed (%v); dialing from the node instead", r.ep.Addr, client, err)
		r.transparent = false
		up, err = p.dial(p.ctx, network, r, client)
	}
	if err != nil {
		p.failure(&fl, err)
		if fl.Result == plane.FlowRefused {
			// The pod refused, but the client's connection was already
			// accepted: it sees a reset, not a refusal.
			fl.Result = plane.FlowReset
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
		fl.Result, fl.Detail = plane.FlowError, "the proxy was closed"
		return
	}
	defer p.untrack(up)
	if r.transparent {
		fl.SourceSeen = client.Addr()
	} else {
		fl.SourceSeen = addrPortOf(up.LocalAddr()).Addr()
	}
	in, out, upErr := relay(c, up)
	fl.BytesIn, fl.BytesOut = in, out
	fl.Result = plane.FlowOK
	if classify(upErr) == plane.FlowReset {
		fl.Result, fl.Reason, fl.Detail = plane.FlowReset, plane.ReasonPodReset, upErr.Error()
	}
}

// resetClose closes c with an RST (SO_LINGER 0) where it can.
func resetClose(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// relay copies both ways until both directions are done; it returns the
// bytes client→pod and pod→client, and the error reading from the pod
// (nil at its orderly end). SCTP conns keep message boundaries and
// stream ids. One direction runs on the calling goroutine.
func relay(client, up net.Conn) (in, out int64, upErr error) {
	done := make(chan struct{})
	var ended atomic.Int32 // halves that have read their source's end
	var sendErr error      // writing to the pod
	go func() {
		defer close(done)
		in, _, sendErr = copyHalf(up, client, &ended, false)
	}()
	out, upErr, _ = copyHalf(client, up, &ended, true)
	<-done
	// A socket reports a reset once, to whichever call meets it first: the
	// pod's reset may reach the half that writes to it, and leave the half
	// reading it an orderly end (or the conn that half closed).
	if (upErr == nil || errors.Is(upErr, net.ErrClosed)) && classify(sendErr) == plane.FlowReset {
		upErr = sendErr
	}
	_ = client.Close()
	_ = up.Close()
	return in, out, upErr
}

// copyHalf copies src to dst, then half-closes dst's write side (or closes
// both when the conn cannot half-close, as with SCTP). It returns the
// bytes copied, the error reading src if it was not its orderly end, and
// the error writing dst.
// ended counts the halves of the relay that reached their source's
// orderly end: the second needs no shutdown(2), as relay closes both
// conns at once, and a close passes the FIN on just the same (dst has
// nothing unread: its own end was read already).
// fromPod is set for the half that reads the pod: an end it reads first
// may be the pod's reset (see resetNotFIN).
func copyHalf(dst, src net.Conn, ended *atomic.Int32, fromPod bool) (n int64, rerr, werr error) {
	sm, sok := src.(netsim.MessageConn)
	dm, dok := dst.(netsim.MessageConn)
	if sok && dok {
		buf := msgBufs.Get().(*[]byte)
		defer msgBufs.Put(buf)
		for {
			k, info, err := sm.ReadMessage(*buf)
			if k > 0 {
				if _, werr = dm.WriteMessage((*buf)[:k], info); werr != nil {
					break
				}
				n += int64(k)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				_ = dst.Close()
				_ = src.Close()
				return n, err, nil
			}
		}
		_ = dst.Close()
		_ = src.Close()
		return n, nil, werr
	}
	rs := &readSide{r: src}
	buf := copyBufs.Get().(*[]byte)
	n, err := copyThenSplice(dst, src, rs, *buf)
	copyBufs.Put(buf)
	if err != nil {
		// A reset or a closed peer: tear both down so the other half
		// does not wait forever, passing a reset on as one, whichever
		// end it came from (src's read, or dst's write).
		if rs.err == nil {
			werr = err
		}
		switch {
		case classify(rs.err) == plane.FlowReset:
			resetClose(dst)
		case classify(werr) == plane.FlowReset:
			resetClose(src)
		}
		_ = dst.Close()
		_ = src.Close()
		return n, rs.err, werr
	}
	if fromPod && ended.Load() == 0 && resetNotFIN(src) {
		// The pod reset the connection, and the other half's write to
		// it took the error: pass a reset on, not a FIN.
		resetClose(dst)
		_ = src.Close()
		return n, errPodReset, nil
	}
	// Pass the FIN on. (No CloseRead of src: shutdown(SHUT_RD) sends
	// nothing, and each system call costs here: ~5 us on this VM.)
	if ended.Add(1) == 2 {
		return n, nil, nil // relay's close sends it
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
	return n, nil, nil
}

// copyThenSplice copies src to dst through buf until one read fills buf,
// then splices the rest (splice_linux.go), where both are sockets. It
// returns what io.Copy would: the bytes written, and nil at src's orderly
// end; a read error is also left in rs.err.
func copyThenSplice(dst, src net.Conn, rs *readSide, buf []byte) (int64, error) {
	var n int64
	for {
		k, rerr := rs.Read(buf)
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
			if w < k {
				return n, io.ErrShortWrite
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return n, nil
			}
			return n, rerr
		}
		if k < len(buf) {
			continue
		}
		// A full buffer: a bulk transfer. Splice the rest.
		d, s, ok := rawConns(dst, src)
		if !ok {
			continue
		}
		m, _, ok, re, we := spliceCopy(d, s)
		n += m
		if !ok {
			continue // no pipe to be had: go on copying
		}
		if re != nil {
			rs.err = re
			return n, re
		}
		return n, we // nil at src's orderly end
	}
}

// copyBufs are the buffers of TCP copies: a relay's first bytes go
// through one, and a bulk transfer is spliced after it (copyThenSplice).
// 128 KiB or 512 KiB buffers cost more than 32 KiB (see the commit that
// says so).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// msgBufs are the buffers of SCTP relays: 64 KiB, so one read takes a
// whole message (a partial read would split it in two on the way out).
var msgBufs = sync.Pool{New: func() any { b := make([]byte, 64*1024); return &b }}

// readSide remembers the error reading from r, so a reset by one peer is
// told from a failed write to the other.
type readSide struct {
	r   io.Reader
	err error
}

func (s *readSide) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// errPodReset is what the half reading the pod reports for a reset that
// the other half's write met first.
var errPodReset = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}

// resetNotFIN tells whether the end c's reader just met was a reset, not
// the peer's FIN. A socket reports a reset once, to whichever call meets
// it first: when a write took it, the read that follows finds the
// receive side shut and returns an orderly end, and the reset shows only
// in the state: closed after a reset, CLOSE_WAIT after a FIN. Asked only
// when the pod's end comes before the client's (one getsockopt); the
// client closing first, as a short request does, costs nothing.
func resetNotFIN(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var closed bool
	_ = rc.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			closed = ti.State == unix.BPF_TCP_CLOSE
		}
	})
	return closed
}
