package tui

import (
	"context"
	"io"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/nplab/nplab/lab"
)

// The model in Bubble Tea's own loop, with the production re-arming
// command on the Watch channel: a change made to the lab from outside
// reaches the screen with no polling, and q ends the program with the lab
// closed. (teatest is not used: its golden package registers -update too,
// as internal/golden does.)
func TestEventsReachTheScreenThroughTheLoop(t *testing.T) {
	l := defaultLab(t)
	entry := Entry{Name: "loop", Title: "loop", Start: func(context.Context, func(string)) (*lab.Lab, Lesson, error) {
		return l, freeLesson{"free", "free lab", ""}, nil
	}}
	m := New(Config{Open: &entry, Renderer: PlainRenderer()})
	in, typer := io.Pipe()
	defer typer.Close()
	out := &syncBuffer{}
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out), tea.WithoutSignalHandler())
	done := make(chan error, 1)
	go func() { _, err := p.Run(); done <- err }()
	p.Send(tea.WindowSizeMsg{Width: 120, Height: 40})

	waitFor(t, out, "3/3 pods ready")
	pod := l.State().PodNames()[0]
	if err := l.Inject(lab.Fault{Kind: lab.FaultPodUnready, Pod: pod}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "2/3 pods ready")
	if err := l.Scale("web", 5); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "4/5 pods ready")
	_, _ = typer.Write([]byte("q"))
	if err := wait(t, done); err != nil {
		t.Errorf("q: %v", err)
	}
	if !labClosed(l) {
		t.Error("q left the lab running")
	}
}
