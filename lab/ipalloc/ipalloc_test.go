package ipalloc

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestDefaultRange(t *testing.T) {
	a, err := New(DefaultCIDR, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Size() != 1<<20-2 || a.First() != netip.MustParseAddr("10.96.0.1") || a.Offset() != 256 {
		t.Errorf("size %d first %v offset %d; want %d 10.96.0.1 256", a.Size(), a.First(), a.Offset(), 1<<20-2)
	}
	for _, ip := range []string{"10.96.0.0", "10.111.255.255", "1.2.3.4", "10.112.0.0", "::1"} {
		err := a.Allocate(netip.MustParseAddr(ip))
		var nir *NotInRangeError
		want := "the provided IP (" + ip + ") is not in the valid range. The range of valid IPs is 10.96.0.0/12"
		if !errors.As(err, &nir) || err.Error() != want {
			t.Errorf("Allocate(%s) = %v, want %q", ip, err, want)
		}
	}
	ip := netip.MustParseAddr("10.96.0.10")
	if err := a.Allocate(ip); err != nil {
		t.Fatal(err)
	}
	if err := a.Allocate(ip); !errors.Is(err, ErrAllocated) || err.Error() != "provided IP is already allocated" {
		t.Errorf("second Allocate = %v", err)
	}
	if !a.Has(ip) {
		t.Error("Has = false")
	}
	a.Release(ip)
	a.Release(ip)
	a.Release(netip.MustParseAddr("1.2.3.4"))
	if a.Has(ip) || a.Used() != 0 {
		t.Errorf("after release: Has %v Used %d", a.Has(ip), a.Used())
	}
	if err := a.Allocate(netip.MustParseAddr("10.111.255.254")); err != nil {
		t.Errorf("last usable address: %v", err)
	}
}

func TestRangeOffset(t *testing.T) {
	for _, c := range []struct {
		bits int
		want int
	}{{28, 0}, {27, 16}, {24, 16}, {20, 256}, {12, 256}} {
		size := new(big.Int).Lsh(big.NewInt(1), uint(32-c.bits))
		if got := RangeOffset(size); got != c.want {
			t.Errorf("/%d: offset %d, want %d", c.bits, got, c.want)
		}
	}
}

// TestAllocateNextBands: a /24 has 254 usable addresses and a static band of
// 16 (10.0.0.1-10.0.0.16), used only after the other 238 are gone.
func TestAllocateNextBands(t *testing.T) {
	a, err := New(netip.MustParsePrefix("10.0.0.0/24"), rand.New(rand.NewPCG(5, 5)))
	if err != nil {
		t.Fatal(err)
	}
	static := func(ip netip.Addr) bool { return ip.As4()[3] <= 16 }
	seen := map[netip.Addr]bool{}
	for i := 0; i < 254; i++ {
		ip, err := a.AllocateNext()
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if seen[ip] || ip.As4()[3] == 0 || ip.As4()[3] == 255 {
			t.Fatalf("allocation %d gave %v", i, ip)
		}
		seen[ip] = true
		if (i < 238) == static(ip) {
			t.Fatalf("allocation %d gave %v (static %v)", i, ip, static(ip))
		}
	}
	if _, err := a.AllocateNext(); !errors.Is(err, ErrFull) || err.Error() != "range is full" {
		t.Errorf("255th = %v", err)
	}
}

func TestIPv6(t *testing.T) {
	a, err := New(netip.MustParsePrefix("fd00:10:96::/112"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// IPv6 has no broadcast address: the last one is usable.
	if err := a.Allocate(netip.MustParseAddr("fd00:10:96::ffff")); err != nil {
		t.Errorf("last v6 address: %v", err)
	}
	if err := a.Allocate(netip.MustParseAddr("fd00:10:96::")); err == nil {
		t.Error("network address allocated")
	}
	ip, err := a.AllocateNext()
	if err != nil || !a.CIDR().Contains(ip) {
		t.Errorf("AllocateNext = %v, %v", ip, err)
	}
}
