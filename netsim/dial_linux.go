//go:build linux

package netsim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialInet is DialFrom for TCP and UDP. Only socket(2) needs the host's
// namespace (Linux fixes a socket's namespace when it is created), so the
// socket is created, given its options and bound on a thread inside the
// host, and connected afterwards from the calling goroutine: the connect
// waits in the netpoller, bounded by ctx, and holds no OS thread. A
// thousand pending dials towards an unreachable endpoint are a thousand
// parked goroutines, not a thousand threads locked in a namespace.
//
// Errors have the net package's shape: a *net.OpError with Op "dial"
// whose Err is an *os.SyscallError ("connect: connection refused") or,
// at ctx's deadline, os.ErrDeadlineExceeded ("i/o timeout").
// Equivalent to: socket(SOCK_NONBLOCK) in <ns>; bind; connect; poll for POLLOUT; getsockopt(SO_ERROR)
func dialInet(ctx context.Context, h *host, d Dial) (net.Conn, error) {
	stream := d.Network == "tcp" || d.Network == "tcp4"
	remote := netip.AddrPortFrom(d.Remote.Addr().Unmap(), d.Remote.Port())
	local := d.Local
	if local.IsValid() {
		local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	}
	opErr := func(err error) error {
		e := &net.OpError{Op: "dial", Net: d.Network, Addr: inetAddr(stream, remote), Err: err}
		if local.IsValid() {
			e.Source = inetAddr(stream, local)
		}
		return e
	}
	family := unix.AF_INET
	if !remote.Addr().Is4() {
		family = unix.AF_INET6
	}
	if (family == unix.AF_INET6 && (d.Network == "tcp4" || d.Network == "udp4")) ||
		(local.IsValid() && local.Addr().Is4() != remote.Addr().Is4()) {
		return nil, opErr(&net.AddrError{Err: "no suitable address found", Addr: remote.String()})
	}
	typ := unix.SOCK_DGRAM
	if stream {
		typ = unix.SOCK_STREAM
	}
	if err := ctx.Err(); err != nil {
		return nil, opErr(ctxErr(err))
	}
	var fd int
	err := h.do(func() error {
		var err error
		fd, err = unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		if err := setDialOpts(fd, d); err != nil {
			unix.Close(fd)
			return err
		}
		if local.IsValid() {
			if err := unix.Bind(fd, inetSockaddr(local)); err != nil {
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
	f := os.NewFile(uintptr(fd), "dial")
	defer f.Close() // net.FileConn holds its own duplicate
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, opErr(err)
	}
	if err := connectPoll(ctx, f, rc, inetSockaddr(remote)); err != nil {
		return nil, opErr(err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// connectPoll connects f's non-blocking socket to sa without blocking a
// thread: the socket becomes writable once the connection is established
// (or has failed), so it waits for writability in the poller, bounded by
// ctx. Each wake-up (and the first call, before any wait: over a veth the
// handshake may complete inside connect itself) checks SO_ERROR and
// getpeername, which fails with ENOTCONN until the connection is up, as
// the net package does. It returns an *os.SyscallError for the kernel's
// verdict, os.ErrDeadlineExceeded at ctx's deadline and context.Canceled
// when ctx is cancelled.
func connectPoll(ctx context.Context, f *os.File, rc syscall.RawConn, sa unix.Sockaddr) error {
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			cerr = unix.Connect(int(fd), sa)
			if cerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	switch cerr {
	case nil, unix.EISCONN:
		return nil
	case unix.EINPROGRESS, unix.EALREADY:
	default:
		return os.NewSyscallError("connect", cerr)
	}
	if deadline, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(deadline)
	}
	expired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		f.SetWriteDeadline(time.Unix(1, 0)) // wakes the wait below
		close(expired)
	})
	err := rc.Write(func(fd uintptr) bool {
		soerr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := unix.Errno(soerr); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0, unix.EISCONN:
			if _, err := unix.Getpeername(int(fd)); err == unix.ENOTCONN {
				return false // still in progress
			}
			cerr = nil
			return true
		default:
			cerr = os.NewSyscallError("connect", e)
			return true
		}
	})
	if !stop() {
		<-expired
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return context.Canceled
		}
		return err
	}
	f.SetWriteDeadline(time.Time{})
	return nil
}

// ctxErr is what a dial reports for a context that ended before it
// started: "i/o timeout" for a deadline, as the net package says it.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

func inetSockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}

func inetAddr(stream bool, ap netip.AddrPort) net.Addr {
	if stream {
		return net.TCPAddrFromAddrPort(ap)
	}
	return net.UDPAddrFromAddrPort(ap)
}
