package tui

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/spinner"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// phase is where the root state machine is.
type phase int

const (
	phasePicker   phase = iota // choosing a lesson
	phaseStarting              // the lab is being built
	phaseRunning               // the lab runs: panes and keys
	phaseError                 // the lab could not start; any key quits
	phaseClosing               // removing the lab, then quit
)

// pane is which pane has the focus (arrows move its selection).
type pane int

const (
	paneTopology pane = iota
	paneServices
	paneEvents
	paneLesson
	numPanes
)

func (p pane) String() string {
	return [...]string{"topology", "services", "events", "lesson"}[p]
}

// maxLog is how many events the events pane keeps.
const maxLog = 500

// burst is how many requests t and T send.
const burst = 30

// Config configures a Model.
type Config struct {
	// Entries are the picker's lessons. With Open set the picker is
	// skipped.
	Entries []Entry
	Open    *Entry
	// ProxyMode is the proxy mode the explain pane assumes when the lab
	// does not say (a running lab's own mode wins: a scenario may set one).
	ProxyMode plane.ProxyMode
	// Renderer draws the styles; nil means lipgloss's default one, made
	// plain under NO_COLOR or TERM=dumb.
	Renderer *lipgloss.Renderer
	// Context bounds every command (traffic, checks); nil means
	// context.Background().
	Context context.Context
	// ReadFile reads a file for `a` (nil: os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// Hint is shown on the status line once a lab runs.
	Hint string
	// HintFor, if set, is asked for that line instead, with the lab that
	// runs (what it says may differ from lab to lab).
	HintFor func(*lab.Lab) string
}

// Model is the root model: an explicit state machine over the picker, the
// start, the running lab and an error. Update is the only place its state
// changes; every lab call runs in a tea.Cmd.
type Model struct {
	cfg    Config
	ctx    context.Context
	owner  *owner
	phase  phase
	width  int
	height int
	th     theme
	keys   keyMap
	help   help.Model
	spin   spinner.Model

	// picker
	pick int
	// starting
	entry    Entry
	progress []string
	progCh   chan string
	// startCtx bounds the start in flight; cancelStart stops it when the
	// student quits.
	startCtx    context.Context
	cancelStart context.CancelFunc
	// error
	err error

	// running
	lab     *lab.Lab
	lesson  Lesson
	watcher *lab.Watcher
	state   lab.State
	log     []lab.Event

	focus   pane
	topoSel string // "node/x" or "pod/y"
	svcSel  string
	evSel   uint64 // Seq of the selected event; 0 follows the newest
	proto   string
	busy    int
	status  string
	statErr bool

	// unseen counts the attempts of t and T that no node saw (sent to a
	// node whose link is down): the fan-out shows them with the rest.
	unseen map[unseenKey]map[string]map[string]int64
	// fanBase is the lab's flow counts when the fan-out last started
	// over (e: the policy changed): the fan-out counts what came since.
	fanBase map[lab.FlowKey]int64

	step    int
	hints   int // hints shown of the current step
	checks  map[int][]CheckResult
	checked map[int]error

	// rearm is the command that reads the next events (waitEvents; tests
	// use one that takes only what is queued, so they never block).
	rearm func(*lab.Watcher) tea.Cmd

	prompt    textinput.Model
	prompting bool
	explain   *lab.Event
	// explainOff is how far the explanation is scrolled.
	explainOff int
	fullHelp   bool
	lessonBig  bool
}

// owner keeps every lab a command started, so Run closes them however the
// UI ends, even when the model is lost to a panic.
type owner struct {
	mu     sync.Mutex
	labs   []*lab.Lab
	closed bool
	wg     sync.WaitGroup
}

// add records l; a lab that arrives after closeAll is closed at once.
func (o *owner) add(l *lab.Lab) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		_ = l.Close()
		return false
	}
	o.labs = append(o.labs, l)
	return true
}

// begin registers a start that is about to run; false means the UI has
// ended and nothing may be started. It is called by the start command
// itself, not when the command is made: Bubble Tea may end without running
// a command it was given, and a start counted but never run would keep
// closeAll waiting for ever.
func (o *owner) begin() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.wg.Add(1)
	return true
}

// closeAll stops new starts, waits for those in flight (a lab one of them
// finishes from now on is closed by add) and closes every lab, returning
// the first error.
func (o *owner) closeAll() error {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.wg.Wait()
	o.mu.Lock()
	labs := o.labs
	o.labs = nil
	o.mu.Unlock()
	var first error
	for _, l := range labs {
		if err := l.Close(); err != nil && first == nil {
			first = fmt.Errorf("removing lab %q: %w (run: nplab clean --name %s)", l.Name(), err, l.Name())
		}
	}
	return first
}

// New returns the root model.
func New(cfg Config) Model {
	r := cfg.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
		if plainWanted() {
			r = PlainRenderer()
		}
	}
	ctx := cfg.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if cfg.ReadFile == nil {
		cfg.ReadFile = os.ReadFile
	}
	m := Model{
		cfg: cfg, ctx: ctx, owner: &owner{}, th: newTheme(r), keys: newKeyMap(),
		help: help.New(), width: 80, height: 24, proto: "TCP",
		checks: map[int][]CheckResult{}, checked: map[int]error{}, unseen: map[unseenKey]map[string]map[string]int64{},
		rearm: waitEvents,
	}
	m.help.Styles.ShortKey = m.th.key
	m.help.Styles.FullKey = m.th.key
	m.help.Styles.ShortDesc = r.NewStyle()
	m.help.Styles.FullDesc = r.NewStyle()
	m.help.Styles.ShortSeparator = r.NewStyle()
	m.help.Styles.FullSeparator = r.NewStyle()
	m.help.Styles.Ellipsis = r.NewStyle()
	m.spin = spinner.New(spinner.WithSpinner(spinner.Line))
	m.prompt = textinput.New()
	m.prompt.Prompt = "apply -f "
	m.prompt.Placeholder = "path/to/manifest.yaml"
	// A steady cursor: no blink timer redrawing the screen twice a second.
	m.prompt.Cursor.SetMode(cursor.CursorStatic)
	if cfg.Open != nil {
		m.phase = phaseStarting
		m.entry = *cfg.Open
		m.prepareStart()
	}
	return m
}

// Init starts the lab when one was chosen on the command line.
func (m Model) Init() tea.Cmd {
	if m.phase == phaseStarting {
		return m.startCmds()
	}
	return nil
}

// Messages. Every one that comes from a lab names what it came from, so a
// message from an old watcher or an old start is ignored.
type (
	progressMsg struct {
		ch   chan string
		text string
		done bool
	}
	startedMsg struct {
		lab    *lab.Lab
		lesson Lesson
		err    error
	}
	watchMsg struct {
		w       *lab.Watcher
		history []lab.Event
	}
	eventsMsg struct {
		w      *lab.Watcher
		events []lab.Event
		closed bool
	}
	doneMsg struct {
		text string
		err  error
	}
	checkMsg struct {
		step    int
		results []CheckResult
		err     error
	}
	enterMsg struct {
		step int
		err  error
	}
	closedMsg struct{ err error }
	// trafficMsg ends a burst: its summary, and the attempts no node saw
	// (node → fan-out column → count) for the service and protocol.
	trafficMsg struct {
		doneMsg
		service, proto string
		unseen         map[string]map[string]int64
	}
)

// unseenKey is a service and protocol's fan-out, for Model.unseen.
type unseenKey struct{ service, proto string }

// prepareStart makes what a start of m.entry reports through: its
// progress channel and the context q cancels. New calls it for Open (Init
// cannot change the model), the picker's Enter for the chosen entry.
func (m *Model) prepareStart() {
	m.progCh = make(chan string, 16)
	m.progress = nil
	m.startCtx, m.cancelStart = context.WithCancel(m.ctx)
}

// startCmds starts m.entry: the start itself, reading its progress and the
// spinner.
func (m Model) startCmds() tea.Cmd {
	ch, ctx, entry, own := m.progCh, m.startCtx, m.entry, m.owner
	start := func() tea.Msg {
		defer close(ch)
		if !own.begin() {
			return startedMsg{err: errors.New("the UI ended before the lab started")}
		}
		defer own.wg.Done()
		report := func(s string) {
			select {
			case ch <- s:
			default: // a slow UI skips a progress line, never the start
			}
		}
		l, lesson, err := entry.Start(ctx, report)
		if err != nil {
			return startedMsg{err: err}
		}
		if !own.add(l) {
			return startedMsg{err: errors.New("the UI ended while the lab was starting")}
		}
		return startedMsg{lab: l, lesson: lesson}
	}
	return tea.Batch(start, readProgress(ch), m.spin.Tick)
}

func readProgress(ch chan string) tea.Cmd {
	return func() tea.Msg {
		s, ok := <-ch
		return progressMsg{ch: ch, text: s, done: !ok}
	}
}

// watchCmd watches the lab: a snapshot, the history before it (for the
// events pane), then the events.
func watchCmd(l *lab.Lab) tea.Cmd {
	return func() tea.Msg {
		w := l.Watch()
		var hist []lab.Event
		for _, e := range l.Events() {
			if e.Seq <= w.State.Seq {
				hist = append(hist, e)
			}
		}
		return watchMsg{w: w, history: hist}
	}
}

// waitEvents is the re-arming command: it waits for the next event, then
// takes every event already queued behind it (up to 256), so a burst of
// flows is one update, not hundreds.
func waitEvents(w *lab.Watcher) tea.Cmd {
	return func() tea.Msg {
		e, ok := <-w.Events
		if !ok {
			return eventsMsg{w: w, closed: true}
		}
		evs := []lab.Event{e}
		for len(evs) < 256 {
			select {
			case e, ok := <-w.Events:
				if !ok {
					return eventsMsg{w: w, events: evs, closed: true}
				}
				evs = append(evs, e)
			default:
				return eventsMsg{w: w, events: evs}
			}
		}
		return eventsMsg{w: w, events: evs}
	}
}

// Update is the state machine.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		m.prompt.Width = max(10, msg.Width-20)
		return m, nil
	case spinner.TickMsg:
		if m.phase == phaseStarting || m.phase == phaseClosing || m.busy > 0 {
			var cmd tea.Cmd
			m.spin, cmd = m.spin.Update(msg)
			return m, cmd
		}
		return m, nil
	case progressMsg:
		if msg.ch != m.progCh || msg.done {
			return m, nil
		}
		m.progress = append(m.progress, msg.text)
		return m, readProgress(msg.ch)
	case startedMsg:
		if m.phase != phaseStarting {
			return m, nil
		}
		if msg.err != nil {
			m.phase, m.err = phaseError, msg.err
			return m, nil
		}
		m.phase = phaseRunning
		m.lab, m.lesson = msg.lab, msg.lesson
		m.fanBase, m.unseen = nil, map[unseenKey]map[string]map[string]int64{} // a new lab's flows
		m.step, m.hints = 0, 0
		hint := m.cfg.Hint
		if m.cfg.HintFor != nil {
			hint = m.cfg.HintFor(m.lab)
		}
		if hint != "" {
			m.setStatus(hint, false)
		}
		var cmds []tea.Cmd
		cmds = append(cmds, watchCmd(m.lab))
		if len(m.lesson.Steps()) > 0 {
			m.focus = paneTopology
			cmds = append(cmds, m.enterCmd(0))
		}
		return m, tea.Batch(cmds...)
	case watchMsg:
		if m.lab == nil || m.phase != phaseRunning {
			return m, func() tea.Msg { msg.w.Stop(); return nil }
		}
		m.watcher = msg.w
		m.state = msg.w.State
		if len(msg.history) > 0 {
			m.log = tail(append(m.log[:0:0], msg.history...), maxLog)
		}
		m.fixSelection()
		return m, m.rearm(msg.w)
	case eventsMsg:
		if msg.w != m.watcher {
			return m, nil
		}
		for _, e := range msg.events {
			m.state.Apply(e)
			m.log = append(m.log, e)
		}
		m.log = tail(m.log, maxLog)
		m.fixSelection()
		if !msg.closed {
			return m, m.rearm(msg.w)
		}
		m.watcher = nil
		if errors.Is(msg.w.Err(), lab.ErrFellBehind) && m.phase == phaseRunning {
			m.setStatus("events came faster than the screen: took a fresh snapshot", false)
			return m, watchCmd(m.lab)
		}
		return m, nil
	case doneMsg:
		m.busy = max(0, m.busy-1)
		if msg.err != nil {
			m.setStatus(errorText(msg.err), true)
		} else {
			m.setStatus(msg.text, false)
		}
		return m, nil
	case trafficMsg:
		for node, cols := range msg.unseen {
			k := unseenKey{msg.service, msg.proto}
			if m.unseen[k] == nil {
				m.unseen[k] = map[string]map[string]int64{}
			}
			if m.unseen[k][node] == nil {
				m.unseen[k][node] = map[string]int64{}
			}
			for col, n := range cols {
				m.unseen[k][node][col] += n
			}
		}
		return m.Update(msg.doneMsg)
	case checkMsg:
		m.busy = max(0, m.busy-1)
		m.checks[msg.step] = msg.results
		m.checked[msg.step] = msg.err
		if msg.err != nil {
			m.setStatus("check: "+msg.err.Error(), true)
		} else {
			pass := 0
			for _, r := range msg.results {
				if r.Pass {
					pass++
				}
			}
			m.setStatus(fmt.Sprintf("step %d: %d of %d checks pass", msg.step+1, pass, len(msg.results)), pass != len(msg.results))
		}
		return m, nil
	case enterMsg:
		m.busy = max(0, m.busy-1)
		if msg.err != nil {
			m.setStatus(fmt.Sprintf("step %d: %v", msg.step+1, msg.err), true)
		}
		return m, nil
	case closedMsg:
		return m, tea.Quit
	case tea.KeyMsg:
		return m.key(msg)
	}
	if m.prompting {
		var cmd tea.Cmd
		m.prompt, cmd = m.prompt.Update(msg)
		return m, cmd
	}
	return m, nil
}

func tail[T any](s []T, n int) []T {
	if len(s) > n {
		return slices.Clone(s[len(s)-n:])
	}
	return s
}

func (m *Model) setStatus(s string, isErr bool) { m.status, m.statErr = s, isErr }

// errorText is an error as the status line shows it: a kernel without
// netem gets a sentence saying so.
func errorText(err error) string {
	switch {
	case errors.Is(err, plane.ErrNotSupported):
		// The sentence first: the status line is one line, and the error
		// after it is long.
		return "not possible on this kernel: delay and loss need the netem qdisc (modprobe sch_netem, or use the course VM): " + err.Error()
	case errors.Is(err, lab.ErrNoDataPlane):
		return "this lab has no data plane: pods do not really run here, so there is no traffic and no link to break"
	}
	return err.Error()
}

// key handles a key in the current phase.
func (m Model) key(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if k.String() == "ctrl+c" {
		return m.quit()
	}
	switch m.phase {
	case phasePicker:
		n := len(m.cfg.Entries)
		switch {
		case key.Matches(k, m.keys.Up):
			if m.pick > 0 {
				m.pick--
			}
		case key.Matches(k, m.keys.Down):
			if m.pick < n-1 {
				m.pick++
			}
		case key.Matches(k, m.keys.Explain):
			if n == 0 {
				return m, nil
			}
			m.entry = m.cfg.Entries[m.pick]
			m.phase = phaseStarting
			m.prepareStart()
			return m, m.startCmds()
		case key.Matches(k, m.keys.Quit), key.Matches(k, m.keys.Esc):
			return m.quit()
		}
		return m, nil
	case phaseStarting, phaseClosing:
		if key.Matches(k, m.keys.Quit) {
			return m.quit()
		}
		return m, nil
	case phaseError:
		return m.quit()
	}
	return m.runningKey(k)
}

// quit removes the lab (in a command, behind the spinner), then quits.
func (m Model) quit() (tea.Model, tea.Cmd) {
	if m.phase == phaseClosing {
		return m, nil
	}
	m.phase = phaseClosing
	if m.cancelStart != nil {
		m.cancelStart() // a lab still being built stops building
	}
	own, w := m.owner, m.watcher
	m.watcher = nil
	return m, tea.Batch(m.spin.Tick, func() tea.Msg {
		if w != nil {
			w.Stop()
		}
		return closedMsg{err: own.closeAll()}
	})
}

// runningKey is a key on the running lab.
func (m Model) runningKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if m.prompting {
		switch k.String() {
		case "esc":
			m.prompting = false
			m.prompt.Blur()
			return m, nil
		case "enter":
			m.prompting = false
			m.prompt.Blur()
			path := strings.TrimSpace(m.prompt.Value())
			if path == "" {
				return m, nil
			}
			return m.act("applying "+path, m.applyFileCmd(path))
		}
		var cmd tea.Cmd
		m.prompt, cmd = m.prompt.Update(k)
		return m, cmd
	}
	if m.explain != nil {
		if key.Matches(k, m.keys.Quit) {
			return m.quit()
		}
		switch {
		case key.Matches(k, m.keys.Esc, m.keys.Explain):
			m.explain = nil
		case key.Matches(k, m.keys.Up):
			m.explainOff = max(0, m.explainOff-1)
		case key.Matches(k, m.keys.Down):
			m.explainOff = min(m.explainOff+1, m.explainMaxOff())
		}
		return m, nil
	}
	if m.fullHelp && !key.Matches(k, m.keys.Quit) {
		m.fullHelp = false
		return m, nil
	}
	keys := m.keys
	switch {
	case key.Matches(k, keys.Quit):
		return m.quit()
	case key.Matches(k, keys.Help):
		m.fullHelp = true
	case key.Matches(k, keys.Tab):
		m.focus = (m.focus + 1) % numPanes
		if m.focus == paneLesson {
			m.lessonBig = true
		}
	case key.Matches(k, keys.ShiftTab):
		m.focus = (m.focus + numPanes - 1) % numPanes
	case key.Matches(k, keys.Up):
		m.move(-1)
	case key.Matches(k, keys.Down):
		m.move(+1)
	case key.Matches(k, keys.Esc):
		m.lessonBig = false
		m.evSel = 0
	case key.Matches(k, keys.Proto):
		m.proto = nextProto(m.proto, m.protocols())
		m.setStatus("traffic protocol: "+m.proto, false)
	case key.Matches(k, keys.Traffic):
		node, ok := m.selectedNode()
		if !ok {
			m.setStatus("select a node first (↑/↓ in the topology pane)", true)
			return m, nil
		}
		return m.traffic([]lab.NodeState{node})
	case key.Matches(k, keys.TrafficAll):
		return m.traffic(m.state.Nodes)
	case key.Matches(k, keys.DeletePod):
		return m.podFault(func(p lab.PodState) lab.Fault { return lab.Fault{Kind: lab.FaultDeletePod, Pod: p.Name} })
	case key.Matches(k, keys.Ready):
		return m.podFault(func(p lab.PodState) lab.Fault {
			if p.ForcedUnready {
				return lab.Fault{Kind: lab.FaultPodReady, Pod: p.Name}
			}
			return lab.Fault{Kind: lab.FaultPodUnready, Pod: p.Name}
		})
	case key.Matches(k, keys.App):
		return m.podFault(func(p lab.PodState) lab.Fault {
			if p.AppStopped {
				return lab.Fault{Kind: lab.FaultStartApp, Pod: p.Name}
			}
			return lab.Fault{Kind: lab.FaultStopApp, Pod: p.Name}
		})
	case key.Matches(k, keys.Link):
		return m.nodeFault(func(n lab.NodeState) lab.Fault {
			if n.LinkUp {
				return lab.Fault{Kind: lab.FaultLinkDown, Node: n.Name}
			}
			return lab.Fault{Kind: lab.FaultLinkUp, Node: n.Name}
		})
	case key.Matches(k, keys.Impair):
		return m.nodeFault(func(n lab.NodeState) lab.Fault {
			if n.Impairment.IsZero() {
				return lab.Fault{Kind: lab.FaultImpair, Node: n.Name, Impairment: DefaultImpairment}
			}
			return lab.Fault{Kind: lab.FaultClearImpair, Node: n.Name}
		})
	case key.Matches(k, keys.Policy):
		return m.togglePolicy()
	case key.Matches(k, keys.ScaleUp):
		return m.scale(+1)
	case key.Matches(k, keys.ScaleDown):
		return m.scale(-1)
	case key.Matches(k, keys.Apply):
		m.prompting = true
		m.prompt.SetValue("")
		return m, m.prompt.Focus()
	case key.Matches(k, keys.Check):
		return m.check()
	case key.Matches(k, keys.Hint):
		steps := m.steps()
		if m.step >= len(steps) || len(steps[m.step].Hints) == 0 {
			m.setStatus("this step has no hints", false)
			return m, nil
		}
		if m.hints < len(steps[m.step].Hints) {
			m.hints++
		} else {
			m.setStatus("no more hints for this step", false)
		}
	case key.Matches(k, keys.Next):
		return m.goStep(m.step + 1)
	case key.Matches(k, keys.Prev):
		return m.goStep(m.step - 1)
	case key.Matches(k, keys.Explain):
		if f := m.flowToExplain(); f != nil {
			m.explain, m.explainOff = f, 0
		} else {
			m.setStatus("no flow to explain yet: send traffic with t or T", false)
		}
	}
	return m, nil
}

// DefaultImpairment is what l puts on a node's link: tc qdisc add dev eth0
// root netem delay 100ms 20ms loss 10%.
var DefaultImpairment = plane.Impairment{Delay: 100 * time.Millisecond, Jitter: 20 * time.Millisecond, LossPercent: 10}

// act starts a long action: the spinner runs until its doneMsg.
func (m Model) act(label string, cmd tea.Cmd) (tea.Model, tea.Cmd) {
	m.busy++
	m.setStatus(label+"…", false)
	if m.busy == 1 {
		return m, tea.Batch(cmd, m.spin.Tick)
	}
	return m, cmd
}

func (m Model) traffic(nodes []lab.NodeState) (tea.Model, tea.Cmd) {
	svc, ok := m.state.Services[m.svcSel]
	if !ok {
		m.setStatus("no service selected (Tab to the services pane)", true)
		return m, nil
	}
	port := nodePortFor(svc, m.proto)
	if port == 0 {
		m.setStatus(fmt.Sprintf("service %s has no %s nodePort (p switches protocol)", svc.Name, m.proto), true)
		return m, nil
	}
	var targets []netip.AddrPort
	var names []string
	for _, n := range nodes {
		targets = append(targets, netip.AddrPortFrom(n.IP, uint16(port)))
		names = append(names, n.Name)
	}
	l, ctx, proto, svcName := m.lab, m.ctx, m.proto, svc.Name
	label := fmt.Sprintf("%d %s requests to %s:%d", burst, proto, strings.Join(names, ","), port)
	return m.act("sending "+label, func() tea.Msg {
		res, unseen, err := sendBurst(ctx, l, proto, targets, nodes)
		if err != nil && res.Sent == 0 {
			return doneMsg{err: err}
		}
		return trafficMsg{doneMsg: doneMsg{text: label + ": " + resultSummary(res)}, service: svcName, proto: proto, unseen: unseen}
	})
}

// sendBurst sends burst requests from the client over targets (8 at a
// time, 2s each) with lab.Traffic, and counts the attempts that have no
// flow (a node no request reached), which the fan-out would miss: unseen
// counts them by the node they were sent to (nodes[i] is targets[i]'s)
// and the fan-out column of their result.
func sendBurst(ctx context.Context, l *lab.Lab, proto string, targets []netip.AddrPort, nodes []lab.NodeState) (lab.TrafficResult, map[string]map[string]int64, error) {
	unseen := map[string]map[string]int64{}
	nodeOf := map[netip.AddrPort]string{}
	for i, t := range targets {
		nodeOf[t] = nodes[i].Name
	}
	res, err := l.Traffic(ctx, lab.TrafficSpec{From: plane.ClientHost, Protocol: proto, Targets: targets,
		Count: burst, Concurrency: 8, Timeout: 2 * time.Second,
		OnReply: func(target netip.AddrPort, rep plane.Reply) {
			col := failColumn(rep.Result)
			if rep.Flow != nil || col == "" {
				return
			}
			node := nodeOf[target]
			if unseen[node] == nil {
				unseen[node] = map[string]int64{}
			}
			unseen[node][col]++
		}})
	return res, unseen, err
}

func resultSummary(res lab.TrafficResult) string {
	var parts []string
	for _, r := range []plane.FlowResult{plane.FlowOK, plane.FlowRefused, plane.FlowReset, plane.FlowDropped, plane.FlowTimedOut, plane.FlowError} {
		if n := res.PerResult[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, r))
		}
	}
	if len(parts) == 0 {
		return "nothing sent"
	}
	return strings.Join(parts, ", ")
}

func (m Model) podFault(mk func(lab.PodState) lab.Fault) (tea.Model, tea.Cmd) {
	p, ok := m.selectedPod()
	if !ok {
		m.setStatus("select a pod first (↑/↓ in the topology pane)", true)
		return m, nil
	}
	return m.inject(mk(p))
}

func (m Model) nodeFault(mk func(lab.NodeState) lab.Fault) (tea.Model, tea.Cmd) {
	n, ok := m.selectedNode()
	if !ok {
		m.setStatus("select a node first (↑/↓ in the topology pane)", true)
		return m, nil
	}
	return m.inject(mk(n))
}

func (m Model) inject(f lab.Fault) (tea.Model, tea.Cmd) {
	l := m.lab
	return m.act(f.String(), func() tea.Msg {
		if err := l.Inject(f); err != nil {
			return doneMsg{err: err}
		}
		return doneMsg{text: f.String()}
	})
}

func (m Model) scale(delta int) (tea.Model, tea.Cmd) {
	svc, ok := m.state.Services[m.svcSel]
	if !ok {
		m.setStatus("no service selected", true)
		return m, nil
	}
	dep, n := deploymentOf(m.state, svc)
	if dep == "" {
		m.setStatus("service "+svc.Name+" selects no Deployment's pods: nothing to scale", true)
		return m, nil
	}
	want := max(0, n+delta)
	l := m.lab
	label := fmt.Sprintf("kubectl scale deployment %s --replicas=%d", dep, want)
	return m.act(label, func() tea.Msg {
		if err := l.Scale(dep, want); err != nil {
			return doneMsg{err: err}
		}
		return doneMsg{text: fmt.Sprintf("deployment.apps/%s scaled to %d", dep, want)}
	})
}

// deploymentOf is the Deployment whose pods the Service selects (the one
// with most of them) and how many of its pods are not terminating.
func deploymentOf(s lab.State, svc lab.ServiceState) (string, int) {
	count := map[string]int{}
	for _, p := range s.Pods {
		if p.Deployment != "" && len(svc.Selector) > 0 && selects(svc.Selector, p.Labels) {
			if !p.Terminating {
				count[p.Deployment]++
			} else if _, ok := count[p.Deployment]; !ok {
				count[p.Deployment] = 0
			}
		}
	}
	best, n := "", -1
	for _, d := range sortedKeys(count) {
		if count[d] > n {
			best, n = d, count[d]
		}
	}
	return best, max(n, 0)
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (m Model) togglePolicy() (tea.Model, tea.Cmd) {
	svc, ok := m.state.Services[m.svcSel]
	if !ok {
		m.setStatus("no service selected", true)
		return m, nil
	}
	if nodePortFor(svc, "") == 0 {
		m.setStatus("externalTrafficPolicy applies to NodePort and LoadBalancer Services only", true)
		return m, nil
	}
	// The fan-out starts over: its title shows the policy, and counts
	// from before would mix the two.
	m.fanBase = map[lab.FlowKey]int64{}
	for k, c := range m.state.Flows {
		m.fanBase[k] = c.Count
	}
	for k := range m.unseen {
		if k.service == svc.Name {
			delete(m.unseen, k)
		}
	}
	l := m.lab
	return m.act("flipping externalTrafficPolicy of service/"+svc.Name+" (the fan-out counts start over)", func() tea.Msg {
		data, policy, err := policyManifest(l, svc.Name)
		if err != nil {
			return doneMsg{err: err}
		}
		var out []string
		for _, r := range l.Apply("externalTrafficPolicy-"+svc.Name+".yaml", data) {
			if r.Err != nil {
				return doneMsg{err: errors.New(r.String())}
			}
			out = append(out, r.String())
		}
		return doneMsg{text: strings.Join(out, "; ") + " (externalTrafficPolicy: " + policy + ")"}
	})
}

func (m Model) applyFileCmd(path string) tea.Cmd {
	l, read := m.lab, m.cfg.ReadFile
	return func() tea.Msg {
		data, err := read(path)
		if err != nil {
			return doneMsg{err: fmt.Errorf("the path %q does not exist or cannot be read", path)}
		}
		var lines []string
		var failed error
		for _, r := range l.Apply(path, data) {
			lines = append(lines, r.String())
			if r.Err != nil && failed == nil {
				failed = errors.New(r.String())
			}
		}
		if failed != nil {
			return doneMsg{err: errors.New(strings.Join(lines, "; "))}
		}
		return doneMsg{text: strings.Join(lines, "; ")}
	}
}

func (m Model) steps() []Step {
	if m.lesson == nil {
		return nil
	}
	return m.lesson.Steps()
}

func (m Model) check() (tea.Model, tea.Cmd) {
	steps := m.steps()
	if m.step >= len(steps) || len(steps[m.step].Checks) == 0 {
		m.setStatus("nothing to check here: this is not a task", false)
		return m, nil
	}
	l, ls, ctx, step := m.lab, m.lesson, m.ctx, m.step
	m.busy++
	m.setStatus(fmt.Sprintf("checking step %d…", step+1), false)
	return m, tea.Batch(m.spin.Tick, func() tea.Msg {
		res, err := ls.Check(ctx, l, step)
		return checkMsg{step: step, results: res, err: err}
	})
}

func (m Model) goStep(i int) (tea.Model, tea.Cmd) {
	steps := m.steps()
	if len(steps) == 0 {
		m.setStatus("a free lab has no steps", false)
		return m, nil
	}
	if i < 0 || i >= len(steps) {
		if i >= len(steps) {
			m.setStatus("that was the last step", false)
		}
		return m, nil
	}
	m.step, m.hints = i, 0
	m.setStatus("", false)
	return m, m.enterCmd(i)
}

func (m *Model) enterCmd(i int) tea.Cmd {
	l, ls, ctx := m.lab, m.lesson, m.ctx
	m.busy++
	return tea.Batch(m.spin.Tick, func() tea.Msg {
		return enterMsg{step: i, err: ls.Enter(ctx, l, i)}
	})
}

// protocols are the protocols the selected service has nodePorts for.
func (m Model) protocols() []string {
	var out []string
	if svc, ok := m.state.Services[m.svcSel]; ok {
		for _, p := range svc.Ports {
			if p.NodePort != 0 && !slices.Contains(out, string(p.Protocol)) {
				out = append(out, string(p.Protocol))
			}
		}
	}
	if len(out) == 0 {
		out = []string{"TCP", "UDP", "SCTP"}
	}
	return out
}

func nextProto(cur string, ps []string) string {
	i := slices.Index(ps, cur)
	return ps[(i+1)%len(ps)]
}

// nodePortFor is svc's nodePort for proto ("" for any).
func nodePortFor(svc lab.ServiceState, proto string) int32 {
	for _, p := range svc.Ports {
		if p.NodePort != 0 && (proto == "" || string(p.Protocol) == proto) {
			return p.NodePort
		}
	}
	return 0
}

// topoRows are the topology pane's selectable rows: each node, then its
// pods; pods with no node last.
func topoRows(s lab.State) []string {
	var rows []string
	byNode := map[string][]string{}
	for _, name := range s.PodNames() {
		byNode[s.Pods[name].Node] = append(byNode[s.Pods[name].Node], name)
	}
	for _, n := range s.Nodes {
		rows = append(rows, "node/"+n.Name)
		for _, p := range byNode[n.Name] {
			rows = append(rows, "pod/"+p)
		}
	}
	for _, p := range byNode[""] {
		rows = append(rows, "pod/"+p)
	}
	return rows
}

// fixSelection keeps every selection on something that exists: a deleted
// pod's selection moves to its node.
func (m *Model) fixSelection() {
	rows := topoRows(m.state)
	if !slices.Contains(rows, m.topoSel) {
		kind, name, _ := strings.Cut(m.topoSel, "/")
		m.topoSel = ""
		if kind == "pod" {
			for _, n := range m.state.Nodes {
				if m.lastPodNode(name) == n.Name {
					m.topoSel = "node/" + n.Name
				}
			}
		}
		if m.topoSel == "" && len(rows) > 0 {
			m.topoSel = rows[0]
		}
	}
	if _, ok := m.state.Services[m.svcSel]; !ok {
		m.svcSel = ""
		names := m.state.ServiceNames()
		for _, n := range names {
			if nodePortFor(m.state.Services[n], "") != 0 {
				m.svcSel = n
				break
			}
		}
		if m.svcSel == "" && len(names) > 0 {
			m.svcSel = names[0]
		}
		if ps := m.protocols(); !slices.Contains(ps, m.proto) {
			m.proto = ps[0]
		}
	}
}

// lastPodNode is the node a pod was last seen on, from the log.
func (m *Model) lastPodNode(pod string) string {
	for i := len(m.log) - 1; i >= 0; i-- {
		if p := m.log[i].Pod; p != nil && p.Name == pod && p.Node != "" {
			return p.Node
		}
	}
	return ""
}

// move moves the focused pane's selection.
func (m *Model) move(d int) {
	switch m.focus {
	case paneTopology:
		rows := topoRows(m.state)
		m.topoSel = moveIn(rows, m.topoSel, d)
	case paneServices:
		m.svcSel = moveIn(m.state.ServiceNames(), m.svcSel, d)
		if ps := m.protocols(); !slices.Contains(ps, m.proto) {
			m.proto = ps[0]
		}
	case paneEvents:
		// Up goes to older events; the newest is index len-1.
		idx := len(m.log) - 1
		for i, e := range m.log {
			if e.Seq == m.evSel {
				idx = i
			}
		}
		idx = min(max(idx-d, 0), len(m.log)-1)
		if idx < 0 {
			return
		}
		if idx == len(m.log)-1 {
			m.evSel = 0 // the newest: follow what comes
			return
		}
		m.evSel = m.log[idx].Seq
	case paneLesson:
		m.lessonBig = true
	}
}

func moveIn(rows []string, cur string, d int) string {
	if len(rows) == 0 {
		return ""
	}
	i := slices.Index(rows, cur)
	if i < 0 {
		return rows[0]
	}
	return rows[min(max(i+d, 0), len(rows)-1)]
}

func (m Model) selectedNode() (lab.NodeState, bool) {
	kind, name, _ := strings.Cut(m.topoSel, "/")
	if kind == "pod" {
		name = m.state.Pods[name].Node
	}
	return m.state.Node(name)
}

func (m Model) selectedPod() (lab.PodState, bool) {
	kind, name, _ := strings.Cut(m.topoSel, "/")
	if kind != "pod" {
		return lab.PodState{}, false
	}
	p, ok := m.state.Pods[name]
	return p, ok
}

// flowToExplain is the selected event when it is a flow, else the newest
// flow of the selected service, else the newest flow.
//
// In the events pane the selected event is shown whatever it is: a
// rejection's exact error is longer than a line of the pane.
func (m Model) flowToExplain() *lab.Event {
	if m.focus == paneEvents && len(m.log) > 0 {
		e := m.log[len(m.log)-1]
		for i := range m.log {
			if m.log[i].Seq == m.evSel {
				e = m.log[i]
			}
		}
		return &e
	}
	if m.evSel != 0 {
		for i := range m.log {
			if m.log[i].Seq == m.evSel && m.log[i].Flow != nil {
				e := m.log[i]
				return &e
			}
		}
	}
	var any *lab.Event
	for i := len(m.log) - 1; i >= 0; i-- {
		if f := m.log[i].Flow; f != nil {
			e := m.log[i]
			if f.Service == lab.Namespace+"/"+m.svcSel {
				return &e
			}
			if any == nil {
				any = &e
			}
		}
	}
	return any
}

// explainMaxOff is how far the explanation can scroll: its lines less the
// rows the pane has (the layout of runningView).
func (m Model) explainMaxOff() int {
	if m.explain == nil {
		return 0
	}
	footer := 2
	if m.height < 30 {
		footer = 1
	}
	room := m.height - 1 - footer - 2
	return max(0, len(m.explainLines(*m.explain, m.width-2))-room)
}

// proxyMode is the running lab's proxy mode (a scenario's cluster.proxyMode
// or the --proxy-mode of a free lab), else the configured one.
func (m Model) proxyMode() plane.ProxyMode {
	if m.lab != nil {
		return m.lab.ProxyMode()
	}
	if m.cfg.ProxyMode == "" {
		return plane.ProxyRandom
	}
	return m.cfg.ProxyMode
}
