package nodes

import (
	"net/netip"
	"testing"
	"time"
)

func TestAttemptsDedupeRetransmissions(t *testing.T) {
	a := newAttempts(8, 30*time.Second)
	t0 := time.Unix(1000, 0)
	syn := attemptKey{"TCP", netip.MustParseAddrPort("172.18.0.100:40000"), netip.MustParseAddrPort("172.18.0.2:30080")}
	// Linux retransmits an unanswered SYN after 1, 3, 7, 15, 31 and 63 s:
	// one attempt.
	for i, s := range []int{0, 1, 3, 7, 15, 31, 63} {
		if got := a.first(syn, t0.Add(time.Duration(s)*time.Second)); got != (i == 0) {
			t.Errorf("SYN at %ds: first = %v, want %v", s, got, i == 0)
		}
	}
	// Another source port, protocol or frontend is another attempt.
	other := syn
	other.src = netip.MustParseAddrPort("172.18.0.100:40001")
	udp := syn
	udp.proto = "UDP"
	front := syn
	front.dst = netip.MustParseAddrPort("172.18.0.2:30081")
	for _, k := range []attemptKey{other, udp, front} {
		if !a.first(k, t0.Add(64*time.Second)) {
			t.Errorf("%+v: not a new attempt", k)
		}
	}
	// The same source port long after the window is a new attempt.
	if !a.first(syn, t0.Add(63*time.Second+kernelRetryWindow+time.Second)) {
		t.Errorf("SYN after the window: not a new attempt")
	}
	// UDP has its own, shorter window.
	if a.first(udp, t0.Add(64*time.Second+29*time.Second)) {
		t.Errorf("UDP within 30 s: a new attempt")
	}
	if !a.first(udp, t0.Add(64*time.Second+29*time.Second+31*time.Second)) {
		t.Errorf("UDP after 30 s idle: not a new attempt")
	}
}

func TestAttemptsBounded(t *testing.T) {
	a := newAttempts(16, time.Minute)
	t0 := time.Unix(1000, 0)
	for i := range 1000 {
		k := attemptKey{"TCP", netip.AddrPortFrom(netip.MustParseAddr("172.18.0.100"), uint16(20000+i)), netip.MustParseAddrPort("172.18.0.2:30080")}
		if !a.first(k, t0) {
			t.Fatalf("attempt %d: not new", i)
		}
		if a.len() > 16 || len(a.byKey) != a.lru.Len() {
			t.Fatalf("after %d attempts: %d remembered (%d in the map), want at most 16", i+1, a.len(), len(a.byKey))
		}
	}
	// Expired attempts go at the next packet.
	a.first(attemptKey{"UDP", netip.MustParseAddrPort("172.18.0.100:1"), netip.MustParseAddrPort("172.18.0.2:30080")}, t0.Add(2*kernelRetryWindow))
	if a.len() != 1 {
		t.Errorf("after every window passed: %d remembered, want 1", a.len())
	}
}
