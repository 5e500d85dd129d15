package portalloc

import (
	"errors"
	"math/rand/v2"
)

// Range is a port range as kube-apiserver's --service-node-port-range holds
// it: Base and Size, inclusive of Base, Base+Size-1.
type Range struct {
	Base, Size int
}

// ParseRange parses "30000-32767" or "30080" exactly as PortRange.Set does,
// with the same error text.
func ParseRange(s string) (Range, error) { return Range{}, errors.New("TODO") }

// String prints "<base>-<base+size-1>" ("" for an empty range).
func (r Range) String() string { return "" }

// Contains reports whether p is in the range.
func (r Range) Contains(p int) bool { return false }

// RangeOffset is calculateRangeOffset: the size of the static (lower) band.
func RangeOffset(size int) int { return 0 }

// Errors of the allocator, with Kubernetes' text. ErrNotInRange's text
// depends on the range, so it is a type.
var (
	ErrFull      = errors.New("range is full")
	ErrAllocated = errors.New("provided port is already allocated")
)

// NotInRangeError is "provided port is not in the valid range. The range of
// valid ports is 30000-32767".
type NotInRangeError struct{ ValidPorts string }

func (e *NotInRangeError) Error() string {
	return "provided port is not in the valid range. The range of valid ports is " + e.ValidPorts
}

// Allocator is the cluster-wide NodePort bitmap.
type Allocator struct{}

// New returns an empty allocator over r; rng nil means a randomly seeded one.
func New(r Range, rng *rand.Rand) *Allocator { return &Allocator{} }

func (a *Allocator) Range() Range               { return Range{} }
func (a *Allocator) Allocate(port int) error    { return errors.New("TODO") }
func (a *Allocator) AllocateNext() (int, error) { return 0, errors.New("TODO") }
func (a *Allocator) Release(port int)           {}
func (a *Allocator) Has(port int) bool          { return false }
func (a *Allocator) Used() int                  { return 0 }
func (a *Allocator) Free() int                  { return 0 }
