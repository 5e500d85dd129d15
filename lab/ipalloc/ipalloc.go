package ipalloc

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"sync"

	"github.com/nplab/nplab/lab/internal/bitmap"
	"github.com/nplab/nplab/lab/plane"
)

// DefaultCIDR is kube-apiserver's default --service-cluster-ip-range, as
// the lab's addressing plan has it.
var DefaultCIDR = plane.DefaultServiceCIDR

// maxSize caps the bitmap of very large (IPv6) ranges, which Kubernetes'
// bitmap allocator also caps; 2^20 covers an IPv4 /12 in full.
const maxSize = 1 << 20

// Errors with the text of kube-apiserver's pkg/registry/core/service/ipallocator.
var (
	ErrFull      = errors.New("range is full")
	ErrAllocated = errors.New("provided IP is already allocated")
)

// NotInRangeError is ipallocator's ErrNotInRange:
// "the provided IP (1.2.3.4) is not in the valid range. The range of valid IPs is 10.96.0.0/12".
type NotInRangeError struct {
	IP         netip.Addr
	ValidRange string
}

func (e *NotInRangeError) Error() string {
	return fmt.Sprintf("the provided IP (%v) is not in the valid range. The range of valid IPs is %s", e.IP, e.ValidRange)
}

// Allocator hands out ClusterIPs from a service CIDR. Offset 0 of its bitmap
// is the first address after the network address; the network address, and
// for IPv4 the broadcast address, are never handed out and count as "not in
// the valid range". It is safe for concurrent use.
type Allocator struct {
	mu   sync.Mutex
	cidr netip.Prefix
	base netip.Addr  // network address + 1
	size int         // usable addresses
	m    *bitmap.Map // slot i is address base+i
}

// New returns an empty allocator over cidr (masked); rng nil means randomly
// seeded. It fails for a range with no usable address.
func New(cidr netip.Prefix, rng *rand.Rand) (*Allocator, error) {
	if !cidr.IsValid() {
		return nil, fmt.Errorf("invalid service CIDR %v", cidr)
	}
	cidr = cidr.Masked()
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	hostBits := cidr.Addr().BitLen() - cidr.Bits()
	total := new(big.Int).Lsh(big.NewInt(1), uint(hostBits))
	size := new(big.Int).Sub(total, big.NewInt(1)) // minus the network address
	if cidr.Addr().Is4() {
		size.Sub(size, big.NewInt(1)) // minus the broadcast address
	}
	n := maxSize
	if size.IsInt64() && size.Int64() < maxSize {
		n = int(size.Int64())
	}
	if n <= 0 {
		return nil, fmt.Errorf("service CIDR %v has no usable addresses", cidr)
	}
	return &Allocator{
		cidr: cidr,
		base: cidr.Addr().Next(),
		size: n,
		m:    bitmap.New(n, RangeOffset(total), rng),
	}, nil
}

// RangeOffset is the ipallocator's calculateRangeOffset (KEP-3070): the size
// of the static (lower) band for a CIDR of cidrSize addresses: 0 for 16 or
// fewer, otherwise cidrSize/16 clamped to 16..256.
func RangeOffset(cidrSize *big.Int) int {
	const (
		minOffset = 16
		maxOffset = 256
		step      = 16
	)
	if cidrSize.Cmp(big.NewInt(minOffset)) <= 0 {
		return 0
	}
	off := new(big.Int).Div(cidrSize, big.NewInt(step))
	if off.Cmp(big.NewInt(minOffset)) < 0 {
		return minOffset
	}
	if off.Cmp(big.NewInt(maxOffset)) > 0 {
		return maxOffset
	}
	return int(off.Int64())
}

// CIDR is the service range.
func (a *Allocator) CIDR() netip.Prefix { return a.cidr }

// Size is the number of addresses the allocator can hand out.
func (a *Allocator) Size() int { return a.size }

// Offset is the size of the static (lower) band.
func (a *Allocator) Offset() int { return a.m.Offset() }

// First is the first usable address (10.96.0.1 in the default range), the
// address of the "kubernetes" Service by convention.
func (a *Allocator) First() netip.Addr { return a.base }

func (a *Allocator) index(ip netip.Addr) (int, bool) {
	ip = ip.Unmap()
	if !a.cidr.Contains(ip) || ip.BitLen() != a.base.BitLen() {
		return 0, false
	}
	d := new(big.Int).Sub(new(big.Int).SetBytes(ip.AsSlice()), new(big.Int).SetBytes(a.base.AsSlice()))
	if d.Sign() < 0 || !d.IsInt64() || d.Int64() >= int64(a.size) {
		return 0, false
	}
	return int(d.Int64()), true
}

func (a *Allocator) addr(i int) netip.Addr {
	v := new(big.Int).Add(new(big.Int).SetBytes(a.base.AsSlice()), big.NewInt(int64(i)))
	b := v.FillBytes(make([]byte, a.base.BitLen()/8))
	ip, _ := netip.AddrFromSlice(b)
	return ip
}

// Allocate reserves a requested address: *NotInRangeError outside the range
// (including the network and IPv4 broadcast addresses), ErrAllocated if taken.
func (a *Allocator) Allocate(ip netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.index(ip)
	if !ok {
		return &NotInRangeError{IP: ip, ValidRange: a.cidr.String()}
	}
	if !a.m.Allocate(i) {
		return ErrAllocated
	}
	return nil
}

// AllocateNext picks a free address like the Kubernetes bitmap allocator
// with offset: random start and forward scan in the upper band first, then
// the lower (static) band, then ErrFull.
func (a *Allocator) AllocateNext() (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.m.AllocateNext()
	if !ok {
		return netip.Addr{}, ErrFull
	}
	return a.addr(i), nil
}

// Release frees an address; a free or out-of-range address is a no-op.
func (a *Allocator) Release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i, ok := a.index(ip); ok {
		a.m.Release(i)
	}
}

// Has reports whether ip is allocated.
func (a *Allocator) Has(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.index(ip)
	return ok && a.m.Has(i)
}

// Used is the number of allocated addresses.
func (a *Allocator) Used() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Used()
}

// Free is the number of free addresses.
func (a *Allocator) Free() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Free()
}
