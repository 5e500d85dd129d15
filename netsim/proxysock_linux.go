//go:build linux

package netsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file is the TCP fast path of a userspace proxy: the sockets a node's
// proxy accepts on and dials from, made for one connection per connection.
// On this project's machines every system call costs ~5 µs (a PVM guest),
// and a proxied connection was ~35 of them; what is left is ~half:
//
//   - ProxyListen's accepted conns get no TCP keep-alive (Go's listeners set
//     15 s keep-alive on each accepted conn: four setsockopt calls). A
//     proxy forwarding a client's connection has no use for its own probes,
//     as kube-proxy's DNAT has none.
//   - ProxyDial takes its socket from a small per-host pool of sockets made
//     in the background: only socket(2) needs the host's namespace, and the
//     pool makes a batch of them on one thread switched into it, where each
//     dial used to pay a goroutine, a locked thread and two setns(2).
//   - ProxyDial's conn is the pooled *os.File itself (non-blocking, in the
//     poller), not net.FileConn's duplicate: no dup(2), no close of the
//     original, no getsockopt(SO_TYPE)/getsockname/getpeername, and no
//     keep-alive (net.FileConn sets 15 s, four more setsockopt calls).

// sockPool is one host's pre-made TCP/IPv4 sockets: non-blocking,
// close-on-exec, TCP_NODELAY (as the net package's conns), registered with
// the poller. A pooled socket holds the namespace alive, so the host's
// close closes them; the pool fills only once something dialed through it.
type sockPool struct {
	mu      sync.Mutex
	free    []*os.File
	filling bool
	closed  bool
}

// Pool sizes: a refill makes sockPoolBatch sockets once fewer than
// sockPoolLow are left. A refill takes well under a millisecond, so at a
// few thousand connections a second the pool rarely runs dry.
const (
	sockPoolBatch = 32
	sockPoolLow   = 16
)

// get takes a socket, starting a refill when the pool runs low; nil when
// there is none (the caller makes its own).
func (p *sockPool) get(h *host) *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	var f *os.File
	if n := len(p.free); n > 0 {
		f = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
	}
	if !p.closed && !p.filling && len(p.free) < sockPoolLow {
		p.filling = true
		go p.fill(h, sockPoolBatch-len(p.free))
	}
	return f
}

// fill makes n sockets on one thread in h's namespace and adds them.
func (p *sockPool) fill(h *host, n int) {
	fds := make([]int, 0, n)
	err := h.do(func() error {
		for range n {
			fd, err := newStreamSocket()
			if err != nil {
				return err
			}
			fds = append(fds, fd)
		}
		return nil
	})
	files := make([]*os.File, 0, len(fds))
	for _, fd := range fds {
		files = append(files, os.NewFile(uintptr(fd), "tcp"))
	}
	p.mu.Lock()
	p.filling = false
	if p.closed || err != nil {
		// Closed meanwhile, or the host is gone: nothing is kept, and
		// dials make their own sockets (and report why they cannot).
		p.mu.Unlock()
		for _, f := range files {
			f.Close()
		}
		return
	}
	p.free = append(p.free, files...)
	p.mu.Unlock()
}

// close closes every pooled socket; a refill in flight closes its own.
func (p *sockPool) close() {
	p.mu.Lock()
	p.closed = true
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, f := range free {
		f.Close()
	}
}

// newStreamSocket makes a TCP/IPv4 socket in the calling thread's
// namespace, as the pool keeps them.
func newStreamSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt", err)
	}
	return fd, nil
}

// ProxyListen is h.Listen for a proxy's frontends: for a host netsim made
// and network "tcp" or "tcp4", the accepted conns (*net.TCPConn) have no
// TCP keep-alive; anything else is h.Listen.
// Equivalent to: ip netns exec <ns> nc -l <port> (without SO_KEEPALIVE)
func ProxyListen(ctx context.Context, h Host, network, address string) (net.Listener, error) {
	lh, ok := h.(*host)
	if !ok || lh == nil || (network != "tcp" && network != "tcp4") {
		return h.Listen(ctx, network, address)
	}
	var l net.Listener
	err := lh.do(func() error {
		lc := net.ListenConfig{KeepAlive: -1}
		var err error
		l, err = lc.Listen(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("in host %q: %w", lh.name, err)
	}
	return l, nil
}

// ProxyDial is h.DialFrom for a proxy's connections to its backends. For a
// host netsim made and a TCP dial to an IPv4 address it takes a socket
// from the host's pool (see the top of this file), sets d's options on it,
// binds it when d.Local is set, and connects it in the poller. The conn
// it returns is not a *net.TCPConn: it has CloseWrite, SetLinger and
// SyscallConn, its errors are *net.OpError as the net package's, and it
// sets no TCP keep-alive. Anything else is h.DialFrom (h.Dial when d has
// only Network and Remote).
// Equivalent to: socket in <ns> (ahead of time); [setsockopt IP_TRANSPARENT; bind]; connect
func ProxyDial(ctx context.Context, h Host, d Dial) (net.Conn, error) {
	lh, ok := h.(*host)
	if !ok || lh == nil || (d.Network != "tcp" && d.Network != "tcp4") || !d.Remote.Addr().Unmap().Is4() ||
		(d.Local.IsValid() && !d.Local.Addr().Unmap().Is4()) {
		if !d.Local.IsValid() && !d.Transparent && d.Timeout == 0 {
			return h.Dial(ctx, d.Network, d.Remote.String())
		}
		return h.DialFrom(ctx, d)
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	c, err := proxyDial(ctx, lh, d)
	if err != nil {
		return nil, fmt.Errorf("in host %q: %w", lh.name, err)
	}
	return c, nil
}

func proxyDial(ctx context.Context, h *host, d Dial) (net.Conn, error) {
	remote := netip.AddrPortFrom(d.Remote.Addr().Unmap(), d.Remote.Port())
	local := d.Local
	if local.IsValid() {
		local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	}
	opErr := func(err error) error {
		e := &net.OpError{Op: "dial", Net: d.Network, Addr: net.TCPAddrFromAddrPort(remote), Err: err}
		if local.IsValid() {
			e.Source = net.TCPAddrFromAddrPort(local)
		}
		return e
	}
	if err := ctx.Err(); err != nil {
		return nil, opErr(ctxErr(err))
	}
	f := h.pool.get(h)
	if f == nil {
		// The pool is dry (or the host is gone): make one here.
		var fd int
		err := h.do(func() error {
			var err error
			fd, err = newStreamSocket()
			return err
		})
		if err != nil {
			return nil, opErr(err)
		}
		f = os.NewFile(uintptr(fd), "tcp")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, opErr(err)
	}
	if d.Transparent || local.IsValid() {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			if serr = setDialOpts(int(fd), d); serr != nil {
				return
			}
			if local.IsValid() {
				if err := unix.Bind(int(fd), inetSockaddr(local)); err != nil {
					serr = os.NewSyscallError("bind", err)
				}
			}
		}); err != nil {
			serr = err
		}
		if serr != nil {
			f.Close()
			return nil, opErr(serr)
		}
	}
	if err := connectPoll(ctx, f, rc, inetSockaddr(remote)); err != nil {
		f.Close()
		return nil, opErr(err)
	}
	return &streamConn{f: f, rc: rc, remote: net.TCPAddrFromAddrPort(remote)}, nil
}

// streamConn is a connected TCP socket as ProxyDial returns it: the pooled
// *os.File, read and written through the poller.
type streamConn struct {
	f      *os.File
	rc     syscall.RawConn
	remote *net.TCPAddr

	localOnce sync.Once
	local     net.Addr
}

var _ net.Conn = (*streamConn)(nil)

// opErr gives an *os.File's error the net package's shape: "read tcp
// 10.244.1.1:40000->10.244.1.2:8080: read: connection reset by peer";
// io.EOF stays io.EOF and a closed file is net.ErrClosed.
func (c *streamConn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, os.ErrClosed):
		err = net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = os.ErrDeadlineExceeded
	default:
		if en, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError(op, en)
		}
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.remote, Err: err}
}

func (c *streamConn) Read(b []byte) (int, error) {
	n, err := c.f.Read(b)
	return n, c.opErr("read", err)
}

func (c *streamConn) Write(b []byte) (int, error) {
	n, err := c.f.Write(b)
	return n, c.opErr("write", err)
}

func (c *streamConn) Close() error { return c.opErr("close", c.f.Close()) }

// CloseWrite shuts down the sending side: the peer reads EOF.
func (c *streamConn) CloseWrite() error {
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return c.opErr("close", err)
	}
	return c.opErr("close", serr)
}

// SetLinger is net.TCPConn's: 0 makes Close send a reset.
func (c *streamConn) SetLinger(sec int) error {
	l := unix.Linger{}
	if sec >= 0 {
		l.Onoff, l.Linger = 1, int32(sec)
	}
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &l) }); err != nil {
		return c.opErr("set", err)
	}
	return c.opErr("set", serr)
}

// LocalAddr is the socket's address, asked of the kernel once, when first
// wanted.
func (c *streamConn) LocalAddr() net.Addr {
	c.localOnce.Do(func() {
		var sa unix.Sockaddr
		c.rc.Control(func(fd uintptr) { sa, _ = unix.Getsockname(int(fd)) })
		if sa4, ok := sa.(*unix.SockaddrInet4); ok {
			c.local = &net.TCPAddr{IP: net.IP(sa4.Addr[:]).To16(), Port: sa4.Port}
		}
	})
	return c.local
}

func (c *streamConn) RemoteAddr() net.Addr          { return c.remote }
func (c *streamConn) SetDeadline(t time.Time) error { return c.opErr("set", c.f.SetDeadline(t)) }
func (c *streamConn) SetReadDeadline(t time.Time) error {
	return c.opErr("set", c.f.SetReadDeadline(t))
}
func (c *streamConn) SetWriteDeadline(t time.Time) error {
	return c.opErr("set", c.f.SetWriteDeadline(t))
}
func (c *streamConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }
