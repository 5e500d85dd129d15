// Package bitmap is the allocation bitmap kube-apiserver keeps for NodePorts
// and ClusterIPs (allocator.NewAllocationMapWithOffset with the
// randomScanStrategyWithOffset strategy): one bit per slot, split at an
// offset into a lower "static" band and an upper "dynamic" band.
//
// Explicit requests may take any free slot. Automatic allocation picks a
// random start in the upper band and scans forward, wrapping inside that
// band; only when the upper band is full does it do the same in the lower
// band (KEP-3668 for NodePorts, KEP-3070 for ClusterIPs). With offset 0 the
// whole map is scanned once from a random start.
//
// A Map is not safe for concurrent use: the allocators that wrap it lock.
package bitmap

import "math/rand/v2"

// Map is a bitmap of size slots with a static band of offset slots.
type Map struct {
	size, offset, count int
	bits                []uint64
	rng                 *rand.Rand
}

// New returns an empty map. offset is clamped to 0..size; rng must not be
// nil.
func New(size, offset int, rng *rand.Rand) *Map {
	offset = min(max(offset, 0), size)
	return &Map{size: size, offset: offset, bits: make([]uint64, (size+63)/64), rng: rng}
}

// Size is the number of slots; Offset the size of the lower (static) band.
func (m *Map) Size() int   { return m.size }
func (m *Map) Offset() int { return m.offset }

// Used and Free count slots.
func (m *Map) Used() int { return m.count }
func (m *Map) Free() int { return m.size - m.count }

// Has reports whether slot i is taken (false outside the map).
func (m *Map) Has(i int) bool {
	return i >= 0 && i < m.size && m.bits[i/64]&(1<<(i%64)) != 0
}

// Allocate takes slot i; it reports false if i is taken or outside the map.
func (m *Map) Allocate(i int) bool {
	if i < 0 || i >= m.size || m.Has(i) {
		return false
	}
	m.bits[i/64] |= 1 << (i % 64)
	m.count++
	return true
}

// AllocateNext takes a free slot, upper band first (see the package doc);
// it reports false when the map is full.
func (m *Map) AllocateNext() (int, bool) {
	if m.count >= m.size {
		return 0, false
	}
	for _, band := range [2][2]int{{m.offset, m.size - m.offset}, {0, m.offset}} {
		lo, n := band[0], band[1]
		if n <= 0 {
			continue
		}
		start := m.rng.IntN(n)
		for k := range n {
			if at := lo + (start+k)%n; m.Allocate(at) {
				return at, true
			}
		}
	}
	return 0, false
}

// Release frees slot i; a free or out-of-map slot is a silent no-op, as in
// Kubernetes.
func (m *Map) Release(i int) {
	if m.Has(i) {
		m.bits[i/64] &^= 1 << (i % 64)
		m.count--
	}
}
