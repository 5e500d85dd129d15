//go:build linux

package netsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nplab/nplab/internal/testenv"
)

// labName returns a fresh random lab name ("t" and 6 random letters).
func labName(t *testing.T) string {
	t.Helper()
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "t" + string(b)
}

// newLab creates a lab that is closed (and checked to be gone) when the
// test ends, even when it fails.
func newLab(t *testing.T) Network {
	t.Helper()
	testenv.RequireRoot(t)
	lab := labName(t)
	n, err := New(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
			Clean(lab)
		}
		if ns := labNamespaces(t, lab); len(ns) > 0 {
			t.Errorf("after Close, ip netns list still shows %v", ns)
		}
	})
	return n
}

// netnsList returns what `ip netns list` prints. Where `ip` has no netns
// command (busybox's, in the VM test) it lists /run/netns, which is what
// `ip netns list` reads.
func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err == nil {
		return string(out)
	}
	if !strings.Contains(string(out), "BusyBox") {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Name() + "\n")
	}
	return b.String()
}

// labNamespaces returns the namespaces of lab that `ip netns list` shows.
func labNamespaces(t *testing.T, lab string) []string {
	t.Helper()
	var found []string
	for line := range strings.Lines(netnsList(t)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, "nplab-"+lab+"-") {
			found = append(found, name)
		}
	}
	return found
}

func addHost(t *testing.T, n Network, name string) Host {
	t.Helper()
	h, err := n.AddHost(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func addLink(t *testing.T, n Network, spec LinkSpec) Link {
	t.Helper()
	l, err := n.AddLink(spec)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pair makes hosts a (10.0.0.1/24) and b (10.0.0.2/24) joined by link "ab".
func pair(t *testing.T, n Network) (a, b Host, l Link) {
	t.Helper()
	a, b = addHost(t, n, "a"), addHost(t, n, "b")
	l = addLink(t, n, LinkSpec{Name: "ab",
		A: LinkEnd{Host: a, Dev: "eth0", Addrs: []netip.Prefix{pfx("10.0.0.1/24")}},
		B: LinkEnd{Host: b, Dev: "eth0", Addrs: []netip.Prefix{pfx("10.0.0.2/24")}},
	})
	return a, b, l
}

// tcpEcho serves an echo listener in h on address until the test ends and
// returns the listener's address.
func tcpEcho(t *testing.T, h Host, address string) string {
	t.Helper()
	l, err := h.Listen(context.Background(), "tcp4", address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// tcpRoundTrip dials address from h, sends a message and expects it back.
func tcpRoundTrip(h Host, address string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := h.Dial(ctx, "tcp", address)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, timeout)
}

func roundTrip(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	msg := []byte("hello from " + c.LocalAddr().String())
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo returned " + string(got))
	}
	return nil
}

func TestTwoHostsTCPAndUDPEcho(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)

	if got, want := labNamespaces(t, n.Lab()), []string{"nplab-" + n.Lab() + "-a", "nplab-" + n.Lab() + "-b"}; !slices.Equal(sortStrings(got), want) {
		t.Errorf("ip netns list shows %v, want %v", got, want)
	}
	if a.Namespace() != "nplab-"+n.Lab()+"-a" || a.Name() != "a" {
		t.Errorf("host a: Name %q Namespace %q", a.Name(), a.Namespace())
	}
	if n.Host("a") != a || n.Host("nope") != nil || n.Link("nope") != nil {
		t.Errorf("Host/Link lookups are wrong")
	}
	st, err := readState(n.Lab())
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	if len(st.Namespaces) != 2 {
		t.Errorf("state file records %+v, want 2 namespaces", st)
	}

	addr := tcpEcho(t, b, "10.0.0.2:0")
	if err := tcpRoundTrip(a, addr, 5*time.Second); err != nil {
		t.Errorf("TCP echo a → b: %v", err)
	}

	pc, err := b.ListenPacket(context.Background(), "udp4", "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:k], from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, 5*time.Second); err != nil {
		t.Errorf("UDP echo a → b: %v", err)
	}
	if got := c.LocalAddr().(*net.UDPAddr).IP.String(); got != "10.0.0.1" {
		t.Errorf("UDP conn's local address is %s, want 10.0.0.1", got)
	}
}

func sortStrings(s []string) []string { slices.Sort(s); return s }

func TestCloseRemovesEverything(t *testing.T) {
	testenv.RequireRoot(t)
	lab := labName(t)
	n, err := New(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Clean(lab) })
	a, _, _ := pair(t, n)
	// An open listener keeps its namespace alive in the kernel, but not in
	// ip netns list; close it as callers must.
	l, err := a.Listen(context.Background(), "tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if len(labNamespaces(t, lab)) != 2 {
		t.Fatalf("ip netns list shows %v, want the lab's two namespaces", labNamespaces(t, lab))
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if ns := labNamespaces(t, lab); len(ns) != 0 {
		t.Errorf("after Close, ip netns list shows %v", ns)
	}
	if _, err := os.Stat(filepath.Join(stateDir, lab+".json")); !os.IsNotExist(err) {
		t.Errorf("after Close the state file is still there (stat: %v)", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := n.AddHost("c"); err == nil {
		t.Errorf("AddHost after Close succeeded")
	}
}

func TestBridgeJoinsThreeHosts(t *testing.T) {
	n := newLab(t)
	br := addHost(t, n, "br")
	if err := n.AddBridge(br, "br0"); err != nil {
		t.Fatal(err)
	}
	if err := n.AddBridge(br, "br0"); err != nil {
		t.Errorf("adding the same bridge again: %v", err)
	}
	var hosts []Host
	var addrs []string
	for i, name := range []string{"h1", "h2", "h3"} {
		h := addHost(t, n, name)
		ip := netip.AddrFrom4([4]byte{172, 18, 0, byte(2 + i)})
		addLink(t, n, LinkSpec{Name: name,
			A: LinkEnd{Host: h, Dev: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(ip, 16)}},
			B: LinkEnd{Host: br, Dev: name, Bridge: "br0"},
		})
		hosts = append(hosts, h)
		addrs = append(addrs, tcpEcho(t, h, ip.String()+":0"))
	}
	for i, h := range hosts {
		for j, addr := range addrs {
			if i == j {
				continue
			}
			if err := tcpRoundTrip(h, addr, 5*time.Second); err != nil {
				t.Errorf("%s → %s: %v", h.Name(), addr, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := hosts[0].Dial(ctx, "tcp", "10.244.2.5:80")
	if err == nil || !strings.Contains(err.Error(), "network is unreachable") {
		t.Errorf("dial to a prefix without a route: %v, want network is unreachable", err)
	}
	if err == nil || !strings.Contains(err.Error(), `host "h1"`) {
		t.Errorf("dial error %v does not name the host", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Errorf("dial error %v does not unwrap to a *net.OpError", err)
	}
}

func TestLinkDownAndUp(t *testing.T) {
	n := newLab(t)
	a, b, l := pair(t, n)
	// A route through the link, which the kernel drops while it is down.
	if err := b.AddAddr("lo", pfx("10.50.0.1/32")); err != nil {
		t.Fatal(err)
	}
	if err := a.AddRoute(Route{Dst: pfx("10.50.0.0/24"), Via: netip.MustParseAddr("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	addr := tcpEcho(t, b, "0.0.0.0:0")
	_, port, _ := net.SplitHostPort(addr)
	direct, routed := "10.0.0.2:"+port, "10.50.0.1:"+port
	for _, to := range []string{direct, routed} {
		if err := tcpRoundTrip(a, to, 5*time.Second); err != nil {
			t.Fatalf("before SetUp(false): %s: %v", to, err)
		}
	}
	if err := l.SetUp(false); err != nil {
		t.Fatal(err)
	}
	if err := tcpRoundTrip(a, direct, time.Second); err == nil {
		t.Errorf("with the link down, a TCP dial to %s succeeded", direct)
	}
	if err := l.SetUp(true); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{direct, routed} {
		if err := tcpRoundTrip(a, to, 5*time.Second); err != nil {
			t.Errorf("after SetUp(true): %s: %v", to, err)
		}
	}
}

func TestBlackholeRule(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	addr := tcpEcho(t, b, "10.0.0.2:0")
	_, p, _ := net.SplitHostPort(addr)
	port := uint16(mustAtoi(t, p))
	rule := Rule{Priority: 10, IIF: "eth0", Proto: "tcp", DPort: port, Blackhole: true}
	if err := b.AddRule(rule); err != nil {
		t.Fatal(err)
	}
	if err := b.AddRule(rule); err != nil {
		t.Errorf("adding the same rule again: %v", err)
	}
	err := tcpRoundTrip(a, addr, time.Second)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("dial through the blackhole rule: %v, want a timeout (no RST)", err)
	}
	// Traffic that does not come in through eth0 is unaffected.
	if err := tcpRoundTrip(b, addr, 5*time.Second); err != nil {
		t.Errorf("b to its own address (iif lo) with the rule in place: %v", err)
	}
	if err := b.DelRule(rule); err != nil {
		t.Fatal(err)
	}
	if err := b.DelRule(rule); err != nil {
		t.Errorf("deleting a missing rule: %v", err)
	}
	if err := tcpRoundTrip(a, addr, 5*time.Second); err != nil {
		t.Errorf("after DelRule: %v", err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	ap, err := netip.ParseAddrPort("0.0.0.0:" + s)
	if err != nil {
		t.Fatal(err)
	}
	return int(ap.Port())
}

// TestTransparentDial shows the whole recipe a NodePort proxy uses to keep
// the client's address: proxy host a dials backend b with the client's
// address as source; b routes its replies to that address back to a; a's
// policy routing delivers them locally to the transparent socket.
func TestTransparentDial(t *testing.T) {
	for _, proto := range []string{"tcp", "udp", "sctp"} {
		t.Run(proto, func(t *testing.T) {
			if proto == "sctp" {
				testenv.RequireRoot(t)
				testenv.RequireSCTP(t)
			}
			if proto == "sctp" {
				testTransparentSCTPRefused(t)
				return
			}
			testTransparentDial(t, proto)
		})
	}
}

// testTransparentSCTPRefused: Linux SCTP cannot use a foreign source
// address, so a transparent SCTP dial says so instead of timing out.
func testTransparentSCTPRefused(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	port, _ := echoRecordingSource(t, b, "sctp")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.DialFrom(ctx, Dial{Network: "sctp", Transparent: true,
		Local:  netip.MustParseAddrPort("192.0.2.7:40001"),
		Remote: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port)})
	if !errors.Is(err, ErrTransparentSCTP) || !errors.Is(err, ErrNotSupported) {
		t.Errorf("transparent SCTP dial: %v, want ErrTransparentSCTP (wrapping ErrNotSupported)", err)
	}
	// From one of its own addresses the same dial works.
	c, err := a.DialFrom(ctx, Dial{Network: "sctp", Local: netip.MustParseAddrPort("10.0.0.1:40001"),
		Remote: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, 5*time.Second); err != nil {
		t.Error(err)
	}
	if got := c.LocalAddr().String(); got != "10.0.0.1:40001" {
		t.Errorf("local address %s, want 10.0.0.1:40001", got)
	}
}

// echoRecordingSource serves one echo backend for proto in b and reports
// the source address of the first connection or datagram.
func echoRecordingSource(t *testing.T, b Host, proto string) (port uint16, seen <-chan string) {
	t.Helper()
	ch := make(chan string, 1)
	if proto == "udp" {
		pc, err := b.ListenPacket(context.Background(), "udp4", "10.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				k, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				select {
				case ch <- from.String():
				default:
				}
				pc.WriteTo(buf[:k], from)
			}
		}()
		return uint16(pc.LocalAddr().(*net.UDPAddr).Port), ch
	}
	l, err := b.Listen(context.Background(), proto, "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		ch <- c.RemoteAddr().String()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 2048)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:k])
		}
	}()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return uint16(mustAtoi(t, p)), ch
}

func testTransparentDial(t *testing.T, proto string) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	client := netip.MustParseAddr("192.0.2.7") // not one of a's addresses
	port, seen := echoRecordingSource(t, b, proto)

	// In b (the pod): replies to the client go back through a (its node).
	if err := b.AddRoute(Route{Dst: pfx("192.0.2.0/24"), Via: netip.MustParseAddr("10.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	// In a (the node):
	//   ip rule add from 10.0.0.2 ipproto <proto> sport <port> lookup 100
	//   ip route add local 0.0.0.0/0 dev lo table 100
	if err := a.AddRule(Rule{Priority: 200, From: pfx("10.0.0.2/32"), Proto: proto, SPort: port, Table: 100}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddRoute(Route{Dst: pfx("0.0.0.0/0"), Dev: "lo", Local: true, Table: 100}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	backend := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port)
	c, err := a.DialFrom(ctx, Dial{Network: proto, Local: netip.AddrPortFrom(client, 40001), Remote: backend, Transparent: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, 5*time.Second); err != nil {
		t.Errorf("round trip over the transparent %s connection: %v", proto, err)
	}
	select {
	case from := <-seen:
		if want := "192.0.2.7:40001"; from != want {
			t.Errorf("b's %s backend saw the client as %s, want %s", proto, from, want)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("b's %s backend got nothing", proto)
	}

	// Without IP_TRANSPARENT the kernel refuses the foreign address.
	_, err = a.DialFrom(ctx, Dial{Network: proto, Local: netip.AddrPortFrom(client, 40002), Remote: backend})
	if err == nil || !strings.Contains(err.Error(), "cannot assign requested address") {
		t.Errorf("non-transparent %s dial from a foreign address: %v, want cannot assign requested address", proto, err)
	}
}

// bulk sends size bytes from a to b's sink and returns how long it took.
func bulk(t *testing.T, a Host, sink string, size int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	c, err := a.Dial(ctx, "tcp", sink)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	// The sink answers with one byte once it has read everything.
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

func TestSetRate(t *testing.T) {
	n := newLab(t)
	a, b, l := pair(t, n)
	ln, err := b.Listen(context.Background(), "tcp4", "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				io.Copy(io.Discard, c)
				c.Write([]byte{1})
			}()
		}
	}()
	const size = 512 << 10 // 512 KiB
	const rate = 4_000_000 // 4 Mbit/s: ~1 s for size
	sink := ln.Addr().String()
	bulk(t, a, sink, 1) // warm up: neighbour entries, carrier
	free := bulk(t, a, sink, size)
	if err := l.SetRate(rate); errors.Is(err, ErrNotSupported) {
		testenv.Need(t, "tbf", err) // the VM test loads only the modules it is told to
	} else if err != nil {
		t.Fatal(err)
	}
	limited := bulk(t, a, sink, size)
	if err := l.SetRate(0); err != nil {
		t.Fatal(err)
	}
	freeAgain := bulk(t, a, sink, size)
	t.Logf("%d KiB: unlimited %v, at %d bit/s %v, limit removed %v", size>>10, free, rate, limited, freeAgain)
	if limited < 3*free {
		t.Errorf("the limited transfer (%v) is not clearly slower than the unlimited one (%v)", limited, free)
	}
	if freeAgain*3 > limited {
		t.Errorf("after SetRate(0) the transfer (%v) is still about as slow as the limited one (%v)", freeAgain, limited)
	}
}

// requireNetem skips (or, under NPLAB_REQUIRE=netem, fails) when err says
// the kernel has no netem qdisc.
func requireNetem(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrNotSupported) {
		testenv.Need(t, "netem", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestImpairmentDelayShowsInRTT(t *testing.T) {
	n := newLab(t)
	a, b, l := pair(t, n)
	addr := tcpEcho(t, b, "10.0.0.2:0")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rtt := func() time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			if err := roundTrip(c, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	before := rtt()
	err = l.SetImpairment(Impairment{Delay: 50 * time.Millisecond})
	if err != nil && !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	}
	if err != nil && !strings.Contains(err.Error(), "netem qdisc unavailable") {
		t.Errorf("error %v does not say netem qdisc unavailable", err)
	}
	requireNetem(t, err)
	with := rtt()
	if err := l.SetImpairment(Impairment{}); err != nil {
		t.Fatal(err)
	}
	after := rtt()
	t.Logf("RTT before %v, with 50ms delay each way %v, after removing it %v", before, with, after)
	if with < before+80*time.Millisecond {
		t.Errorf("RTT with a 50 ms delay on each end is %v (before: %v), want at least 80 ms more", with, before)
	}
	if after > with/2 {
		t.Errorf("RTT after removing the impairment is still %v", after)
	}
}

func TestCleanRemovesAKilledLab(t *testing.T) {
	testenv.RequireRoot(t)
	lab := labName(t)
	n, err := New(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Clean(lab) })
	a, _, _ := pair(t, n)
	l, err := a.Listen(context.Background(), "tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	n.(*network).abandon() // as if the process had been killed

	if got := labNamespaces(t, lab); len(got) != 2 {
		t.Fatalf("the killed lab's namespaces: %v, want 2", got)
	}
	if _, err := New(lab); err == nil || !strings.Contains(err.Error(), "nplab clean --name "+lab) {
		t.Errorf("New over a killed lab: %v, want advice to run nplab clean --name %s", err, lab)
	}
	labs, err := Labs()
	if err != nil || !slices.Contains(labs, lab) {
		t.Errorf("Labs() = %v, %v; want it to list %s", labs, err, lab)
	}
	if err := Clean(lab); err != nil {
		t.Fatal(err)
	}
	if got := labNamespaces(t, lab); len(got) != 0 {
		t.Errorf("after Clean, ip netns list shows %v", got)
	}
	if _, err := os.Stat(statePath(lab)); !os.IsNotExist(err) {
		t.Errorf("after Clean the state file is still there (stat: %v)", err)
	}
	if err := Clean(lab); err != nil {
		t.Errorf("cleaning it again: %v", err)
	}
	if err := Clean(labName(t)); err != nil {
		t.Errorf("cleaning an unknown lab: %v", err)
	}
	// The name is free again.
	n2, err := New(lab)
	if err != nil {
		t.Fatalf("New after Clean: %v", err)
	}
	n2.Close()
}

func TestCleanAllTouchesOnlyLabsWithStateFiles(t *testing.T) {
	testenv.RequireRoot(t)
	// A private state directory, so that labs of tests running elsewhere
	// on this machine are not cleaned.
	old := stateDir
	stateDir = t.TempDir()
	t.Cleanup(func() { stateDir = old })

	foreign := "nplab-foreign-" + labName(t)
	if out, err := exec.Command("ip", "netns", "add", foreign).CombinedOutput(); err != nil {
		if !strings.Contains(string(out), "BusyBox") {
			t.Fatalf("ip netns add %s: %v\n%s", foreign, err, out)
		}
		// busybox's ip (the VM test) has no netns: make it as ip would.
		h, err := createNamespace(foreign)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.close() })
	}
	t.Cleanup(func() { removeNamespace(foreign) })

	lab := labName(t)
	n, err := New(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Clean(lab) })
	pair(t, n)
	n.(*network).abandon()

	cleaned, err := CleanAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cleaned, []string{lab}) {
		t.Errorf("CleanAll() = %v, want [%s]", cleaned, lab)
	}
	if got := labNamespaces(t, lab); len(got) != 0 {
		t.Errorf("after CleanAll, ip netns list shows %v", got)
	}
	if !strings.Contains(netnsList(t), foreign) {
		t.Errorf("CleanAll removed %s, which no state file lists", foreign)
	}
	if labs, _ := Labs(); len(labs) != 0 {
		t.Errorf("after CleanAll, Labs() = %v", labs)
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New("Bad_Name"); err == nil || !strings.Contains(err.Error(), "DNS-1123") {
		t.Errorf("New(%q) = %v, want a DNS-1123 error", "Bad_Name", err)
	}
	if _, err := New("muchtoolonglabname"); err == nil || !strings.Contains(err.Error(), "at most 12") {
		t.Errorf("New(a long name) = %v, want the length limit", err)
	}
	n := newLab(t)
	addHost(t, n, "a")
	_, err := New(n.Lab())
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "nplab clean --name "+n.Lab()) {
		t.Errorf("New of a lab this process left: %v, want already exists and nplab clean advice", err)
	}

	// A lab another live process runs is not left over, and nplab clean
	// would refuse it: the error says it runs, with the pid.
	testenv.RequireRoot(t)
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	other := labName(t)
	b, _ := json.Marshal(labState{Lab: other, PID: sleep.Process.Pid})
	if err := os.WriteFile(statePath(other), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(statePath(other)) })
	want := fmt.Sprintf("lab %q is already running (pid %d): stop it first, or use another lab name", other, sleep.Process.Pid)
	if _, err := New(other); err == nil || err.Error() != want {
		t.Errorf("New of a lab process %d runs: %v, want %q", sleep.Process.Pid, err, want)
	}
}

func TestAddLinkErrors(t *testing.T) {
	n := newLab(t)
	a, b := addHost(t, n, "a"), addHost(t, n, "b")
	_, err := n.AddLink(LinkSpec{Name: "x", A: LinkEnd{Host: a, Dev: "averyverylongname0"}, B: LinkEnd{Host: b, Dev: "eth0"}})
	if err == nil || !strings.Contains(err.Error(), "at most 15") {
		t.Errorf("a 18-byte interface name: %v, want the 15-byte limit", err)
	}
	addLink(t, n, LinkSpec{Name: "ab", A: LinkEnd{Host: a, Dev: "eth0"}, B: LinkEnd{Host: b, Dev: "eth0"}})
	_, err = n.AddLink(LinkSpec{Name: "ab2", A: LinkEnd{Host: a, Dev: "eth1"}, B: LinkEnd{Host: b, Dev: "eth0"}})
	if err == nil || !strings.Contains(err.Error(), "exists") || !strings.Contains(err.Error(), `"ab2"`) {
		t.Errorf("a second eth0 in b: %v, want an error naming the link and saying it exists", err)
	}
	// A bad address undoes the half-built pair: eth2 can be made again.
	_, err = n.AddLink(LinkSpec{Name: "ab3", A: LinkEnd{Host: a, Dev: "eth2", Bridge: "nosuchbr"}, B: LinkEnd{Host: b, Dev: "eth2"}})
	if err == nil || !strings.Contains(err.Error(), "nosuchbr") {
		t.Errorf("enslaving to a missing bridge: %v", err)
	}
	addLink(t, n, LinkSpec{Name: "ab3", A: LinkEnd{Host: a, Dev: "eth2"}, B: LinkEnd{Host: b, Dev: "eth2"}})
	if st, err := readState(n.Lab()); err != nil || len(st.Namespaces) != 2 {
		t.Errorf("state after one failed and two good links: %+v, %v", st, err)
	}
	if err := a.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Error(err)
	}
	if err := n.RemoveHost("b"); err != nil {
		t.Fatal(err)
	}
	if err := n.RemoveHost("b"); err != nil {
		t.Errorf("removing a removed host: %v", err)
	}
	if n.Link("ab") != nil || n.Host("b") != nil {
		t.Errorf("after RemoveHost(b), its links or the host are still there")
	}
	if st, err := readState(n.Lab()); err != nil || len(st.Namespaces) != 1 {
		t.Errorf("state after RemoveHost: %+v, %v", st, err)
	}
}

func TestSCTPMessages(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireSCTP(t)
	n := newLab(t)
	a, b, _ := pair(t, n)
	l, err := b.Listen(context.Background(), "sctp", "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		mc := c.(MessageConn)
		mc.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		for {
			k, info, err := mc.ReadMessage(buf)
			if err != nil {
				return
			}
			if _, err := mc.WriteMessage(buf[:k], info); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "sctp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mc, ok := c.(MessageConn)
	if !ok {
		t.Fatalf("an SCTP conn (%T) is not a MessageConn", c)
	}
	mc.SetDeadline(time.Now().Add(10 * time.Second))
	msgs := []struct {
		data string
		info MessageInfo
	}{{"one", MessageInfo{Stream: 0, PPID: 0}}, {"two two", MessageInfo{Stream: 3, PPID: 46}}, {"three", MessageInfo{Stream: 7, PPID: 0xdeadbeef}}}
	// Send all first: message boundaries must survive back-to-back writes.
	for _, m := range msgs {
		if _, err := mc.WriteMessage([]byte(m.data), m.info); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	for _, m := range msgs {
		k, info, err := mc.ReadMessage(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:k]) != m.data || info != m.info {
			t.Errorf("got %q %+v, want %q %+v", buf[:k], info, m.data, m.info)
		}
	}
}

func TestSCTPCloseWakesAccept(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireSCTP(t)
	n := newLab(t)
	a := addHost(t, n, "a")
	l, err := a.Listen(context.Background(), "sctp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let Accept block
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the SCTP listener did not wake Accept")
	}
}

func TestSCTPUnsupportedSaysSo(t *testing.T) {
	testenv.RequireRoot(t)
	if testenv.SCTPError() == nil {
		t.Skip("the kernel has SCTP")
	}
	n := newLab(t)
	a := addHost(t, n, "a")
	_, err := a.Listen(context.Background(), "sctp", ":9000")
	if err == nil || !strings.Contains(err.Error(), "protocol not supported") || !strings.Contains(err.Error(), `host "a"`) {
		t.Errorf("SCTP listen without kernel SCTP: %v, want protocol not supported, naming the host", err)
	}
	_, err = a.Dial(context.Background(), "sctp", "10.0.0.2:9000")
	if err == nil || !strings.Contains(err.Error(), "protocol not supported") {
		t.Errorf("SCTP dial without kernel SCTP: %v, want protocol not supported", err)
	}
}

func TestSCTPDialHonoursDeadline(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireSCTP(t)
	n := newLab(t)
	a, _, _ := pair(t, n)
	// 10.0.0.99 is on a's subnet but nobody answers: INIT goes unanswered.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.Dial(ctx, "sctp", "10.0.0.99:9")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("SCTP dial to a silent address: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the SCTP dial took %v with a 500ms deadline", d)
	}
}

func TestSCTPCloseWakesRead(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireSCTP(t)
	n := newLab(t)
	a, b, _ := pair(t, n)
	l, err := b.Listen(context.Background(), "sctp", "10.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "sctp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case sc := <-accepted:
		defer sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no association accepted")
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 100))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let Read block
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the SCTP conn did not wake Read")
	}
}

func TestCleanRefusesARunningLab(t *testing.T) {
	old := stateDir
	stateDir = t.TempDir()
	t.Cleanup(func() { stateDir = old })
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Skipf("cannot start a process to own the lab: %v", err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	running, own, killed := labName(t), labName(t), labName(t)
	for _, st := range []labState{
		{Lab: running, PID: sleeper.Process.Pid},
		{Lab: own, PID: os.Getpid()}, // this process's own abandoned lab
		{Lab: killed, PID: 0},
	} {
		if err := st.write(); err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprintf("lab %q is still running (pid %d): stop it with Ctrl-C, or kill it first", running, sleeper.Process.Pid)
	err := Clean(running)
	if err == nil || err.Error() != want || !errors.Is(err, ErrLabRunning) {
		t.Errorf("Clean of a running lab: %v, want %q", err, want)
	}
	if _, err := os.Stat(statePath(running)); err != nil {
		t.Errorf("Clean of a running lab removed its state file: %v", err)
	}
	cleaned, err := CleanAll()
	slices.Sort(cleaned)
	wantCleaned := []string{own, killed}
	slices.Sort(wantCleaned)
	if !slices.Equal(cleaned, wantCleaned) {
		t.Errorf("CleanAll() cleaned %v, want %v (and to skip %s)", cleaned, wantCleaned, running)
	}
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrLabRunning) {
		t.Errorf("CleanAll() error %v, want it to name the running lab: %q", err, want)
	}
	if labs, _ := Labs(); !slices.Equal(labs, []string{running}) {
		t.Errorf("after CleanAll, Labs() = %v, want just the running %s", labs, running)
	}
	// Once its process is gone, the lab is a killed one: Clean removes it.
	sleeper.Process.Kill()
	sleeper.Wait()
	if err := Clean(running); err != nil {
		t.Errorf("Clean after its process died: %v", err)
	}
	if labs, _ := Labs(); len(labs) != 0 {
		t.Errorf("after Clean, Labs() = %v", labs)
	}
}

// TestCloseRetriesAfterAPartialFailure makes removing one namespace fail
// (a second mount stacked on it: unmounting one leaves it busy), then
// checks that a second Close removes what the first left.
func TestCloseRetriesAfterAPartialFailure(t *testing.T) {
	testenv.RequireRoot(t)
	lab := labName(t)
	n, err := New(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); Clean(lab) })
	a, _, _ := pair(t, n)
	// Name a's namespace as `ip netns add` would, a bind mount, with a
	// second one stacked on it: the first Close unmounts one and cannot
	// remove the name, which is still a mount point.
	path := namespacePath(a.Namespace())
	target, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := unix.Mount(target, path, "", unix.MS_BIND, ""); err != nil {
			t.Skipf("bind-mount %s on %s: %v", target, path, err)
		}
	}
	t.Cleanup(func() { unix.Unmount(path, unix.MNT_DETACH); os.Remove(path) })
	if err := n.Close(); err == nil {
		t.Fatalf("Close with %s still mounted once more succeeded; the test cannot make Close fail", path)
	} else {
		t.Logf("first Close: %v", err)
	}
	if got := labNamespaces(t, lab); len(got) == 0 {
		t.Errorf("after a failed Close nothing is left, want %s", a.Namespace())
	}
	if _, err := os.Stat(statePath(lab)); err != nil {
		t.Errorf("after a failed Close the state file is gone: %v", err)
	}
	if _, err := n.AddHost("c"); err == nil {
		t.Errorf("AddHost after Close started: no error")
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := labNamespaces(t, lab); len(got) != 0 {
		t.Errorf("after the second Close, ip netns list shows %v", got)
	}
	if _, err := os.Stat(statePath(lab)); !os.IsNotExist(err) {
		t.Errorf("after the second Close the state file is still there (stat: %v)", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("a third Close: %v", err)
	}
}
