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
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ishidawataru/sctp"
	"golang.org/x/sys/unix"
)

// SCTP sockets here are one-to-one style (SOCK_STREAM) and non-blocking,
// wrapped with os.NewFile so they live in the Go runtime's poller: a
// blocked Accept or Read wakes up when the socket is closed, and deadlines
// work. ishidawataru/sctp supplies the message I/O (SCTPRead / SCTPWrite
// with the stream id and PPID of each message, via the data I/O event
// subscription); its own Listen/Dial/Accept block in the kernel and could
// not be woken, so they are not used.

// ErrTransparentSCTP is returned (wrapped) by a transparent SCTP dial.
// Linux's SCTP does not support IP_TRANSPARENT: its bind only accepts a
// foreign address with IP_FREEBIND, and even then (tried on Debian's 6.1
// kernel) the association never comes up, because SCTP routes its packets
// without the "any source" flag that IP_TRANSPARENT gives TCP and UDP. An
// SCTP proxy has to dial from one of its own addresses.
var ErrTransparentSCTP = fmt.Errorf("transparent SCTP: %w (Linux SCTP cannot send from a non-local address)", ErrNotSupported)

// sctpSocket opens a non-blocking SCTP socket in the calling thread's
// namespace, asks for SCTPStreams streams and subscribes to data I/O
// events (each received message then carries its stream id and PPID).
func sctpSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err) // "socket: protocol not supported" without CONFIG_IP_SCTP
	}
	sc := sctp.NewSCTPConn(fd, nil)
	if err := sc.SetInitMsg(SCTPStreams, SCTPStreams, 0, 0); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt SCTP_INITMSG", err)
	}
	if err := sc.SubscribeEvents(sctp.SCTP_EVENT_DATA_IO); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt SCTP_EVENTS", err)
	}
	return fd, nil
}

func parseSCTPAddr(address string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("invalid port %q", port)
	}
	ip := netip.IPv4Unspecified()
	if host != "" {
		if ip, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, err
		}
		ip = ip.Unmap()
		if !ip.Is4() {
			return netip.AddrPort{}, fmt.Errorf("%s: only IPv4 SCTP is supported", ip)
		}
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

func sockaddr(ap netip.AddrPort) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
}

func sctpAddr(sa unix.Sockaddr) *sctp.SCTPAddr {
	if in, ok := sa.(*unix.SockaddrInet4); ok {
		return &sctp.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.IP(in.Addr[:])}}, Port: in.Port}
	}
	return &sctp.SCTPAddr{}
}

// mapErr turns the poller's errors into the net package's: the raw
// conn of a closed os.File reports internal/poll's "use of closed file",
// which is net.ErrClosed to a net.Conn's user.
func mapErr(err error, closed *atomic.Bool) error {
	if errors.Is(err, os.ErrClosed) || (err != nil && closed.Load() && !errors.Is(err, os.ErrDeadlineExceeded)) {
		return net.ErrClosed
	}
	return err
}

type sctpListener struct {
	f      *os.File
	rc     syscall.RawConn
	addr   *sctp.SCTPAddr
	closed atomic.Bool
}

func listenSCTP(h *host, address string) (net.Listener, error) {
	opErr := func(err error) error { return &net.OpError{Op: "listen", Net: "sctp", Err: err} }
	ap, err := parseSCTPAddr(address)
	if err != nil {
		return nil, opErr(err)
	}
	var fd int
	err = h.do(func() error {
		fd, err = sctpSocket()
		return err
	})
	if err != nil {
		return nil, opErr(err)
	}
	err = func() error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
		if err := unix.Bind(fd, sockaddr(ap)); err != nil {
			return os.NewSyscallError("bind", err)
		}
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return os.NewSyscallError("listen", err)
		}
		return nil
	}()
	if err != nil {
		unix.Close(fd)
		return nil, &net.OpError{Op: "listen", Net: "sctp", Addr: sctpAddr(sockaddr(ap)), Err: err}
	}
	l := &sctpListener{f: os.NewFile(uintptr(fd), "sctp-listener")}
	if l.rc, err = l.f.SyscallConn(); err != nil {
		l.f.Close()
		return nil, opErr(err)
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		l.addr = sctpAddr(sa)
	} else {
		l.addr = sctpAddr(sockaddr(ap))
	}
	return l, nil
}

// Accept waits for the next association; Close wakes it with net.ErrClosed.
func (l *sctpListener) Accept() (net.Conn, error) {
	var nfd int
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN && aerr != unix.EINTR
	})
	if err == nil && aerr != nil {
		err = os.NewSyscallError("accept", aerr)
	}
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "sctp", Addr: l.addr, Err: mapErr(err, &l.closed)}
	}
	c, err := newSCTPConn(nfd)
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "sctp", Addr: l.addr, Err: err}
	}
	return c, nil
}

func (l *sctpListener) Close() error {
	l.closed.Store(true)
	return l.f.Close()
}

func (l *sctpListener) Addr() net.Addr { return l.addr }

// sctpConn is one SCTP association; it implements MessageConn.
type sctpConn struct {
	f            *os.File
	rc           syscall.RawConn
	sc           *sctp.SCTPConn // message I/O on f's descriptor; never closed itself
	laddr, raddr *sctp.SCTPAddr
	closed       atomic.Bool
}

var _ MessageConn = (*sctpConn)(nil)

func newSCTPConn(fd int) (*sctpConn, error) {
	c := &sctpConn{f: os.NewFile(uintptr(fd), "sctp"), sc: sctp.NewSCTPConn(fd, nil)}
	rc, err := c.f.SyscallConn()
	if err != nil {
		c.f.Close()
		return nil, err
	}
	c.rc = rc
	c.laddr, c.raddr = &sctp.SCTPAddr{}, &sctp.SCTPAddr{}
	if sa, err := unix.Getsockname(fd); err == nil {
		c.laddr = sctpAddr(sa)
	}
	if sa, err := unix.Getpeername(fd); err == nil {
		c.raddr = sctpAddr(sa)
	}
	return c, nil
}

func (c *sctpConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "sctp", Source: c.laddr, Addr: c.raddr, Err: mapErr(err, &c.closed)}
}

// Read reads one message (its stream id and PPID are dropped; see
// ReadMessage).
func (c *sctpConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadMessage(b)
	return n, err
}

// Write sends b as one message on stream 0 with PPID 0.
func (c *sctpConn) Write(b []byte) (int, error) {
	return c.WriteMessage(b, MessageInfo{})
}

// ReadMessage reads one message and its stream id and PPID. A message
// longer than b is returned in pieces. At the end of the association it
// returns io.EOF.
func (c *sctpConn) ReadMessage(b []byte) (int, MessageInfo, error) {
	var n int
	var info *sctp.SndRcvInfo
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, info, rerr = c.sc.SCTPRead(b)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if n < 0 {
		n = 0
	}
	if err == nil {
		err = rerr
	}
	var mi MessageInfo
	if info != nil {
		mi = MessageInfo{Stream: info.Stream, PPID: info.PPID}
	}
	if err == io.EOF {
		return n, mi, io.EOF
	}
	if err != nil {
		return n, mi, c.opErr("read", err)
	}
	return n, mi, nil
}

// WriteMessage sends b as one message on info's stream (below
// SCTPStreams) with info's PPID.
func (c *sctpConn) WriteMessage(b []byte, info MessageInfo) (int, error) {
	var n int
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		n, werr = c.sc.SCTPWrite(b, &sctp.SndRcvInfo{Stream: info.Stream, PPID: info.PPID})
		return werr != unix.EAGAIN && werr != unix.EINTR
	})
	if n < 0 {
		n = 0
	}
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, c.opErr("write", err)
	}
	return n, nil
}

// Close ends the association gracefully (SHUTDOWN) and wakes blocked
// reads and writes.
func (c *sctpConn) Close() error {
	c.closed.Store(true)
	if err := c.f.Close(); err != nil {
		return c.opErr("close", err)
	}
	return nil
}

func (c *sctpConn) LocalAddr() net.Addr                { return c.laddr }
func (c *sctpConn) RemoteAddr() net.Addr               { return c.raddr }
func (c *sctpConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *sctpConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *sctpConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// dialSCTP creates the socket inside h (optionally transparent and bound
// to d.Local), then connects without blocking a thread (connectPoll, as
// TCP and UDP do): the socket only becomes writable once the association
// is established or has failed.
func dialSCTP(ctx context.Context, h *host, d Dial) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "sctp", Addr: sctpAddr(sockaddr(d.Remote)), Err: err}
	}
	if !d.Remote.Addr().Unmap().Is4() || (d.Local.IsValid() && !d.Local.Addr().Unmap().Is4()) {
		return nil, opErr(errors.New("only IPv4 SCTP is supported"))
	}
	if d.Transparent {
		return nil, opErr(ErrTransparentSCTP)
	}
	var fd int
	err := h.do(func() error {
		var err error
		if fd, err = sctpSocket(); err != nil {
			return err
		}
		if err := setDialOpts(fd, d); err != nil {
			unix.Close(fd)
			return err
		}

		if d.Local.IsValid() {
			if err := unix.Bind(fd, sockaddr(d.Local)); err != nil {
				unix.Close(fd)
				return os.NewSyscallError("bind", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, opErr(err)
	}
	// Registered with the poller before connect, so no wake-up is missed.
	f := os.NewFile(uintptr(fd), "sctp")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, opErr(err)
	}
	fail := func(err error) (net.Conn, error) {
		f.Close()
		return nil, opErr(err)
	}
	if err := connectPoll(ctx, f, rc, sockaddr(d.Remote)); err != nil {
		return fail(err)
	}
	c := &sctpConn{f: f, rc: rc, sc: sctp.NewSCTPConn(fd, nil), laddr: &sctp.SCTPAddr{}, raddr: sctpAddr(sockaddr(d.Remote))}
	if sa, err := unix.Getsockname(fd); err == nil {
		c.laddr = sctpAddr(sa)
	}
	return c, nil
}
