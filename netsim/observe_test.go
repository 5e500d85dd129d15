package netsim

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// Packets as the observer's SOCK_DGRAM socket reads them: from the IPv4
// header on.

const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// ipv4 builds an IPv4 header of ihl 32-bit words (options zero) in front
// of l4.
func ipv4(proto uint8, src, dst string, ihl int, fragOff uint16, l4 []byte) []byte {
	b := make([]byte, ihl*4, ihl*4+len(l4))
	b[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(b[2:], uint16(ihl*4+len(l4)))
	binary.BigEndian.PutUint16(b[6:], fragOff)
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, l4...)
}

func tcpHdr(sport, dport uint16, flags byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

func udpHdr(sport, dport uint16, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

// sctpHdr is SCTP's common header and one chunk of the given type.
func sctpHdr(sport, dport uint16, chunk byte) []byte {
	b := make([]byte, 12+20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = chunk
	binary.BigEndian.PutUint16(b[14:], 20)
	return b
}

// withOption writes port into the 4 option bytes of an IHL 6 header,
// where a filter ignoring the IHL would read the destination port.
func withOption(pkt []byte, port uint16) []byte {
	binary.BigEndian.PutUint16(pkt[22:], port)
	pkt[20+13] = tcpSYN
	return pkt
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestNormalizeWatches(t *testing.T) {
	got, err := normalizeWatches([]Watch{
		{"UDP", ap("10.0.0.2:53")},
		{"TCP", ap("10.0.0.2:30080")}, // made redundant by the next
		{"TCP", netip.AddrPortFrom(netip.Addr{}, 30080)},
		{"TCP", ap("0.0.0.0:30080")},
		{"SCTP", ap("[::ffff:10.0.0.2]:30090")},
		{"UDP", ap("10.0.0.2:53")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Watch{{"SCTP", ap("10.0.0.2:30090")}, {"TCP", ap("0.0.0.0:30080")}, {"UDP", ap("10.0.0.2:53")}}
	if !slices.Equal(got, want) {
		t.Errorf("normalizeWatches = %v, want %v", got, want)
	}
	for _, c := range []struct {
		w    Watch
		want string
	}{
		{Watch{"tcp", ap("0.0.0.0:1")}, `unknown protocol "tcp"`},
		{Watch{"ICMP", ap("0.0.0.0:1")}, `unknown protocol "ICMP"`},
		{Watch{"TCP", ap("0.0.0.0:0")}, "port 0"},
		{Watch{"UDP", ap("[fd00::1]:53")}, "only IPv4"},
	} {
		_, err := normalizeWatches([]Watch{c.w})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("normalizeWatches(%v) = %v, want an error saying %q", c.w, err, c.want)
		}
	}
}

// runFilter runs the filter for ws on pkt in x/net/bpf's VM and reports
// whether it accepts it (and how many bytes).
func runFilter(t *testing.T, ws []Watch, pkt []byte) int {
	t.Helper()
	nws, err := normalizeWatches(ws)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := observeFilter(nws)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not assemble: %v\n%v", err, prog)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestObserveFilterAndParserAgree(t *testing.T) {
	ws := []Watch{
		{"TCP", ap("0.0.0.0:30080")},
		{"UDP", ap("0.0.0.0:30053")},
		{"SCTP", ap("0.0.0.0:30090")},
		{"TCP", ap("10.0.0.2:30081")},
		{"TCP", ap("10.0.0.3:30081")},
	}
	const c, n2, n3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"tcp syn", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(40000, 30080, tcpSYN)), true},
		{"tcp syn, any address", ipv4(protoTCP, c, "192.0.2.7", 5, 0, tcpHdr(40000, 30080, tcpSYN)), true},
		{"tcp syn with ip options", ipv4(protoTCP, c, n2, 15, 0, tcpHdr(40000, 30080, tcpSYN)), true},
		{"tcp syn, ihl 6, port would match at ihl 5", withOption(ipv4(protoTCP, c, n2, 6, 0, tcpHdr(40000, 1, tcpSYN)), 30080), false},
		{"tcp syn-ack", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(40000, 30080, tcpSYN|tcpACK)), false},
		{"tcp ack", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(40000, 30080, tcpACK)), false},
		{"tcp rst", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(40000, 30080, tcpRST)), false},
		{"tcp syn, other port", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(40000, 30082, tcpSYN)), false},
		{"tcp syn, watched src port only", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(30080, 40000, tcpSYN)), false},
		{"tcp syn, watched address", ipv4(protoTCP, c, n3, 5, 0, tcpHdr(40000, 30081, tcpSYN)), true},
		{"tcp syn, unwatched address", ipv4(protoTCP, n2, c, 5, 0, tcpHdr(40000, 30081, tcpSYN)), false},
		{"tcp syn, later fragment", ipv4(protoTCP, c, n2, 5, 0x0010, tcpHdr(40000, 30080, tcpSYN)), false},
		{"tcp syn, first fragment (MF)", ipv4(protoTCP, c, n2, 5, 0x2000, tcpHdr(40000, 30080, tcpSYN)), true},
		{"tcp syn, DF", ipv4(protoTCP, c, n2, 5, 0x4000, tcpHdr(40000, 30080, tcpSYN)), true},
		{"udp", ipv4(protoUDP, c, n2, 5, 0, udpHdr(40000, 30053, "hi")), true},
		{"udp, tcp's port", ipv4(protoUDP, c, n2, 5, 0, udpHdr(40000, 30080, "")), false},
		{"tcp, udp's port", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(40000, 30053, tcpSYN)), false},
		{"sctp init", ipv4(protoSCTP, c, n2, 5, 0, sctpHdr(40000, 30090, 1)), true},
		{"sctp data", ipv4(protoSCTP, c, n2, 5, 0, sctpHdr(40000, 30090, 0)), false},
		{"sctp init-ack", ipv4(protoSCTP, c, n2, 5, 0, sctpHdr(40000, 30090, 2)), false},
		{"icmp", ipv4(1, c, n2, 5, 0, udpHdr(40000, 30080, "")), false},
		{"ipv6", append([]byte{0x60}, make([]byte, 60)...), false},
		{"truncated tcp", ipv4(protoTCP, c, n2, 5, 0, tcpHdr(40000, 30080, tcpSYN))[:30], false},
		{"empty", nil, false},
	} {
		accepted := runFilter(t, ws, tc.pkt)
		proto, _, dst, ok := parseObserved(tc.pkt)
		parsed := ok && watched(mustNormalize(t, ws), proto, dst)
		if (accepted > 0) != tc.want || parsed != tc.want {
			t.Errorf("%s: filter accepts %d bytes, parser+watch set says %v; want %v", tc.name, accepted, parsed, tc.want)
		}
		if accepted > 0 && accepted != observeSnapLen {
			t.Errorf("%s: filter accepts %d bytes, want the snap length %d", tc.name, accepted, observeSnapLen)
		}
	}
}

func mustNormalize(t *testing.T, ws []Watch) []Watch {
	t.Helper()
	nws, err := normalizeWatches(ws)
	if err != nil {
		t.Fatal(err)
	}
	return nws
}

func TestObserveFilterEmptyAcceptsNothing(t *testing.T) {
	for _, pkt := range [][]byte{
		ipv4(protoTCP, "10.0.0.1", "10.0.0.2", 5, 0, tcpHdr(1, 2, tcpSYN)),
		ipv4(protoUDP, "10.0.0.1", "10.0.0.2", 5, 0, udpHdr(1, 2, "")),
	} {
		if n := runFilter(t, nil, pkt); n != 0 {
			t.Errorf("an empty watch set accepts %d bytes", n)
		}
	}
}

// TestObserveFilterManyWatches checks the far jumps: with two thousand
// watched ports most are hundreds of instructions from the dispatch,
// beyond a conditional jump's reach.
func TestObserveFilterManyWatches(t *testing.T) {
	var ws []Watch
	for p := uint16(30000); p < 32000; p++ {
		ws = append(ws, Watch{"TCP", netip.AddrPortFrom(netip.IPv4Unspecified(), p)})
	}
	for p := uint16(30800); p < 31000; p++ {
		ws = append(ws, Watch{"UDP", netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), p)})
	}
	for _, c := range []struct {
		pkt  []byte
		want bool
	}{
		{ipv4(protoTCP, "10.0.0.1", "10.0.0.9", 5, 0, tcpHdr(1, 30000, tcpSYN)), true},
		{ipv4(protoTCP, "10.0.0.1", "10.0.0.9", 5, 0, tcpHdr(1, 31234, tcpSYN)), true},
		{ipv4(protoTCP, "10.0.0.1", "10.0.0.9", 5, 0, tcpHdr(1, 31999, tcpSYN)), true},
		{ipv4(protoTCP, "10.0.0.1", "10.0.0.9", 5, 0, tcpHdr(1, 32000, tcpSYN)), false},
		{ipv4(protoTCP, "10.0.0.1", "10.0.0.9", 5, 0, tcpHdr(1, 29999, tcpSYN)), false},
		{ipv4(protoUDP, "10.0.0.1", "10.0.0.2", 5, 0, udpHdr(1, 30999, "")), true},
		{ipv4(protoUDP, "10.0.0.1", "10.0.0.2", 5, 0, udpHdr(1, 30800, "")), true},
		{ipv4(protoUDP, "10.0.0.1", "10.0.0.2", 5, 0, udpHdr(1, 31000, "")), false},
		{ipv4(protoUDP, "10.0.0.1", "10.0.0.9", 5, 0, udpHdr(1, 30999, "")), false},
		{ipv4(protoSCTP, "10.0.0.1", "10.0.0.2", 5, 0, sctpHdr(1, 30999, 1)), false},
	} {
		if got := runFilter(t, ws, c.pkt) > 0; got != c.want {
			_, _, dst, _ := parseObserved(c.pkt)
			t.Errorf("packet to %v (proto %d): accepted %v, want %v", dst, c.pkt[9], got, c.want)
		}
	}
	ws = nil
	for p := uint16(30000); p < 32768; p++ {
		for _, proto := range []string{"TCP", "UDP"} {
			ws = append(ws, Watch{proto, netip.AddrPortFrom(netip.IPv4Unspecified(), p)})
		}
	}
	if _, err := observeFilter(mustNormalize(t, ws)); err == nil || !strings.Contains(err.Error(), "the kernel allows 4096") {
		t.Errorf("%d watches: %v, want an error about the kernel's 4096 instruction limit", len(ws), err)
	}
}

// TestParseObservedGarbage feeds the parser every prefix of real packets
// and random bytes: it must never panic, and whatever it accepts must be
// one of the three kinds of first packets.
func TestParseObservedGarbage(t *testing.T) {
	var inputs [][]byte
	for _, pkt := range [][]byte{
		ipv4(protoTCP, "10.0.0.1", "10.0.0.2", 15, 0, tcpHdr(1, 2, tcpSYN)),
		ipv4(protoUDP, "10.0.0.1", "10.0.0.2", 5, 0, udpHdr(1, 2, "x")),
		ipv4(protoSCTP, "10.0.0.1", "10.0.0.2", 6, 0, sctpHdr(1, 2, 1)),
	} {
		for i := range len(pkt) + 1 {
			inputs = append(inputs, pkt[:i])
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(100))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if len(b) > 0 && r.IntN(2) == 0 {
			b[0] = 0x40 | b[0]&0x0f // mostly IPv4 with any IHL
		}
		if len(b) > 9 {
			b[9] = []byte{protoTCP, protoUDP, protoSCTP, b[9]}[r.IntN(4)]
		}
		inputs = append(inputs, b)
	}
	for _, b := range inputs {
		proto, src, dst, ok := parseObserved(b)
		if !ok {
			continue
		}
		if !slices.Contains([]string{"TCP", "UDP", "SCTP"}, proto) || !src.Addr().Is4() || !dst.Addr().Is4() {
			t.Errorf("parseObserved(%x) = %q %v %v", b, proto, src, dst)
		}
	}
}

func FuzzParseObserved(f *testing.F) {
	f.Add(ipv4(protoTCP, "10.0.0.1", "10.0.0.2", 5, 0, tcpHdr(1, 2, tcpSYN)))
	f.Add(ipv4(protoSCTP, "10.0.0.1", "10.0.0.2", 15, 0, sctpHdr(1, 2, 1))[:70])
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseObserved(b)
	})
}

// notObserving is a Host (a test fake, say) without an Observe method.
type notObserving struct{ Host }

func TestObserveNeedsAnObservingHost(t *testing.T) {
	_, err := Observe(context.Background(), notObserving{})
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("Observe on a host that cannot: %v, want an error wrapping ErrNotSupported", err)
	}
	if _, err := Observe(context.Background(), nil); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Observe on a nil host: %v, want an error wrapping ErrNotSupported", err)
	}
}
