//go:build linux

package loadgen

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// serve starts a bench server on loopback (no root needed) and returns its
// TCP and UDP addresses.
func serve(t *testing.T) (tcp, udp netip.AddrPort) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve("bench-pod", l, pc)
	t.Cleanup(func() { s.Close() })
	return l.Addr().(*net.TCPAddr).AddrPort(), pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestClientsOnLoopback runs every client briefly against a server on
// loopback and checks what a user would read off the figures.
func TestClientsOnLoopback(t *testing.T) {
	tcp, udp := serve(t)
	const d = 200 * time.Millisecond

	bps, err := Bulk(LockedEnter, tcp, d)
	if err != nil || bps <= 0 {
		t.Errorf("Bulk: %v bit/s, %v", bps, err)
	}
	cr, err := Conns(LockedEnter, tcp, d, 2, "bench-pod")
	if err != nil || cr.OK == 0 || cr.PerSec <= 0 {
		t.Errorf("Conns: %+v, %v", cr, err)
	}
	if _, err := Conns(LockedEnter, tcp, 50*time.Millisecond, 1, "another-pod"); err == nil {
		t.Errorf("Conns expecting another pod's hostname succeeded")
	}
	ur, err := UDP(LockedEnter, udp, d, 5000)
	if err != nil || ur.Sent == 0 || ur.Delivered == 0 || ur.Delivered > ur.Sent || ur.LossPercent < 0 || ur.LossPercent > 100 {
		t.Errorf("UDP: %+v, %v", ur, err)
	}
	// At 5,000/s for 200 ms about 1,000 datagrams are offered.
	if ur.Sent < 500 || ur.Sent > 1100 {
		t.Errorf("UDP offered %d datagrams in %s at 5000/s", ur.Sent, d)
	}
	rr, err := RR(LockedEnter, tcp, d)
	if err != nil || rr.Samples == 0 || rr.P50 <= 0 || rr.P99 < rr.P50 {
		t.Errorf("RR: %+v, %v", rr, err)
	}
	t.Logf("loopback: bulk %.2f Gbit/s, %0.f conn/s (%d), udp %+v, rr p50 %s p99 %s on CPU %d (%d samples)",
		bps/1e9, cr.PerSec, cr.OK, ur, rr.P50, rr.P99, rr.CPU, rr.Samples)
}

// TestRefusedIsAnError: nothing listens, and every client says so rather
// than reporting a figure.
func TestRefusedIsAnError(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	if _, err := Bulk(LockedEnter, addr, 50*time.Millisecond); err == nil {
		t.Error("Bulk to a closed port succeeded")
	}
	if _, err := RR(LockedEnter, addr, 50*time.Millisecond); err == nil {
		t.Error("RR to a closed port succeeded")
	}
}

func TestUDPCounts(t *testing.T) {
	c := udpCounts{}
	var ans [17]byte
	data := append([]byte{udpData}, "run00001"...)
	for range 3 {
		if c.handle(data, &ans) {
			t.Fatal("a data datagram was answered")
		}
	}
	if !c.handle(append([]byte{udpQuery}, "run00001"...), &ans) || ans[0] != udpAns || ans[16] != 3 {
		t.Fatalf("query answered %v, want a count of 3", ans)
	}
	if c.handle([]byte{udpQuery}, &ans) {
		t.Fatal("a short query was answered")
	}
	allocs := testing.AllocsPerRun(1000, func() { c.handle(data, &ans) })
	if allocs != 0 {
		t.Errorf("counting a datagram allocates %v times", allocs)
	}
}
