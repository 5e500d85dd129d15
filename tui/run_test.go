package tui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nplab/nplab/lab"
)

// syncBuffer is the terminal's output, read while the program writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// panicky panics when the UI asks for its steps, inside Update.
type panicky struct{ freeLesson }

func (panicky) Steps() []Step { panic("a bug in the lesson pane") }

// runUI runs Run on a control-plane lab and returns the lab once it has
// started, the input to type into, and Run's result.
func runUI(t *testing.T, lesson Lesson) (*lab.Lab, io.Writer, <-chan error, *syncBuffer) {
	t.Helper()
	started := make(chan *lab.Lab, 1)
	entry := Entry{Name: "run", Title: "run", Start: func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error) {
		l, err := lab.New(lab.Config{Name: "run"})
		if err != nil {
			return nil, nil, err
		}
		l.Apply("default.yaml", lab.DefaultManifest)
		started <- l
		return l, lesson, nil
	}}
	in, typer := io.Pipe()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), Options{Open: &entry, In: in, Out: out}) }()
	t.Cleanup(func() { _ = typer.Close() })
	select {
	case l := <-started:
		return l, typer, done, out
	case err := <-done:
		t.Fatalf("Run ended before the lab started: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the lab did not start")
	}
	return nil, nil, nil, nil
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end")
		return nil
	}
}

func waitFor(t *testing.T, out *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %q:\n%s", s, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunQuitRemovesTheLab(t *testing.T) {
	l, typer, done, out := runUI(t, freeLesson{"free", "free lab", ""})
	waitFor(t, out, "Fan-out")
	if _, err := typer.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Errorf("q: Run = %v, want nil", err)
	}
	if !labClosed(l) {
		t.Error("q left the lab running")
	}
}

func TestRunPanicRemovesTheLab(t *testing.T) {
	l, _, done, _ := runUI(t, panicky{})
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("Run = %v, want the panic reported", err)
	}
	if !labClosed(l) {
		t.Error("a panic left the lab running")
	}
}

// A start that fails leaves nothing, and Run returns its error once a key
// is pressed on the error screen.
func TestRunStartError(t *testing.T) {
	entry := Entry{Name: "bad", Start: func(context.Context, func(string)) (*lab.Lab, Lesson, error) {
		return nil, nil, errors.New("needs root")
	}}
	in, typer := io.Pipe()
	defer typer.Close()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), Options{Open: &entry, In: in, Out: out}) }()
	waitFor(t, out, "needs root")
	_, _ = typer.Write([]byte("x"))
	if err := wait(t, done); err == nil || err.Error() != "needs root" {
		t.Errorf("Run = %v, want the start's error", err)
	}
}

// A lab that finishes starting after the UI has ended is closed at once.
func TestOwnerClosesLateLabs(t *testing.T) {
	o := &owner{}
	if err := o.closeAll(); err != nil {
		t.Fatal(err)
	}
	l, err := lab.New(lab.Config{Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if o.add(l) || !labClosed(l) {
		t.Error("a lab added after closeAll was kept open")
	}
}

// q while the lab is being built stops the build and waits for it, so
// nothing half-built is left.
func TestRunQuitWhileStarting(t *testing.T) {
	building := make(chan struct{})
	stopped := make(chan struct{})
	entry := Entry{Name: "slow", Title: "slow", Start: func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error) {
		progress("building nodes")
		close(building)
		<-ctx.Done()
		close(stopped)
		return nil, nil, ctx.Err()
	}}
	in, typer := io.Pipe()
	defer typer.Close()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), Options{Open: &entry, In: in, Out: out}) }()
	<-building
	waitFor(t, out, "building nodes")
	_, _ = typer.Write([]byte("q"))
	if err := wait(t, done); err != nil {
		t.Errorf("Run = %v, want nil after q", err)
	}
	select {
	case <-stopped:
	default:
		t.Error("Run returned before the start in flight ended")
	}
}

// cmdPanicky panics inside a command (Enter runs in one).
type cmdPanicky struct{ fakeLesson }

func (*cmdPanicky) Enter(context.Context, *lab.Lab, int) error { panic("a bug in a lesson step") }

func TestRunPanicInACommandRemovesTheLab(t *testing.T) {
	l, _, done, _ := runUI(t, &cmdPanicky{})
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("Run = %v, want the panic reported", err)
	}
	if !labClosed(l) {
		t.Error("a panic in a command left the lab running")
	}
}
