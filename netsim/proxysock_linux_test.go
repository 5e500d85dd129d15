//go:build linux

package netsim

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sockoptOf reads an int socket option of c's socket.
func sockoptOf(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no SyscallConn", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// A proxy's sockets: ProxyListen's accepted conns and ProxyDial's conns
// carry traffic between two namespaces like Listen's and Dial's, from the
// dialing host's address, with TCP_NODELAY and without keep-alive; more
// dials than the pool holds at once all work (it refills); a reset and a
// refusal have the net package's error shape; and the pool's sockets are
// closed with the host.
func TestProxySockets(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	l, err := ProxyListen(context.Background(), b, "tcp4", "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	remote := l.Addr().(*net.TCPAddr).AddrPort()
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	const dials = 3 * sockPoolBatch
	for i := range dials {
		c, err := ProxyDial(context.Background(), a, Dial{Network: "tcp", Remote: remote, Timeout: 3 * time.Second})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		s := <-accepted
		c.SetDeadline(time.Now().Add(3 * time.Second))
		s.SetDeadline(time.Now().Add(3 * time.Second))
		if got := c.LocalAddr().String(); got != s.RemoteAddr().String() || c.LocalAddr().(*net.TCPAddr).IP.String() != "10.0.0.1" {
			t.Fatalf("dial %d: local address %v, the listener saw %v (want 10.0.0.1: a socket of host a)", i, c.LocalAddr(), s.RemoteAddr())
		}
		if c.RemoteAddr().String() != remote.String() {
			t.Errorf("dial %d: remote address %v, want %v", i, c.RemoteAddr(), remote)
		}
		if i == 0 {
			for _, x := range []struct {
				name string
				c    net.Conn
			}{{"dialled", c}, {"accepted", s}} {
				if v := sockoptOf(t, x.c, unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != 0 {
					t.Errorf("the %s conn has SO_KEEPALIVE %d, want 0", x.name, v)
				}
				if v := sockoptOf(t, x.c, unix.IPPROTO_TCP, unix.TCP_NODELAY); v != 1 {
					t.Errorf("the %s conn has TCP_NODELAY %d, want 1", x.name, v)
				}
			}
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("dial %d: the listener read %q, %v", i, buf, err)
		}
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Read(buf); err != io.EOF {
			t.Fatalf("dial %d: after CloseWrite the listener read %v, want EOF", i, err)
		}
		if _, err := s.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		s.Close()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "pong" {
			t.Fatalf("dial %d: read %q, %v; want pong and EOF", i, got, err)
		}
		c.Close()
	}

	// The peer resets: the dialled conn's read says so as net would.
	c, err := ProxyDial(context.Background(), a, Dial{Network: "tcp", Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	s.(*net.TCPConn).SetLinger(0)
	s.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var op *net.OpError
	if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &op) || op.Op != "read" || op.Net != "tcp" {
		t.Errorf("read after the peer's reset: %v, want a *net.OpError read tcp ... connection reset by peer", err)
	}
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
	// SetLinger(0) on a dialled conn resets the accepted one.
	c, err = ProxyDial(context.Background(), a, Dial{Network: "tcp", Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	s = <-accepted
	if err := c.(interface{ SetLinger(int) error }).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the peer of a conn closed after SetLinger(0) read %v, want connection reset", err)
	}
	s.Close()

	// Refused, and a silent address: as Dial says them.
	_, err = ProxyDial(context.Background(), a, Dial{Network: "tcp", Remote: ap("10.0.0.2:9")})
	var se *os.SyscallError
	if !errors.As(err, &op) || op.Op != "dial" || op.Addr.String() != "10.0.0.2:9" || !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &se) || se.Syscall != "connect" {
		t.Errorf("refused ProxyDial: %v, want a *net.OpError dial tcp 10.0.0.2:9: connect: connection refused", err)
	}
	_, err = ProxyDial(context.Background(), a, Dial{Network: "tcp", Remote: ap("10.0.0.99:9"), Timeout: 300 * time.Millisecond})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("ProxyDial to a silent address: %v, want a timeout", err)
	}

	// The pool holds sockets of a's namespace; closing the lab closes them.
	h := a.(*host)
	h.pool.mu.Lock()
	pooled := len(h.pool.free)
	h.pool.mu.Unlock()
	if pooled == 0 {
		t.Errorf("the pool is empty after %d dials", dials)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	h.pool.mu.Lock()
	defer h.pool.mu.Unlock()
	if !h.pool.closed || len(h.pool.free) != 0 {
		t.Errorf("after the lab closed, the pool is closed=%v with %d sockets, want closed and empty", h.pool.closed, len(h.pool.free))
	}
}
