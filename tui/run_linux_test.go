package tui

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nplab/nplab/lab"
)

// Bubble Tea may end before it runs the start command it was given: with
// /dev/null for input (`nplab tui </dev/null`) it cannot watch the input
// and ends at once. Run still returns, with that error, and no lab is
// built; it used to wait for ever for the start that never ran.
func TestRunEndsWhenTheProgramEndsBeforeTheStart(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	built := make(chan *lab.Lab, 1)
	entry := Entry{Name: "late", Title: "late", Start: func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error) {
		l, err := lab.New(lab.Config{Name: "late"})
		built <- l
		return l, freeLesson{"free", "free lab", ""}, err
	}}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), Options{Open: &entry, In: devnull, Out: io.Discard}) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run = nil, want the reason the UI could not run")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when Bubble Tea could not start")
	}
	select {
	case l := <-built:
		if !labClosed(l) {
			t.Error("a lab built after the UI ended is still running")
		}
	default:
	}
}
