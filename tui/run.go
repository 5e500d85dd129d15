package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// Options configure Run.
type Options struct {
	// Entries are the picker's lessons; Open, when set, is started at once
	// (nplab tui NAME|FILE, nplab tui -f ...).
	Entries []Entry
	Open    *Entry
	// ProxyMode is the lab's --proxy-mode, for the explain pane.
	ProxyMode plane.ProxyMode
	// In and Out are the terminal (nil: stdin and stdout).
	In  io.Reader
	Out io.Writer
	// AltScreen draws on the alternate screen, as a full-screen program
	// does; tests and captures leave it off.
	AltScreen bool
	// Hint is shown on the status line once a lab runs (how to reach it
	// with kubectl from another terminal); HintFor, if set, is asked for
	// it instead, with the lab that runs.
	Hint    string
	HintFor func(*lab.Lab) string
}

// Run runs the UI until the student quits, and removes every lab it
// started however it ends: q, Ctrl-C, SIGTERM, SIGHUP, or a panic inside
// the UI. Bubble Tea restores the terminal in each case; a panic outside
// it is re-raised after the lab is removed. The error says how it ended
// when that was not a quit.
func Run(ctx context.Context, opts Options) (err error) {
	in, out := opts.In, opts.Out
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stopSignals()

	r := lipgloss.NewRenderer(out)
	if plainWanted() {
		r = PlainRenderer()
	}
	cmdCtx, cancelCmds := context.WithCancel(ctx)
	m := New(Config{Entries: opts.Entries, Open: opts.Open, ProxyMode: opts.ProxyMode, Renderer: r, Context: cmdCtx, Hint: opts.Hint, HintFor: opts.HintFor})
	own := m.owner
	defer func() {
		// Whatever happened, the lab goes: stop what commands run, wait
		// for a start in flight, close every lab.
		cancelCmds()
		cerr := own.closeAll()
		if p := recover(); p != nil {
			panic(p)
		}
		if err == nil {
			err = cerr
		}
	}()

	popts := []tea.ProgramOption{
		tea.WithInput(in), tea.WithOutput(out), tea.WithContext(ctx),
		// Our own NotifyContext handles SIGINT, SIGTERM and SIGHUP, so
		// every one of them ends in the same place.
		tea.WithoutSignalHandler(),
	}
	if opts.AltScreen {
		popts = append(popts, tea.WithAltScreen())
	}
	final, err := tea.NewProgram(m, popts...).Run()
	switch {
	case errors.Is(err, tea.ErrProgramPanic):
		return fmt.Errorf("the UI panicked (the lab was removed): %w", err)
	case errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil:
		return fmt.Errorf("stopped by a signal: the lab was removed")
	case err != nil:
		return err
	}
	if fm, ok := final.(Model); ok && fm.err != nil {
		return fm.err // the lab could not start
	}
	return nil
}
