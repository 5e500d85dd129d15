package portalloc

import (
	"testing"
	"time"
)

// FuzzParseRange: ParseRange never panics, answers at once, and a range
// it accepts lies within 0-65535 and prints as text it parses back to the
// same range.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"30000-32767", "30080", " 1-1 ", "", "0", "65535", "65536", "-1", "1-", "-",
		"5-4", "0-65535", "+1-+2", "1 - 2", "30000-32767-1", "99999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start := time.Now()
		r, err := ParseRange(s)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("ParseRange(%q) took %v", s, d)
		}
		if err != nil {
			return
		}
		if r.Size == 0 {
			if r != (Range{}) {
				t.Fatalf("ParseRange(%q) = %+v: empty but not zero", s, r)
			}
			return
		}
		if r.Base < 0 || r.Size < 0 || r.Base+r.Size-1 > 65535 {
			t.Fatalf("ParseRange(%q) = %+v, outside 0-65535", s, r)
		}
		back, err := ParseRange(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRange(%q) = %+v prints %q, which parses to %+v, %v", s, r, r.String(), back, err)
		}
	})
}
