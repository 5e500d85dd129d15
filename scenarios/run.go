package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/manifest"
	"github.com/nplab/nplab/lab/plane"
)

// Options configure a run.
type Options struct {
	// Check grades a student: each task applies the Student files that
	// supply its objects (Task.Supplies) instead of its solution.
	Check   bool
	Student []lab.File
	// Interactive is for a terminal UI: a task step applies nothing (the
	// student works in the lab) and Next runs its checks once; Await then
	// re-checks it until it passes.
	Interactive bool

	// ControlPlaneOnly runs the scenario on lab.New (no root): steps that
	// need the data plane are skipped, and the control plane's checks
	// (API errors, allocations, object state) run. Tests use it.
	ControlPlaneOnly bool
	// Start builds a lab with a data plane; nil means lab.Start (the
	// program must import lab/dataplane).
	Start func(ctx context.Context, cfg lab.Config) (*lab.Lab, error)
	// Probe says why the machine lacks a need; nil means Probe.
	Probe func(Need) error

	// LabName names the lab (namespaces nplab-<name>-<host>); "" means
	// "s-" and the scenario's name, cut to 10 bytes.
	LabName string
	// Seed seeds the lab's random choices (0: random); Now is its clock.
	Seed uint64
	Now  func() time.Time
	// ProbeScale speeds up readiness probes (lab.Config.ProbeScale).
	ProbeScale float64

	// OnStep is called after each step, as it finishes.
	OnStep func(StepResult)
}

// Status is how a step, or a whole run, ended.
type Status string

const (
	Pass        Status = "pass"
	Fail        Status = "fail"
	Skipped     Status = "skipped"     // not run: a need is missing or an earlier failure stopped the run
	Unsupported Status = "unsupported" // this machine cannot run it (exit 3)
	Invalid     Status = "invalid"     // the scenario file is invalid (exit 2)
)

// Report is a whole run: `nplab run --json` prints it.
type Report struct {
	Scenario string `json:"scenario"`
	Title    string `json:"title"`
	File     string `json:"file"`
	Mode     string `json:"mode"` // "run" or "check"
	Status   Status `json:"status"`
	// Reason is one line: why it failed or could not run, or "all N
	// steps passed".
	Reason string       `json:"reason"`
	Steps  []StepResult `json:"steps"`
	// Errors are an invalid scenario's errors (file, line, key).
	Errors []*Error `json:"errors,omitempty"`
}

// InvalidReport is the report of a scenario that could not be loaded: err
// from Open, Load or Parse.
func InvalidReport(file string, err error) *Report {
	rep := &Report{File: file, Mode: "run", Status: Invalid, Steps: []StepResult{}}
	var es Errors
	switch {
	case errors.As(err, &es) && len(es) > 0:
		rep.Errors = es
		if len(es) == 1 {
			rep.Reason = fmt.Sprintf("invalid scenario: %s:%d (%s)", es[0].File, es[0].Line, es[0].Key)
		} else {
			rep.Reason = fmt.Sprintf("invalid scenario: %d errors, the first at %s:%d (%s)", len(es), es[0].File, es[0].Line, es[0].Key)
		}
	default:
		rep.Reason = "invalid scenario: " + err.Error()
	}
	return rep
}

// ExitCode is `nplab run`'s exit status for the report: 0 pass, 1 a check
// failed, 3 this machine cannot run it.
func (r *Report) ExitCode() int {
	switch r.Status {
	case Pass:
		return 0
	case Unsupported:
		return 3
	case Invalid:
		return 2
	}
	return 1
}

// StepResult is one step's outcome.
type StepResult struct {
	// Index is 1-based; 0 is the scenario's own manifests.
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Action string `json:"action"` // "apply", "task + traffic", ...
	Status Status `json:"status"`
	// Reason says why a step was skipped or unsupported, or names its
	// first failed check.
	Reason string        `json:"reason,omitempty"`
	Checks []CheckResult `json:"checks"`
	// Took is how long it ran (not in the JSON, so that it is stable).
	Took time.Duration `json:"-"`
}

// CheckResult is one check of a step, in the student's terms.
type CheckResult struct {
	Check    string `json:"check"`
	Pass     bool   `json:"pass"`
	Expected string `json:"expected"`
	Observed string `json:"observed"`
	// Hint is the step's hint, with a failed check.
	Hint string `json:"hint,omitempty"`
}

// Run runs a scenario from start to end, headless, and always returns a
// report: a machine that cannot run it gives Status Unsupported, a failed
// check Fail.
func Run(ctx context.Context, sc *Scenario, opts Options) *Report {
	s, err := NewSession(ctx, sc, opts)
	if err != nil {
		return s.report(err)
	}
	defer s.Close()
	for s.More() {
		s.Next(ctx)
	}
	return s.report(nil)
}

// Session is a scenario being run step by step, over its lab: what the
// terminal UI drives, and what Run uses.
type Session struct {
	sc      *Scenario
	opts    Options
	lab     *lab.Lab
	next    int // the next step (0-based)
	results []StepResult
	hints   map[int]int        // step → hints shown
	student map[int][]lab.File // check: the files of each task step
	missing map[int]Need       // steps this machine cannot run
	unsup   *UnsupportedError  // the first of them
}

// NewSession builds the scenario's lab and applies its manifests. When the
// machine cannot run it at all, the error is an *UnsupportedError, and the
// returned Session still gives a report.
func NewSession(ctx context.Context, sc *Scenario, opts Options) (*Session, error) {
	s := &Session{sc: sc, opts: opts, hints: map[int]int{}, missing: map[int]Need{}}
	if opts.Probe == nil {
		s.opts.Probe = Probe
	}
	dp := !opts.ControlPlaneOnly && sc.NeedsDataPlane()
	for _, n := range sc.Needs {
		if n == NeedDataPlane && opts.ControlPlaneOnly {
			continue
		}
		if err := s.opts.Probe(n); err != nil {
			return s, &UnsupportedError{Need: n, Reason: err.Error()}
		}
	}
	if dp {
		if err := s.opts.Probe(NeedDataPlane); err != nil {
			return s, &UnsupportedError{Need: NeedDataPlane, Reason: err.Error()}
		}
	}
	for i := range sc.Steps {
		for _, n := range sc.Steps[i].Requires() {
			if n == NeedDataPlane {
				continue
			}
			if err := s.opts.Probe(n); err != nil {
				s.missing[i] = n
				if s.unsup == nil {
					s.unsup = &UnsupportedError{Need: n, Step: i + 1, Reason: err.Error()}
				}
			}
		}
	}
	name := opts.LabName
	if name == "" {
		name = "s-" + sc.Name
		if len(name) > 10 {
			name = strings.TrimRight(name[:10], "-")
		}
	}
	cfg := lab.Config{Name: name, Nodes: sc.Cluster.Nodes, NodePortRange: sc.Cluster.NodePortRange,
		ProxyMode: plane.ProxyMode(sc.Cluster.ProxyMode), Now: opts.Now, ProbeScale: opts.ProbeScale}
	if opts.Seed != 0 {
		cfg.Rand = rand.New(rand.NewPCG(opts.Seed, opts.Seed))
	}
	var err error
	if dp {
		start := opts.Start
		if start == nil {
			start = lab.Start
		}
		// A lab that cannot start here (no data plane linked, a kernel
		// without veth or bridges, no permission) is the machine's
		// limit, not the scenario's failure.
		s.lab, err = start(ctx, cfg)
		if err != nil {
			return s, &UnsupportedError{Need: NeedDataPlane, Reason: err.Error()}
		}
	} else {
		s.lab, err = lab.New(cfg)
	}
	if err != nil {
		return s, fmt.Errorf("starting the lab: %w", err)
	}
	if opts.Check {
		s.assignStudentFiles()
	}
	if len(sc.Manifests) > 0 {
		r := StepResult{Index: 0, Name: "apply the scenario's manifests", Action: "apply"}
		start := time.Now()
		res := s.lab.ApplyFiles(files(sc.Manifests)...)
		s.waitIdle(ctx)
		r.Checks = append(r.Checks, succeeds(res, "kubectl apply"))
		r.Took = time.Since(start)
		s.finish(&r, "")
	}
	return s, nil
}

// Lab is the session's lab.
func (s *Session) Lab() *lab.Lab { return s.lab }

// Scenario is the session's scenario.
func (s *Session) Scenario() *Scenario { return s.sc }

// More reports whether steps remain.
func (s *Session) More() bool { return s.lab != nil && s.next < len(s.sc.Steps) }

// Results are the results so far.
func (s *Session) Results() []StepResult { return slices.Clone(s.results) }

// Close removes the lab.
func (s *Session) Close() error {
	if s.lab == nil {
		return nil
	}
	return s.lab.Close()
}

// Next runs the next step and returns its result.
func (s *Session) Next(ctx context.Context) StepResult {
	i := s.next
	s.next++
	st := &s.sc.Steps[i]
	r := StepResult{Index: i + 1, Name: st.Name, Action: st.Action()}
	start := time.Now()
	done := func() StepResult {
		r.Took = time.Since(start)
		s.results = append(s.results, r)
		s.notify(r)
		return r
	}
	if n, ok := s.missing[i]; ok {
		r.Status = Unsupported
		r.Reason = fmt.Sprintf("needs %s: %v", n, s.opts.Probe(n))
		return done()
	}
	cpOnly := s.opts.ControlPlaneOnly
	if cpOnly && st.actionNeedsDataPlane() {
		r.Status, r.Reason = Skipped, "needs the data plane (this run has the control plane only)"
		return done()
	}
	obs := s.act(ctx, i, st)
	if !cpOnly {
		s.observe(ctx, st, obs)
	}
	r.Checks = s.evaluate(i, st, obs)
	if obs.unsupported != nil {
		r.Status, r.Reason = Unsupported, obs.unsupported.Error()
		if s.unsup == nil {
			s.unsup = &UnsupportedError{Need: st.likelyNeed(), Step: i + 1, Reason: obs.unsupported.Error()}
		}
		return done()
	}
	if cpOnly && st.Traffic != nil && len(r.Checks) == 0 {
		r.Status, r.Reason = Skipped, "its traffic needs the data plane (this run has the control plane only)"
		return done()
	}
	hint := st.Expect.Hint
	if hint == "" && st.Task != nil && len(st.Task.Hints) > 0 {
		hint = st.Task.Hints[0]
	}
	s.grade(&r, hint)
	if cpOnly && st.Traffic != nil && r.Status == Pass {
		r.Reason = "traffic not sent: this run has the control plane only"
	}
	return done()
}

// likelyNeed is the need a step's "not supported here" error is about.
func (st *Step) likelyNeed() Need {
	switch {
	case st.Traffic != nil && st.Traffic.Protocol == "SCTP":
		return NeedSCTP
	case st.Fault != nil && lab.FaultKind(st.Fault.Kind) == lab.FaultImpair:
		return NeedNetem
	}
	return NeedDataPlane
}

// Recheck runs step i's traffic and checks again without doing its action
// (a task the student works on), and returns the result. The result is not
// added to the run's.
func (s *Session) Recheck(ctx context.Context, i int) StepResult {
	if i < 0 || i >= len(s.sc.Steps) {
		return StepResult{Index: i + 1, Status: Fail, Reason: fmt.Sprintf("no step %d", i+1), Checks: []CheckResult{}}
	}
	st := &s.sc.Steps[i]
	r := StepResult{Index: i + 1, Name: st.Name, Action: st.Action()}
	obs := &observation{}
	s.observe(ctx, st, obs)
	r.Checks = s.evaluate(i, st, obs)
	s.grade(&r, st.Expect.Hint)
	return r
}

// Await rechecks task step i every time the lab changes (at most every
// interval) until its checks pass or ctx ends, and returns the last result:
// the runner's continuous re-check.
func (s *Session) Await(ctx context.Context, i int, interval time.Duration) StepResult {
	w := s.lab.Watch()
	defer func() { w.Stop() }()
	for {
		r := s.Recheck(ctx, i)
		if r.Status == Pass || ctx.Err() != nil {
			return r
		}
		// Wait for a change that is not traffic (the recheck's own
		// flows are events too).
	wait:
		for {
			select {
			case <-ctx.Done():
				return r
			case e, ok := <-w.Events:
				if !ok {
					w = s.lab.Watch()
					break wait
				}
				if e.Flow == nil {
					break wait
				}
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// Hint returns the next hint of task step i, one at a time, and false
// when there is none left.
func (s *Session) Hint(i int) (string, bool) {
	if i < 0 || i >= len(s.sc.Steps) {
		return "", false
	}
	t := s.sc.Steps[i].Task
	if t == nil || s.hints[i] >= len(t.Hints) {
		return "", false
	}
	h := t.Hints[s.hints[i]]
	s.hints[i]++
	return h, true
}

func (s *Session) notify(r StepResult) {
	if s.opts.OnStep != nil {
		s.opts.OnStep(r)
	}
}

// grade sets a step's status from its checks, and the hint on each failed
// check.
func (s *Session) grade(r *StepResult, hint string) {
	r.Status = Pass
	for i := range r.Checks {
		if !r.Checks[i].Pass {
			r.Checks[i].Hint = hint
			if r.Status == Pass {
				r.Status, r.Reason = Fail, r.Checks[i].Check
			}
		}
	}
}

// finish grades a step and records it.
func (s *Session) finish(r *StepResult, hint string) {
	s.grade(r, hint)
	s.results = append(s.results, *r)
	s.notify(*r)
}

// report sums up the run.
func (s *Session) report(err error) *Report {
	mode := "run"
	if s.opts.Check {
		mode = "check"
	}
	rep := &Report{Scenario: s.sc.Name, Title: s.sc.Title, File: s.sc.File, Mode: mode, Steps: s.Results()}
	if rep.Steps == nil {
		rep.Steps = []StepResult{}
	}
	for i := range rep.Steps {
		if rep.Steps[i].Checks == nil {
			rep.Steps[i].Checks = []CheckResult{}
		}
	}
	var ue *UnsupportedError
	switch {
	case errors.As(err, &ue):
		rep.Status, rep.Reason = Unsupported, ue.Error()
		return rep
	case err != nil:
		rep.Status, rep.Reason = Fail, err.Error()
		return rep
	}
	failed, skipped := 0, 0
	var first *StepResult
	for i := range rep.Steps {
		switch rep.Steps[i].Status {
		case Fail:
			failed++
			if first == nil {
				first = &rep.Steps[i]
			}
		case Skipped:
			skipped++
		}
	}
	switch {
	case failed > 0:
		rep.Status = Fail
		rep.Reason = fmt.Sprintf("%d of %d steps failed; the first, step %d (%s): %s", failed, len(rep.Steps), first.Index, first.Name, first.Reason)
	case s.unsup != nil:
		rep.Status, rep.Reason = Unsupported, s.unsup.Error()
	case skipped > 0:
		rep.Status = Pass
		rep.Reason = fmt.Sprintf("the %d steps that ran passed; %d skipped (they need the data plane)", len(rep.Steps)-skipped, skipped)
	default:
		rep.Status = Pass
		rep.Reason = fmt.Sprintf("all %d steps passed", len(rep.Steps))
	}
	return rep
}

// Action names what a step does: "apply", "traffic", "task + traffic".
func (st *Step) Action() string {
	var a string
	switch {
	case st.Apply != nil:
		a = "apply"
	case st.Delete != nil:
		a = "delete"
	case st.Fault != nil:
		a = "fault " + st.Fault.Kind
	case st.Wait != nil:
		a = "wait"
	case st.Task != nil:
		a = "task"
	}
	if st.Traffic != nil {
		if a != "" {
			a += " + "
		}
		a += "traffic"
	}
	if a == "" {
		a = "read"
		if len(st.Expect.State) > 0 {
			a = "check"
		}
	}
	return a
}

// Requires is what the step needs of the machine: its own Needs, the data
// plane for traffic and for faults on running pods and links, SCTP for
// SCTP traffic, netem for delay, jitter and loss.
func (st *Step) Requires() []Need {
	out := slices.Clone(st.Needs)
	add := func(n Need) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if t := st.Traffic; t != nil {
		add(NeedDataPlane)
		if t.Protocol == "SCTP" {
			add(NeedSCTP)
		}
	}
	if f := st.Fault; f != nil {
		switch lab.FaultKind(f.Kind) {
		case lab.FaultDeletePod, lab.FaultPodUnready, lab.FaultPodReady:
		default:
			add(NeedDataPlane)
		}
		if f.Delay != 0 || f.Jitter != 0 || f.Loss != 0 {
			add(NeedNetem)
		}
	}
	if slices.Contains(out, NeedSCTP) || slices.Contains(out, NeedNetem) {
		add(NeedDataPlane)
	}
	return out
}

// actionNeedsDataPlane reports whether the step's action (its traffic
// aside) needs the data plane.
func (st *Step) actionNeedsDataPlane() bool {
	if n := st.Requires(); slices.Contains(n, NeedSCTP) || slices.Contains(n, NeedNetem) {
		return true // a step about SCTP or netem is about the data plane throughout
	}
	c := *st
	c.Traffic = nil
	return slices.Contains(c.Requires(), NeedDataPlane)
}

// NeedsDataPlane reports whether some step needs the data plane (then the
// scenario runs on lab.Start, else on lab.New).
func (sc *Scenario) NeedsDataPlane() bool {
	if slices.Contains(sc.Needs, NeedDataPlane) {
		return true
	}
	for i := range sc.Steps {
		if slices.Contains(sc.Steps[i].Requires(), NeedDataPlane) {
			return true
		}
	}
	return false
}

func files(ms Manifests) []lab.File {
	out := make([]lab.File, len(ms))
	for i, m := range ms {
		out[i] = lab.File{Name: m.Name, Data: m.Data}
	}
	return out
}

// assignStudentFiles gives each student file to the first task that names
// one of its objects in Supplies; a file that names none (or does not
// parse) goes to the first task.
func (s *Session) assignStudentFiles() {
	s.student = map[int][]lab.File{}
	var tasks []int
	for i := range s.sc.Steps {
		if s.sc.Steps[i].Task != nil {
			tasks = append(tasks, i)
		}
	}
	if len(tasks) == 0 {
		return
	}
	for _, f := range s.opts.Student {
		objs, _ := manifest.Decode(f.Name, f.Data)
		at := tasks[0]
	find:
		for _, ti := range tasks {
			for _, ref := range s.sc.Steps[ti].Task.Supplies {
				for _, o := range objs {
					if o.Kind == kinds[strings.ToLower(ref.Kind)] && o.Name == ref.Name {
						at = ti
						break find
					}
				}
			}
		}
		s.student[at] = append(s.student[at], f)
	}
}

// studentSupplies lists the objects of files, as "Service/web".
func studentSupplies(fs []lab.File) map[string]bool {
	out := map[string]bool{}
	for _, f := range fs {
		objs, _ := manifest.Decode(f.Name, f.Data)
		for _, o := range objs {
			out[o.Kind+"/"+o.Name] = true
		}
	}
	return out
}

// observation is what a step did and saw.
type observation struct {
	acted       bool         // the step's action ran (not a recheck)
	results     []lab.Result // apply, delete, task
	applied     bool         // results are from an apply, delete or task
	verb        string       // "kubectl apply", "kubectl delete"
	faultErr    error
	waitErr     string // a wait that timed out: what was seen last
	traffic     *trafficObs
	unsupported error
}

// act does the step's action.
func (s *Session) act(ctx context.Context, i int, st *Step) *observation {
	obs := &observation{acted: true}
	l := s.lab
	switch {
	case st.Apply != nil:
		obs.applied, obs.verb = true, "kubectl apply"
		obs.results = l.ApplyFiles(files(st.Apply)...)
	case st.Delete != nil:
		obs.applied, obs.verb = true, "kubectl delete"
		for _, o := range st.Delete.Objects {
			r := lab.Result{Object: o.String(), Kind: kinds[strings.ToLower(o.Kind)], Name: o.Name, Action: lab.Deleted}
			if err := l.Delete(o.Kind, "", o.Name); err != nil {
				r.Action, r.Err, r.Verb = "", err, "deleting"
			}
			obs.results = append(obs.results, r)
		}
		for _, m := range st.Delete.Manifests {
			obs.results = append(obs.results, l.DeleteFile(m.Name, m.Data)...)
		}
	case st.Fault != nil:
		obs.faultErr = s.inject(st.Fault)
		if errors.Is(obs.faultErr, plane.ErrNotSupported) {
			obs.unsupported = obs.faultErr
		}
	case st.Wait != nil:
		obs.waitErr = s.wait(ctx, st.Wait)
	case st.Task != nil && s.opts.Interactive:
		// The student does the task in the lab.
	case st.Task != nil:
		obs.applied, obs.verb = true, "kubectl apply"
		fs := files(st.Task.Solution)
		if s.opts.Check {
			fs = s.student[i]
		}
		if len(fs) > 0 {
			obs.results = l.ApplyFiles(fs...)
		}
	}
	s.waitIdle(ctx)
	return obs
}

// observe sends the step's traffic.
func (s *Session) observe(ctx context.Context, st *Step, obs *observation) {
	if st.Traffic != nil {
		obs.traffic = s.send(ctx, st.Traffic)
		if obs.traffic.unsupported != nil && obs.unsupported == nil {
			obs.unsupported = obs.traffic.unsupported
		}
	}
}

// waitIdle waits until the controllers are idle (a Deployment's pods are
// created after Apply returns) and the data plane has caught up (every
// node's proxy has the endpoints a wait step just saw).
func (s *Session) waitIdle(ctx context.Context) {
	_ = s.lab.WaitIdle(ctx)
}

// inject injects a fault on each pod it names.
func (s *Session) inject(f *Fault) error {
	kind := lab.FaultKind(f.Kind)
	if nodeFaults[kind] {
		return s.lab.Inject(lab.Fault{Kind: kind, Node: f.Node, Impairment: plane.Impairment{
			Delay: time.Duration(f.Delay), Jitter: time.Duration(f.Jitter),
			LossPercent: float64(f.Loss), RateBitsPerSec: uint64(f.Rate)}})
	}
	pods := []string{f.Pod}
	if f.Pod == "" {
		pods = nil
		st := s.lab.State()
		for _, name := range st.PodNames() {
			p := st.Pods[name]
			if matches(f.Selector, p.Labels) && (f.OnNode == "" || p.Node == f.OnNode) && !p.Terminating {
				pods = append(pods, name)
			}
		}
		if len(pods) == 0 {
			where := ""
			if f.OnNode != "" {
				where = " on " + f.OnNode
			}
			return fmt.Errorf("no pod of %s%s to %s", selectorString(f.Selector), where, f.Kind)
		}
		if !f.All {
			pods = pods[:1]
		}
	}
	for _, p := range pods {
		if err := s.lab.Inject(lab.Fault{Kind: kind, Pod: p}); err != nil {
			return err
		}
	}
	return nil
}

// wait follows the lab's events until every check of w holds; it returns
// "" or what it saw last.
func (s *Session) wait(ctx context.Context, w *Wait) string {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.Timeout))
	defer cancel()
	if len(w.Until) == 0 {
		s.waitIdle(ctx)
		return ""
	}
	watch := s.lab.Watch()
	defer func() { watch.Stop() }()
	state := watch.State
	for {
		var failed []string
		for i := range w.Until {
			if c := checkState(state, &w.Until[i]); !c.Pass {
				failed = append(failed, c.Observed)
			}
		}
		if len(failed) == 0 {
			return ""
		}
		select {
		case <-ctx.Done():
			return fmt.Sprintf("after %s: %s", time.Duration(w.Timeout), strings.Join(failed, "; "))
		case e, ok := <-watch.Events:
			if !ok {
				watch = s.lab.Watch()
				state = watch.State
				continue
			}
			state.Apply(e)
		}
	}
}

// matches reports whether labels has every key=value of sel.
func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func selectorString(sel map[string]string) string {
	var parts []string
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// appliedText is what kubectl printed for results: its lines for the
// objects, then its errors.
func appliedText(res []lab.Result) (out string, errs string) {
	var lines []string
	var es []kubectl.Sourced
	for _, r := range res {
		if r.Err != nil {
			es = append(es, r.Sourced())
			continue
		}
		lines = append(lines, r.String())
	}
	return strings.Join(lines, "; "), kubectl.FormatErrors(es)
}
