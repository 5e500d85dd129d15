package bitmap

import (
	"math/rand/v2"
	"testing"
)

func TestAllocateNextFillsUpperBandFirst(t *testing.T) {
	for _, tc := range []struct{ size, offset int }{
		{10, 0}, {16, 0}, {128, 16}, {1000, 31}, {2768, 86}, {70, 70},
	} {
		m := New(tc.size, tc.offset, rand.New(rand.NewPCG(1, 2)))
		for n := 0; n < tc.size; n++ {
			i, ok := m.AllocateNext()
			if !ok {
				t.Fatalf("size %d offset %d: allocation %d failed with %d free", tc.size, tc.offset, n, m.Free())
			}
			upperFree := tc.size - tc.offset - min(n, tc.size-tc.offset)
			inUpper := i >= tc.offset
			if n < tc.size-tc.offset && !inUpper {
				t.Fatalf("size %d offset %d: allocation %d took static slot %d while the upper band had %d free", tc.size, tc.offset, n, i, upperFree)
			}
			if n >= tc.size-tc.offset && inUpper {
				t.Fatalf("size %d offset %d: allocation %d took slot %d of a full upper band", tc.size, tc.offset, n, i)
			}
		}
		if _, ok := m.AllocateNext(); ok || m.Free() != 0 || m.Used() != tc.size {
			t.Fatalf("size %d: a full map allocated again (free %d, used %d)", tc.size, m.Free(), m.Used())
		}
	}
}

func TestAllocateHasRelease(t *testing.T) {
	m := New(100, 10, rand.New(rand.NewPCG(3, 4)))
	for _, i := range []int{-1, 100, 1000} {
		if m.Allocate(i) || m.Has(i) {
			t.Errorf("slot %d outside the map was allocated", i)
		}
		m.Release(i) // no-op, no panic
	}
	if !m.Allocate(5) || m.Allocate(5) || !m.Has(5) || m.Used() != 1 {
		t.Fatalf("explicit allocation of a static slot: has=%v used=%d", m.Has(5), m.Used())
	}
	m.Release(5)
	m.Release(5)
	if m.Has(5) || m.Used() != 0 {
		t.Fatalf("after release: has=%v used=%d", m.Has(5), m.Used())
	}
}
