package tui

import (
	"context"

	"github.com/nplab/nplab/lab"
)

// Lesson is what the lesson pane and the picker need of a lesson. Package
// scenarios (a YAML lesson runner) is adapted to it; the free lab is a
// Lesson with no steps.
//
// The UI calls Check and Enter inside commands, never from Update or View:
// they may send traffic, apply manifests and wait. Steps is called from
// Update and View and must be cheap and return the same steps every time.
//
// An adapter for package scenarios (in package main, or in scenarios
// itself, so that tui never imports it) maps a scenario to a Lesson and an
// Entry:
//
//	Entry{Name: sc.Name, Title: sc.Title, Summary: sc.Summary,
//	    Start: func(ctx, progress) { l, err := newLab(ctx) // the scenario's cluster
//	        progress("applying the scenario's manifests"); ...
//	        return l, adapter{sc}, nil }}
//
// with Steps from the scenario's steps (their text, the names of their
// expectations as Checks, their hints), Enter running a step's action
// (apply, delete, send, fault) and Check evaluating its expectations into
// CheckResults (expected and observed as a person reads them). The root
// command picks the entries up through lessonEntries and scenarioFile in
// tui.go.
type Lesson interface {
	// Name is what `nplab tui NAME` takes ("basics"); Title and Summary
	// are what the picker shows.
	Name() string
	Title() string
	Summary() string
	// Steps are the lesson's steps in order; none for a free lab.
	Steps() []Step
	// Enter runs what step i does when the student arrives at it (apply a
	// manifest, inject a fault); nil when the step does nothing itself.
	Enter(ctx context.Context, l *lab.Lab, step int) error
	// Check runs step i's checks against the lab as it is now.
	Check(ctx context.Context, l *lab.Lab, step int) ([]CheckResult, error)
}

// Step is one step of a lesson.
type Step struct {
	Title string
	// Text is the step's teaching text, in a small markdown: paragraphs,
	// "- " lists, "# " headings, `code` and **bold**.
	Text string
	// Checks names the checks Check runs, shown as "not run yet" before
	// the first check; a step without checks is not a task.
	Checks []string
	// Hints are shown one at a time (h).
	Hints []string
}

// CheckResult is one check of a step, after Check ran it.
type CheckResult struct {
	Name     string
	Pass     bool
	Expected string
	Observed string
}

// Entry is one line of the picker: a lesson and how to start its lab.
type Entry struct {
	Name, Title, Summary string
	// Start builds the lab and the lesson on it. It reports what it is
	// building through progress ("nodes", "pods") and must honour ctx. On
	// error it leaves no lab behind. It runs inside a command.
	Start func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error)
}

// Factory builds a lab: package main passes one that calls lab.Start with
// its flags, tests one that calls lab.New.
type Factory func(ctx context.Context) (*lab.Lab, error)

// FreeLab is the picker's "free lab": the default lab (lab.DefaultManifest)
// with no steps.
func FreeLab(newLab Factory) Entry {
	return ManifestEntry("free", "free lab", "the default lab: a 3-replica web Deployment behind NodePort 30080, no steps",
		newLab, lab.File{Name: "default.yaml", Data: lab.DefaultManifest})
}

// ManifestEntry is a lab with files applied (nplab tui -f a.yaml -f b.yaml)
// and no steps.
func ManifestEntry(name, title, summary string, newLab Factory, files ...lab.File) Entry {
	return Entry{Name: name, Title: title, Summary: summary,
		Start: func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error) {
			progress("building nodes, the client and the cluster bridge")
			l, err := newLab(ctx)
			if err != nil {
				return nil, nil, err
			}
			if err := ctx.Err(); err != nil {
				_ = l.Close()
				return nil, nil, err
			}
			progress("applying manifests")
			_ = l.ApplyFiles(files...) // results reach the UI as Applied and Rejected events
			return l, freeLesson{name, title, summary}, nil
		}}
}

// freeLesson is a lesson with no steps.
type freeLesson struct{ name, title, summary string }

func (f freeLesson) Name() string                                              { return f.name }
func (f freeLesson) Title() string                                             { return f.title }
func (f freeLesson) Summary() string                                           { return f.summary }
func (freeLesson) Steps() []Step                                               { return nil }
func (freeLesson) Enter(context.Context, *lab.Lab, int) error                  { return nil }
func (freeLesson) Check(context.Context, *lab.Lab, int) ([]CheckResult, error) { return nil, nil }
