package portalloc

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr string
	}{
		{in: "30000-32767", want: Range{30000, 2768}},
		{in: "  30000-32767 ", want: Range{30000, 2768}},
		{in: "30080", want: Range{30080, 1}},
		{in: "0", want: Range{0, 1}},
		{in: "", want: Range{}},
		{in: "   ", want: Range{}},
		{in: "65535-65535", want: Range{65535, 1}},
		{in: "70000", wantErr: "the port range should between 0 and 65535"},
		{in: "abc", wantErr: `unable to parse port range: abc: strconv.Atoi: parsing "abc": invalid syntax, expected hyphen in port range or a single port number`},
		{in: "80+8", wantErr: `unable to parse port range: 80+8: strconv.Atoi: parsing "80+8": invalid syntax, expected hyphen in port range or a single port number`},
		{in: "a-10", wantErr: `unable to parse port range: a-10: strconv.Atoi: parsing "a": invalid syntax`},
		{in: "10-b", wantErr: `unable to parse port range: 10-b: strconv.Atoi: parsing "b": invalid syntax`},
		{in: "-5", wantErr: `unable to parse port range: -5: strconv.Atoi: parsing "": invalid syntax`},
		{in: "30000-70000", wantErr: "the port range cannot be greater than 65535: 30000-70000"},
		{in: "32767-30000", wantErr: "end port cannot be less than start port: 32767-30000"},
	}
	for _, tt := range tests {
		got, err := ParseRange(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseRange(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRange(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestRangeStringContains(t *testing.T) {
	if s := DefaultRange.String(); s != "30000-32767" {
		t.Errorf("DefaultRange.String() = %q", s)
	}
	if s := (Range{}).String(); s != "" {
		t.Errorf("empty range prints %q, want \"\"", s)
	}
	if s := (Range{30080, 1}).String(); s != "30080-30080" {
		t.Errorf("single port prints %q", s)
	}
	for _, c := range []struct {
		p    int
		want bool
	}{{29999, false}, {30000, true}, {32767, true}, {32768, false}, {0, false}, {-1, false}, {300081, false}} {
		if got := DefaultRange.Contains(c.p); got != c.want {
			t.Errorf("Contains(%d) = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestRangeOffset(t *testing.T) {
	for _, c := range []struct{ size, want int }{
		{0, 0}, {10, 0}, {16, 0}, {17, 16}, {32, 16}, {128, 16}, {1000, 31}, {2048, 64}, {2768, 86}, {4096, 128}, {65536, 128},
	} {
		if got := RangeOffset(c.size); got != c.want {
			t.Errorf("RangeOffset(%d) = %d, want %d", c.size, got, c.want)
		}
	}
	// The default range: static band 30000-30085, dynamic 30086-32767.
	a := New(DefaultRange, nil)
	if a.Offset() != 86 || DefaultRange.Base+a.Offset() != 30086 {
		t.Errorf("default range: offset %d, first dynamic port %d; want 86, 30086", a.Offset(), DefaultRange.Base+a.Offset())
	}
}

func TestAllocateErrors(t *testing.T) {
	a := New(DefaultRange, rand.New(rand.NewPCG(1, 2)))
	if err := a.Allocate(30080); err != nil {
		t.Fatalf("Allocate(30080): %v", err)
	}
	if err := a.Allocate(30080); !errors.Is(err, ErrAllocated) || err.Error() != "provided port is already allocated" {
		t.Errorf("second Allocate(30080) = %v", err)
	}
	for _, p := range []int{300081, 29999, 32768, -1, 0, 70000} {
		err := a.Allocate(p)
		var nir *NotInRangeError
		if !errors.As(err, &nir) || err.Error() != "provided port is not in the valid range. The range of valid ports is 30000-32767" {
			t.Errorf("Allocate(%d) = %v", p, err)
		}
	}
	// The static band may be requested explicitly.
	if err := a.Allocate(30000); err != nil {
		t.Errorf("Allocate(30000) in the static band: %v", err)
	}
	small := New(Range{8000, 10}, nil)
	if err := small.Allocate(8010); err == nil || err.Error() != "provided port is not in the valid range. The range of valid ports is 8000-8009" {
		t.Errorf("small range error = %v", err)
	}
	if a.Used() != 2 || a.Free() != 2766 {
		t.Errorf("Used/Free = %d/%d, want 2/2766", a.Used(), a.Free())
	}
}

func TestReleaseAndHas(t *testing.T) {
	a := New(DefaultRange, nil)
	if err := a.Allocate(30080); err != nil {
		t.Fatal(err)
	}
	if !a.Has(30080) {
		t.Fatal("Has(30080) = false after Allocate")
	}
	a.Release(30080)
	a.Release(30080)  // not allocated: no-op
	a.Release(12345)  // out of range: no-op
	a.Release(300081) // out of range: no-op
	if a.Has(30080) || a.Used() != 0 {
		t.Errorf("after Release: Has=%v Used=%d", a.Has(30080), a.Used())
	}
	if err := a.Allocate(30080); err != nil {
		t.Errorf("re-Allocate after Release: %v", err)
	}
}

// TestAutoAllocationBands checks every auto-allocated port's band: the
// dynamic (upper) band is used while it has room, the static band only
// after, then "range is full".
func TestAutoAllocationBands(t *testing.T) {
	for _, r := range []Range{DefaultRange, {30000, 10}, {30000, 16}, {30000, 32}, {30000, 128}, {30000, 2048}, {30000, 4096}} {
		a := New(r, rand.New(rand.NewPCG(7, uint64(r.Size))))
		off := RangeOffset(r.Size)
		seen := map[int]bool{}
		for i := 0; i < r.Size; i++ {
			p, err := a.AllocateNext()
			if err != nil {
				t.Fatalf("range %v: allocation %d: %v", r, i, err)
			}
			if !r.Contains(p) || seen[p] {
				t.Fatalf("range %v: allocation %d gave %d (in range %v, seen %v)", r, i, p, r.Contains(p), seen[p])
			}
			seen[p] = true
			dynamic := p >= r.Base+off
			if i < r.Size-off && !dynamic {
				t.Fatalf("range %v: allocation %d gave static port %d while the dynamic band had room", r, i, p)
			}
			if i >= r.Size-off && dynamic {
				t.Fatalf("range %v: allocation %d gave dynamic port %d after the band was full", r, i, p)
			}
		}
		if _, err := a.AllocateNext(); !errors.Is(err, ErrFull) || err.Error() != "range is full" {
			t.Errorf("range %v: allocation past the end = %v, want range is full", r, err)
		}
	}
}

// TestThousandInThousand: 1000 auto-allocations in a range of 1000 all
// succeed and are distinct; the 1001st is "range is full".
func TestThousandInThousand(t *testing.T) {
	a := New(Range{31000, 1000}, rand.New(rand.NewPCG(42, 42)))
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		p, err := a.AllocateNext()
		if err != nil {
			t.Fatalf("allocation %d: %v", i+1, err)
		}
		if seen[p] {
			t.Fatalf("allocation %d: %d handed out twice", i+1, p)
		}
		seen[p] = true
	}
	if _, err := a.AllocateNext(); err == nil || err.Error() != "range is full" {
		t.Fatalf("allocation 1001 = %v, want range is full", err)
	}
	if a.Free() != 0 || a.Used() != 1000 {
		t.Errorf("Used/Free = %d/%d", a.Used(), a.Free())
	}
	// A released port is what the next allocation finds.
	a.Release(31500)
	if p, err := a.AllocateNext(); err != nil || p != 31500 {
		t.Errorf("after releasing 31500: AllocateNext = %d, %v", p, err)
	}
}

// TestRandomStart: the first port is not always the band's first, and a
// seeded allocator repeats itself.
func TestRandomStart(t *testing.T) {
	run := func(seed uint64) []int {
		a := New(DefaultRange, rand.New(rand.NewPCG(seed, seed)))
		var out []int
		for i := 0; i < 5; i++ {
			p, err := a.AllocateNext()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	a, b := run(3), run(3)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different ports: %v vs %v", a, b)
		}
	}
	firsts := map[int]bool{}
	for s := uint64(0); s < 20; s++ {
		firsts[run(s)[0]] = true
	}
	if len(firsts) < 10 {
		t.Errorf("20 seeds gave only %d distinct first ports: not random", len(firsts))
	}
}

// TestOffsetZeroScansWholeRange: a range of 16 has no static band; auto
// allocation covers all 16 ports.
func TestOffsetZeroScansWholeRange(t *testing.T) {
	a := New(Range{40000, 16}, rand.New(rand.NewPCG(9, 9)))
	if a.Offset() != 0 {
		t.Fatalf("offset = %d", a.Offset())
	}
	for i := 0; i < 16; i++ {
		if _, err := a.AllocateNext(); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if _, err := a.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Errorf("17th = %v", err)
	}
}
