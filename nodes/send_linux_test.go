//go:build linux

package nodes

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nplab/nplab/netsim"
)

// reuseHost dials as netsim does when given a source port: bound with
// SO_REUSEADDR, so the bind succeeds on a port whose earlier connection
// still holds the four-tuple and connect is what refuses it.
type reuseHost struct{ *fakeHost }

func (h reuseHost) DialFrom(ctx context.Context, d netsim.Dial) (net.Conn, error) {
	nd := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(d.Local), Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return nd.DialContext(ctx, d.Network, d.Remote.String())
}

// TestDialTCPSkipsATakenFourTuple: a request's source port is picked at
// random, and a port that reached the same target a moment ago may still
// hold that four-tuple while it closes (connect: cannot assign requested
// address). The request takes another port rather than failing: 1 in 30
// requests from a pod to a ClusterIP failed so in a test run.
func TestDialTCPSkipsATakenFourTuple(t *testing.T) {
	target := serveLoopback(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c); c.Close() })
	h := reuseHost{newFakeHost()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A connection from a port of the ephemeral range, kept open: its
	// four-tuple is taken, as a closing connection's is.
	var busy netip.AddrPort
	for range 20 {
		p := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), pickPort())
		c, err := h.DialFrom(ctx, netsim.Dial{Network: "tcp", Local: p, Remote: target})
		if err != nil {
			continue
		}
		defer c.Close()
		busy = p
		break
	}
	if !busy.IsValid() {
		t.Fatal("no port of the ephemeral range could reach the listener")
	}
	// A plain connect from it fails, as the request's did.
	if c, err := h.DialFrom(ctx, netsim.Dial{Network: "tcp", Local: busy, Remote: target}); err == nil {
		c.Close()
		t.Fatalf("a second connect from %s succeeded; want EADDRNOTAVAIL", busy)
	} else if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("a second connect from %s: %v, want EADDRNOTAVAIL", busy, err)
	}

	picks := 0
	defer func(f func() uint16) { pickPort = f }(pickPort)
	random := pickPort
	pickPort = func() uint16 {
		picks++
		if picks == 1 {
			return busy.Port()
		}
		return random()
	}
	var tried []netip.AddrPort
	conn, local, err := dialTCP(ctx, h, target, netip.MustParseAddr("127.0.0.1"), func(a netip.AddrPort) { tried = append(tried, a) })
	if err != nil {
		t.Fatalf("dialTCP with %s taken (tried %v): %v; want another port", busy, tried, err)
	}
	defer conn.Close()
	if local == busy || len(tried) < 2 || tried[0] != busy {
		t.Errorf("dialTCP connected from %s after trying %v; want %s first, then another", local, tried, busy)
	}
}
