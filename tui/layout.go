package tui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// fit truncates s to w cells (with "…" when something was cut) and pads it
// to exactly w.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if n := w - ansi.StringWidth(s); n > 0 {
		s += strings.Repeat(" ", n)
	}
	return s
}

// box draws lines in a w×h frame titled title. A focused frame has heavy
// lines, so focus shows without colour. Lines that do not fit leave a
// "↓ N more" sign on the last row.
func box(title string, lines []string, w, h int, focused bool) []string {
	if w < 4 || h < 2 {
		return nil
	}
	tl, tr, bl, br, hz, vt := "┌", "┐", "└", "┘", "─", "│"
	if focused {
		tl, tr, bl, br, hz, vt = "┏", "┓", "┗", "┛", "━", "┃"
	}
	inner := w - 2
	head := tl + hz + " " + title + " "
	if ansi.StringWidth(head) > w-1 {
		head = ansi.Truncate(head, w-2, "…")
	}
	head += strings.Repeat(hz, max(0, w-1-ansi.StringWidth(head))) + tr
	out := []string{head}
	room := h - 2
	lines = scroll(lines, room)
	for i := 0; i < room; i++ {
		l := ""
		if i < len(lines) {
			l = lines[i]
		}
		out = append(out, vt+fit(l, inner)+vt)
	}
	return append(out, bl+strings.Repeat(hz, inner)+br)
}

// hjoin puts blocks side by side; every block is padded to the tallest.
func hjoin(blocks ...[]string) []string {
	h := 0
	widths := make([]int, len(blocks))
	for i, b := range blocks {
		h = max(h, len(b))
		for _, l := range b {
			widths[i] = max(widths[i], ansi.StringWidth(l))
		}
	}
	out := make([]string, h)
	for i := range out {
		var sb strings.Builder
		for j, b := range blocks {
			l := ""
			if i < len(b) {
				l = b[i]
			}
			sb.WriteString(fit(l, widths[j]))
		}
		out[i] = sb.String()
	}
	return out
}

// wrap breaks text into lines of at most w cells at spaces.
func wrap(text string, w int) []string {
	if w < 8 {
		w = 8
	}
	var out []string
	for _, para := range strings.Split(text, "\n") {
		indent := ""
		if strings.HasPrefix(para, "- ") || strings.HasPrefix(para, "• ") {
			indent = "  "
		}
		line := ""
		for _, word := range strings.Fields(para) {
			switch {
			case line == "":
				line = word
			case ansi.StringWidth(line)+1+ansi.StringWidth(word) <= w:
				line += " " + word
			default:
				out = append(out, line)
				line = indent + word
			}
		}
		out = append(out, line)
	}
	return out
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// cols aligns rows into columns two spaces apart (like kubectl's
// tabwriter); cells may carry styles.
func cols(rows [][]string) []string {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], ansi.StringWidth(c))
		}
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		var sb strings.Builder
		for j, c := range r {
			if j == len(r)-1 {
				sb.WriteString(c)
				break
			}
			sb.WriteString(fit(c, widths[j]+2))
		}
		out[i] = strings.TrimRight(sb.String(), " ")
	}
	return out
}

// scroll fits lines into room rows: what does not fit is replaced by
// "↑ N more" and "↓ N more" rows, and the selected line (the one that
// starts with "▸") stays in view.
func scroll(lines []string, room int) []string {
	if len(lines) <= room || room <= 0 {
		return lines
	}
	if room < 3 {
		return lines[:room]
	}
	sel := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "▸") {
			sel = i
			break
		}
	}
	more := func(arrow string, n int) string { return "  " + arrow + " " + itoa(n) + " more" }
	if sel < room-1 {
		return append(lines[:room-1:room-1], more("↓", len(lines)-room+1))
	}
	// The selection sits on the last row but one; the first row says how
	// many are above.
	start := sel - (room - 3)
	end := start + room - 2
	if end >= len(lines)-1 {
		start = len(lines) - (room - 1)
		return append([]string{more("↑", start)}, lines[start:]...)
	}
	out := append([]string{more("↑", start)}, lines[start:end]...)
	return append(out, more("↓", len(lines)-end))
}
