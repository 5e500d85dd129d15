//go:build linux

package nodes

import (
	"errors"
	"io"
	"net"
	"sync"
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
	in, out, upErr := splice(c, up)
	fl.BytesIn, fl.BytesOut = in, out
	fl.Result = plane.FlowOK
	if classify(upErr) == plane.FlowReset {
		fl.Result, fl.Reason, fl.Detail = plane.FlowReset, plane.ReasonPodReset, upErr.Error()
	}
}

// resetClose closes c with an RST (SO_LINGER 0) where it can.
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// splice copies both ways until both directions are done; it returns the
// bytes client→pod and pod→client, and the error reading from the pod
// (nil at its orderly end). SCTP conns keep message boundaries and
// stream ids. One direction runs on the calling goroutine.
func splice(client, up net.Conn) (in, out int64, upErr error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		in, _ = copyHalf(up, client)
	}()
	out, upErr = copyHalf(client, up)
	<-done
	_ = client.Close()
	_ = up.Close()
	return in, out, upErr
}

// copyHalf copies src to dst, then half-closes dst's write side (or closes
// both when the conn cannot half-close, as with SCTP). It returns the
// bytes copied and the error reading src, if it was not its orderly end.
func copyHalf(dst, src net.Conn) (int64, error) {
	if dt, ok := dst.(*net.TCPConn); ok {
		if st, ok := src.(*net.TCPConn); ok {
			return spliceHalf(dt, st)
		}
	}
	var n int64
	sm, sok := src.(netsim.MessageConn)
	dm, dok := dst.(netsim.MessageConn)
	if sok && dok {
		buf := msgBufs.Get().(*[]byte)
		defer msgBufs.Put(buf)
		for {
			k, info, err := sm.ReadMessage(*buf)
			if k > 0 {
				if _, werr := dm.WriteMessage((*buf)[:k], info); werr != nil {
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
				return n, err
			}
		}
		_ = dst.Close()
		_ = src.Close()
		return n, nil
	}
	rs := &readSide{r: src}
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(writeOnly{dst}, rs, *buf)
	copyBufs.Put(buf)
	if err != nil {
		// A reset or a closed peer: tear both down so the other half
		// does not wait forever, passing a reset on as one.
		if classify(rs.err) == plane.FlowReset {
			resetClose(dst)
		}
		_ = dst.Close()
		_ = src.Close()
		return n, rs.err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
	if cr, ok := src.(interface{ CloseRead() error }); ok {
		_ = cr.CloseRead()
	}
	return n, nil
}

// spliceHalf is copyHalf between two TCP sockets: dst.ReadFrom(src) is
// splice(2) from src into a pipe and from the pipe into dst, so the bytes
// never enter the proxy's memory (nothing may wrap either conn, or
// ReadFrom falls back to a buffer copy). splice reports one error for
// both sockets; it was the read's when src is dead (reset by its peer, or
// timed out), which its TCP state says: CLOSE, where a failed write
// leaves src established.
func spliceHalf(dst, src *net.TCPConn) (int64, error) {
	n, err := dst.ReadFrom(src)
	if err != nil {
		var readErr error
		if tcpClosed(src) {
			readErr = err
		}
		// Tear both down so the other half does not wait forever; a
		// reset is passed on as one, as kernel DNAT would pass the RST.
		if classify(readErr) == plane.FlowReset {
			resetClose(dst)
		}
		_ = dst.Close()
		_ = src.Close()
		return n, readErr
	}
	// Pass the FIN on. (No CloseRead of src: shutdown(SHUT_RD) sends
	// nothing, and each system call costs here: ~5 us on this VM.)
	_ = dst.CloseWrite()
	return n, nil
}

// tcpClosed reports whether c's socket is in TCP state CLOSE (it was
// reset, or gave up retransmitting); false if c is closed already.
// Equivalent to: getsockopt(TCP_INFO).tcpi_state == TCP_CLOSE
func tcpClosed(c *net.TCPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var state uint8
	if err := rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			state = info.State
		}
	}); err != nil {
		return false
	}
	return state == tcpStateClose
}

// tcpStateClose is TCP_CLOSE of the kernel's enum of TCP states
// (include/net/tcp_states.h).
const tcpStateClose = 7

// copyBufs are the buffers of stream copies that cannot splice.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// msgBufs are the buffers of SCTP relays: 64 KiB, so one read takes a
// whole message (a partial read would split it in two on the way out).
var msgBufs = sync.Pool{New: func() any { b := make([]byte, 64*1024); return &b }}

// writeOnly hides a conn's ReadFrom, so io.CopyBuffer uses the pooled
// buffer (only the TCP pairs of spliceHalf could splice).
type writeOnly struct{ w io.Writer }

func (w writeOnly) Write(b []byte) (int, error) { return w.w.Write(b) }

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
