package portalloc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/nplab/nplab/lab/internal/bitmap"
)

// Range is a port range as kube-apiserver's --service-node-port-range holds
// it: Base and Size, inclusive of Base, Base+Size-1.
type Range struct {
	Base, Size int
}

// DefaultRange is kube-apiserver's DefaultServiceNodePortRange, 30000-32767.
var DefaultRange = Range{Base: 30000, Size: 2768}

// ParseRange parses "30000-32767" or "30080" exactly as PortRange.Set does,
// with the same error text (spec §1.2):
//
//   - surrounding whitespace is trimmed; "" is the empty range;
//   - "N" is a single port, 0..65535, else "the port range should between 0
//     and 65535"; a non-number gives "unable to parse port range: <v>: <err>,
//     expected hyphen in port range or a single port number";
//   - "L-H": both halves must be integers ("unable to parse port range: <v>:
//     <err>"), neither above 65535 ("the port range cannot be greater than
//     65535: <v>"), H >= L ("end port cannot be less than start port: <v>").
func ParseRange(s string) (Range, error) {
	value := strings.TrimSpace(s)
	if value == "" {
		return Range{}, nil
	}
	hyphen := strings.Index(value, "-")
	if hyphen == -1 {
		port, err := strconv.Atoi(value)
		if err != nil {
			return Range{}, fmt.Errorf("unable to parse port range: %s: %v, expected hyphen in port range or a single port number", value, err)
		}
		if port < 0 || port > 65535 {
			return Range{}, errors.New("the port range should between 0 and 65535")
		}
		return Range{Base: port, Size: 1}, nil
	}
	low, err := strconv.Atoi(value[:hyphen])
	if err != nil {
		return Range{}, fmt.Errorf("unable to parse port range: %s: %v", value, err)
	}
	high, err := strconv.Atoi(value[hyphen+1:])
	if err != nil {
		return Range{}, fmt.Errorf("unable to parse port range: %s: %v", value, err)
	}
	if low > 65535 || high > 65535 {
		return Range{}, fmt.Errorf("the port range cannot be greater than 65535: %s", value)
	}
	if high < low {
		return Range{}, fmt.Errorf("end port cannot be less than start port: %s", value)
	}
	return Range{Base: low, Size: high - low + 1}, nil
}

// String prints "<base>-<base+size-1>" ("" for an empty range).
func (r Range) String() string {
	if r.Size == 0 {
		return ""
	}
	return fmt.Sprintf("%d-%d", r.Base, r.Base+r.Size-1)
}

// Contains reports whether p is in the range.
func (r Range) Contains(p int) bool { return p >= r.Base && p-r.Base < r.Size }

// RangeOffset is calculateRangeOffset: the size of the static (lower) band.
// Ranges of 16 ports or fewer are not split (0); otherwise size/32 clamped to
// 16..128. The default range (2768 ports) gives 86: static 30000-30085,
// dynamic 30086-32767.
func RangeOffset(size int) int {
	const (
		minOffset = 16
		maxOffset = 128
		step      = 32
	)
	if size <= minOffset {
		return 0
	}
	offset := size / step
	if offset < minOffset {
		return minOffset
	}
	if offset > maxOffset {
		return maxOffset
	}
	return offset
}

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

// Allocator is the cluster-wide NodePort bitmap: one bit per port of the
// range, shared by every Service, namespace and protocol (spec §1.6). It is
// safe for concurrent use.
type Allocator struct {
	mu sync.Mutex
	r  Range
	m  *bitmap.Map // slot i is port r.Base+i
}

// New returns an empty allocator over r; rng nil means a randomly seeded one.
// The allocator draws its random starting points from rng only while holding
// its own lock; do not share rng with code that uses it concurrently.
func New(r Range, rng *rand.Rand) *Allocator {
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Allocator{r: r, m: bitmap.New(r.Size, RangeOffset(r.Size), rng)}
}

// Range is the range the allocator hands out.
func (a *Allocator) Range() Range { return a.r }

// Offset is the size of the static (lower) band, RangeOffset(Range().Size).
func (a *Allocator) Offset() int { return a.m.Offset() }

// Allocate reserves a requested port: *NotInRangeError if it is outside the
// range, ErrAllocated if it is taken. Either band may be requested.
func (a *Allocator) Allocate(port int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.r.Contains(port) {
		return &NotInRangeError{ValidPorts: a.r.String()}
	}
	if !a.m.Allocate(port - a.r.Base) {
		return ErrAllocated
	}
	return nil
}

// AllocateNext picks a free port the way randomScanStrategyWithOffset does: a
// random start in the upper (dynamic) band and a forward scan that wraps
// inside that band; only when it is full, the same in the lower (static)
// band; ErrFull when nothing is free. With offset 0 the whole range is
// scanned once from a random start.
func (a *Allocator) AllocateNext() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.m.AllocateNext()
	if !ok {
		return 0, ErrFull
	}
	return a.r.Base + i, nil
}

// Release frees a port; releasing a free or out-of-range port is a silent
// no-op, as in Kubernetes.
func (a *Allocator) Release(port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.r.Contains(port) {
		a.m.Release(port - a.r.Base)
	}
}

// Has reports whether port is allocated.
func (a *Allocator) Has(port int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.r.Contains(port) && a.m.Has(port-a.r.Base)
}

// Used is the number of allocated ports.
func (a *Allocator) Used() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Used()
}

// Free is the number of free ports.
func (a *Allocator) Free() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Free()
}
