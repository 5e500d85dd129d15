package tui

import (
	"os"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// theme holds every style, made from one renderer: a renderer with the
// Ascii profile (NO_COLOR, TERM=dumb, golden tests) makes them all plain.
// Colour only ever repeats what a symbol already says.
type theme struct {
	title, dim, bold, sel, ok, bad, warn, info, key lipgloss.Style
}

func newTheme(r *lipgloss.Renderer) theme {
	s := r.NewStyle
	return theme{
		title: s().Bold(true),
		dim:   s().Faint(true),
		bold:  s().Bold(true),
		sel:   s().Reverse(true),
		ok:    s().Foreground(lipgloss.Color("2")),
		bad:   s().Foreground(lipgloss.Color("1")),
		warn:  s().Foreground(lipgloss.Color("3")),
		info:  s().Foreground(lipgloss.Color("6")),
		key:   s().Bold(true),
	}
}

// plainWanted reports whether the environment asks for no colour.
func plainWanted() bool {
	_, noColor := os.LookupEnv("NO_COLOR")
	return noColor || os.Getenv("TERM") == "dumb"
}

// PlainRenderer is a renderer that draws no colour or attribute at all:
// what NO_COLOR and the golden tests see.
func PlainRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(os.Stdout)
	r.SetColorProfile(termenv.Ascii)
	return r
}
