package tui

import (
	"fmt"
	"slices"
	"testing"
)

func TestScrollKeepsTheSelectionInView(t *testing.T) {
	lines := func(sel int) []string {
		var out []string
		for i := range 10 {
			mark := "  "
			if i == sel {
				mark = "▸ "
			}
			out = append(out, fmt.Sprintf("%s%d", mark, i))
		}
		return out
	}
	for _, c := range []struct {
		sel  int
		want []string
	}{
		{0, []string{"▸ 0", "  1", "  2", "  ↓ 7 more"}},
		{2, []string{"  0", "  1", "▸ 2", "  ↓ 7 more"}},
		{3, []string{"  ↑ 2 more", "  2", "▸ 3", "  ↓ 6 more"}},
		{7, []string{"  ↑ 6 more", "  6", "▸ 7", "  ↓ 2 more"}},
		{8, []string{"  ↑ 7 more", "  7", "▸ 8", "  9"}},
		{9, []string{"  ↑ 7 more", "  7", "  8", "▸ 9"}},
	} {
		got := scroll(lines(c.sel), 4)
		if !slices.Equal(got, c.want) {
			t.Errorf("selection %d: %q, want %q", c.sel, got, c.want)
		}
	}
	if got := scroll(lines(0), 2); len(got) != 2 {
		t.Errorf("room 2: %q", got)
	}
}
