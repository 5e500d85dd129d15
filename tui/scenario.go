package tui

import (
	"context"
	"reflect"
	"sync"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/scenarios"
)

// ScenarioEntry is the picker's entry for a scenario (a built-in lesson or
// a file): Start builds the scenario's cluster as a lab named labName with
// start (nil: lab.Start) and applies its manifests, and the lesson pane
// follows its steps. A step's
// action (apply, fault, traffic) runs when the student arrives at it; a
// task does nothing itself (the student works in the lab) and `c` checks
// it.
func ScenarioEntry(sc *scenarios.Scenario, labName string, start func(context.Context, lab.Config) (*lab.Lab, error)) Entry {
	return Entry{Name: sc.Name, Title: sc.Title, Summary: sc.Summary,
		Start: func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error) {
			progress("building the lab of " + sc.Name + " and applying its manifests")
			s, err := scenarios.NewSession(ctx, sc, scenarios.Options{Interactive: true, LabName: labName, Start: start})
			if err != nil {
				if s != nil {
					_ = s.Close()
				}
				return nil, nil, err
			}
			return s.Lab(), newScenarioLesson(s), nil
		}}
}

// scenarioLesson adapts a scenarios.Session to Lesson.
type scenarioLesson struct {
	mu    sync.Mutex // Enter and Check run in commands, maybe at once
	s     *scenarios.Session
	done  int // steps run
	sc    *scenarios.Scenario
	steps []Step
}

func newScenarioLesson(s *scenarios.Session) *scenarioLesson {
	sc := s.Scenario()
	ls := &scenarioLesson{s: s, sc: sc}
	for _, st := range sc.Steps {
		step := Step{Title: st.Name, Text: st.Text}
		if st.Task != nil {
			step.Hints = st.Task.Hints
		}
		if !reflect.ValueOf(st.Expect).IsZero() {
			step.Checks = []string{st.Name}
		}
		ls.steps = append(ls.steps, step)
	}
	return ls
}

func (l *scenarioLesson) Name() string    { return l.sc.Name }
func (l *scenarioLesson) Title() string   { return l.sc.Title }
func (l *scenarioLesson) Summary() string { return l.sc.Summary }
func (l *scenarioLesson) Steps() []Step   { return l.steps }

// Enter runs the scenario's steps up to and including step: arriving at a
// step does what it does. Going back does nothing: what is done is done.
func (l *scenarioLesson) Enter(ctx context.Context, _ *lab.Lab, step int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.s.More() && l.done <= step {
		l.s.Next(ctx)
		l.done++
	}
	return ctx.Err()
}

// Check runs step's checks against the lab as it is now.
func (l *scenarioLesson) Check(ctx context.Context, _ *lab.Lab, step int) ([]CheckResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.s.Recheck(ctx, step)
	var out []CheckResult
	for _, c := range r.Checks {
		out = append(out, CheckResult{Name: c.Check, Pass: c.Pass, Expected: c.Expected, Observed: c.Observed})
	}
	if len(out) == 0 && r.Reason != "" {
		out = append(out, CheckResult{Name: r.Name, Pass: r.Status == scenarios.Pass, Observed: r.Reason})
	}
	return out, ctx.Err()
}
