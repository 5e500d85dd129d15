//go:build linux

package netsim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nplab/nplab/internal/testenv"
)

// observe opens an observer in h watching ws, closed when the test ends.
func observe(t *testing.T, h Host, ws ...Watch) *observer {
	t.Helper()
	o, err := Observe(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	if err := o.SetWatch(ws); err != nil {
		t.Fatal(err)
	}
	return o.(*observer)
}

// collect returns the packets o delivers within d.
func collect(o Observer, d time.Duration) []Packet {
	var got []Packet
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case p, ok := <-o.Packets():
			if !ok {
				return got
			}
			got = append(got, p)
		case <-timer.C:
			return got
		}
	}
}

// expectOne waits (bounded) for one packet, then a little longer for any
// other, and checks it is exactly want (Time aside).
func expectOne(t *testing.T, o Observer, want Packet) {
	t.Helper()
	var got []Packet
	select {
	case p := <-o.Packets():
		got = append(got, p)
	case <-time.After(3 * time.Second):
	}
	got = append(got, collect(o, 200*time.Millisecond)...)
	if len(got) != 1 {
		t.Fatalf("observed %v, want exactly one packet %v", got, want)
	}
	p := got[0]
	if time.Since(p.Time) > 10*time.Second || p.Time.After(time.Now()) {
		t.Errorf("packet time %v is not just now", p.Time)
	}
	p.Time = time.Time{}
	if p != want {
		t.Errorf("observed %+v, want %+v", p, want)
	}
}

func expectNone(t *testing.T, o Observer, why string) {
	t.Helper()
	if got := collect(o, 300*time.Millisecond); len(got) > 0 {
		t.Errorf("%s: observed %v, want nothing", why, got)
	}
}

func dialFrom(h Host, network, local, remote string, timeout time.Duration) (net.Conn, error) {
	return h.DialFrom(context.Background(), Dial{Network: network, Local: ap(local), Remote: ap(remote), Timeout: timeout})
}

func TestObserveRefusedTCP(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	o := observe(t, b, Watch{"TCP", ap("0.0.0.0:30080")}, Watch{"TCP", ap("10.0.0.2:30082")})

	// Nothing listens on 30080: the kernel refuses, and the observer
	// sees the SYN it refused.
	_, err := dialFrom(a, "tcp", "10.0.0.1:40001", "10.0.0.2:30080", 3*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a watched port nothing listens on: %v, want connection refused", err)
	}
	expectOne(t, o, Packet{Protocol: "TCP", Src: ap("10.0.0.1:40001"), Dst: ap("10.0.0.2:30080"), Dev: "eth0"})

	// An unwatched port: refused too, and not even copied to the socket.
	before := o.kernelPackets()
	_, err = dialFrom(a, "tcp", "10.0.0.1:40002", "10.0.0.2:30081", 3*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial an unwatched port: %v, want connection refused", err)
	}
	expectNone(t, o, "dial to an unwatched port")
	if got := o.kernelPackets(); got != before {
		t.Errorf("the kernel passed %d packets of an unwatched dial to the socket, want 0", got-before)
	}

	// A connection that works, with data both ways: only its SYN.
	echo := tcpEcho(t, b, "10.0.0.2:30082")
	before = o.kernelPackets()
	c, err := dialFrom(a, "tcp", "10.0.0.1:40003", echo, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := roundTrip(c, 3*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	expectOne(t, o, Packet{Protocol: "TCP", Src: ap("10.0.0.1:40003"), Dst: ap("10.0.0.2:30082"), Dev: "eth0"})
	if got := o.kernelPackets() - before; got != 1 {
		t.Errorf("the kernel passed %d packets of one connection to the socket, want 1 (its SYN)", got)
	}

	// A watch for one address does not match another of the host's.
	if err := b.AddAddr("eth0", pfx("10.0.0.3/24")); err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, b, "10.0.0.3:30082")
	if c, err := dialFrom(a, "tcp", "10.0.0.1:40004", "10.0.0.3:30082", 3*time.Second); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	expectNone(t, o, "dial to 10.0.0.3:30082 with only 10.0.0.2:30082 watched")
	if o.Dropped() != 0 {
		t.Errorf("Dropped = %d, want 0", o.Dropped())
	}
}

func TestObserveRefusedUDP(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	// Every datagram gets its ICMP port unreachable, however fast.
	if err := b.Sysctl("net.ipv4.icmp_ratelimit", "0"); err != nil {
		t.Fatal(err)
	}
	o := observe(t, b, Watch{"UDP", ap("0.0.0.0:30053")})
	c, err := dialFrom(a, "udp", "10.0.0.1:40001", "10.0.0.2:30053", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := Packet{Protocol: "UDP", Src: ap("10.0.0.1:40001"), Dst: ap("10.0.0.2:30053"), Dev: "eth0"}
	for i := range 3 {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := c.Read(make([]byte, 16))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("datagram %d: read %v, want connection refused (ICMP port unreachable)", i, err)
		}
		expectOne(t, o, want)
	}

	// Unwatched: nothing reaches the socket.
	before := o.kernelPackets()
	c2, err := dialFrom(a, "udp", "10.0.0.1:40002", "10.0.0.2:30054", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for range 10 {
		c2.Write([]byte("ping"))
	}
	expectNone(t, o, "datagrams to an unwatched port")
	if got := o.kernelPackets(); got != before {
		t.Errorf("the kernel passed %d unwatched datagrams to the socket, want 0", got-before)
	}
}

// TestObserveBlackholed: a packet socket sees a packet before routing,
// so the SYN a blackhole rule drops (the client times out) is observed.
func TestObserveBlackholed(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	if err := b.AddRule(Rule{Priority: 10, IIF: "eth0", Proto: "tcp", DPort: 30080, Blackhole: true}); err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, b, "10.0.0.2:30080") // a listener, which the rule hides
	o := observe(t, b, Watch{"TCP", ap("0.0.0.0:30080")})
	_, err := dialFrom(a, "tcp", "10.0.0.1:40001", "10.0.0.2:30080", 1500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial through the blackhole rule: %v, want a timeout", err)
	}
	// The first SYN and, after 1 s, its retransmission.
	got := collect(o, 300*time.Millisecond)
	if len(got) == 0 || len(got) > 2 {
		t.Fatalf("observed %v, want the SYN (and perhaps its retransmission)", got)
	}
	for _, p := range got {
		p.Time = time.Time{}
		if want := (Packet{Protocol: "TCP", Src: ap("10.0.0.1:40001"), Dst: ap("10.0.0.2:30080"), Dev: "eth0"}); p != want {
			t.Errorf("observed %+v, want %+v", p, want)
		}
	}
}

// TestObserveLoopback: a host's traffic to itself goes out and comes
// back in on lo; only the way in is reported.
func TestObserveLoopback(t *testing.T) {
	n := newLab(t)
	_, b, _ := pair(t, n)
	o := observe(t, b, Watch{"TCP", ap("0.0.0.0:30080")})
	_, err := dialFrom(b, "tcp", "10.0.0.2:40001", "10.0.0.2:30080", 3*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want connection refused", err)
	}
	expectOne(t, o, Packet{Protocol: "TCP", Src: ap("10.0.0.2:40001"), Dst: ap("10.0.0.2:30080"), Dev: "lo"})
}

// sendRaw sends payload as an IPv4 packet of protocol proto from h to dst
// through a raw socket, with ipOptions (if any) in its IPv4 header.
func sendRaw(t *testing.T, h Host, proto int, dst string, ipOptions, payload []byte) {
	t.Helper()
	err := h.(*host).do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if len(ipOptions) > 0 {
			if err := unix.SetsockoptString(fd, unix.IPPROTO_IP, unix.IP_OPTIONS, string(ipOptions)); err != nil {
				return err
			}
		}
		return unix.Sendto(fd, payload, 0, &unix.SockaddrInet4{Addr: netip.MustParseAddr(dst).As4()})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestObserveSCTPInitAndIPOptions sends SCTP packets through a raw socket
// (no SCTP module needed), one with IPv4 options so the header is longer
// than 20 bytes: the kernel filter finds the ports after the options (at
// offset 20 it would read the options, 0x0101, as the destination port).
func TestObserveSCTPInitAndIPOptions(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	o := observe(t, b, Watch{"SCTP", ap("10.0.0.2:30090")})
	nops := []byte{1, 1, 1, 0} // NOP NOP NOP EOL: IHL 6
	sendRaw(t, a, unix.IPPROTO_SCTP, "10.0.0.2", nil, sctpHdr(40001, 30090, 1))
	expectOne(t, o, Packet{Protocol: "SCTP", Src: ap("10.0.0.1:40001"), Dst: ap("10.0.0.2:30090"), Dev: "eth0"})
	sendRaw(t, a, unix.IPPROTO_SCTP, "10.0.0.2", nops, sctpHdr(40002, 30090, 1))
	expectOne(t, o, Packet{Protocol: "SCTP", Src: ap("10.0.0.1:40002"), Dst: ap("10.0.0.2:30090"), Dev: "eth0"})

	before := o.kernelPackets()
	sendRaw(t, a, unix.IPPROTO_SCTP, "10.0.0.2", nil, sctpHdr(40003, 30090, 0))  // DATA, not INIT
	sendRaw(t, a, unix.IPPROTO_SCTP, "10.0.0.2", nops, sctpHdr(40004, 30091, 1)) // another port
	expectNone(t, o, "SCTP packets that are not an INIT to the watched port")
	if got := o.kernelPackets(); got != before {
		t.Errorf("the kernel passed %d unwatched SCTP packets to the socket, want 0", got-before)
	}

	// The same with a TCP SYN behind IPv4 options.
	if err := o.SetWatch([]Watch{{"TCP", ap("0.0.0.0:30080")}}); err != nil {
		t.Fatal(err)
	}
	sendRaw(t, a, unix.IPPROTO_TCP, "10.0.0.2", nops, tcpHdr(40005, 30080, tcpSYN))
	expectOne(t, o, Packet{Protocol: "TCP", Src: ap("10.0.0.1:40005"), Dst: ap("10.0.0.2:30080"), Dev: "eth0"})
}

// TestObserveRefusedSCTP needs the kernel's SCTP (the VM test has it).
func TestObserveRefusedSCTP(t *testing.T) {
	testenv.RequireSCTP(t)
	n := newLab(t)
	a, b, _ := pair(t, n)
	o := observe(t, b, Watch{"SCTP", ap("0.0.0.0:30090")})
	_, err := dialFrom(a, "sctp", "10.0.0.1:40001", "10.0.0.2:30090", 3*time.Second)
	if err == nil {
		t.Fatal("SCTP dial to a port nothing listens on succeeded")
	}
	// A refused INIT may be retried: every report is that INIT.
	got := collect(o, time.Second)
	if len(got) == 0 {
		t.Fatalf("observed nothing of a refused SCTP dial (%v)", err)
	}
	for _, p := range got {
		p.Time = time.Time{}
		if want := (Packet{Protocol: "SCTP", Src: ap("10.0.0.1:40001"), Dst: ap("10.0.0.2:30090"), Dev: "eth0"}); p != want {
			t.Errorf("observed %+v, want %+v", p, want)
		}
	}
}

func TestObserveSetWatchAndClose(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	goroutines := runtime.NumGoroutine()

	o := observe(t, b, Watch{"TCP", ap("0.0.0.0:30080")})
	dialFrom(a, "tcp", "10.0.0.1:40001", "10.0.0.2:30080", 3*time.Second)
	expectOne(t, o, Packet{Protocol: "TCP", Src: ap("10.0.0.1:40001"), Dst: ap("10.0.0.2:30080"), Dev: "eth0"})

	if err := o.SetWatch(nil); err != nil {
		t.Fatal(err)
	}
	before := o.kernelPackets()
	if _, err := dialFrom(a, "tcp", "10.0.0.1:40002", "10.0.0.2:30080", 3*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want connection refused", err)
	}
	expectNone(t, o, "after SetWatch(nil)")
	if got := o.kernelPackets(); got != before {
		t.Errorf("after SetWatch(nil) the kernel passed %d packets to the socket, want 0", got-before)
	}
	if err := o.SetWatch([]Watch{{"TCP", ap("0.0.0.0:0")}}); err == nil {
		t.Errorf("SetWatch with port 0 succeeded")
	}

	start := time.Now()
	if err := o.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, ok := <-o.Packets(); ok {
		t.Errorf("Packets delivered a packet after Close")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := o.SetWatch([]Watch{{"TCP", ap("0.0.0.0:30080")}}); err == nil {
		t.Errorf("SetWatch after Close succeeded")
	}

	// Ending the context closes it too.
	ctx, cancel := context.WithCancel(context.Background())
	o2, err := Observe(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-o2.Packets():
		if ok {
			t.Errorf("Packets delivered a packet with an empty watch set")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Packets is still open 3 s after the context ended")
	}

	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > goroutines {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after closing the observers, %d before:\n%s", got, goroutines, buf[:runtime.Stack(buf, true)])
	}
}

// TestObserveDropsWhenNotRead: a reader that falls behind loses packets,
// counted, and never blocks the observer.
func TestObserveDropsWhenNotRead(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	o := observe(t, b, Watch{"UDP", ap("0.0.0.0:30053")})
	// Not connected, so no ICMP error makes a later send fail.
	c, err := a.ListenPacket(context.Background(), "udp4", "10.0.0.1:40001")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = ObserveBuffer + 200
	for i := range sent {
		if _, err := c.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(ap("10.0.0.2:30053"))); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // let the receiving side keep up
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for uint64(len(o.Packets()))+o.Dropped() < sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	queued, dropped := len(o.Packets()), o.Dropped()
	if queued != ObserveBuffer || uint64(queued)+dropped != sent {
		t.Errorf("%d packets queued and %d dropped, want %d queued and %d in all", queued, dropped, ObserveBuffer, sent)
	}
}
