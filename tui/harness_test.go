package tui

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbles/spinner"
	bt "github.com/charmbracelet/bubbletea"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// The tests drive the model as Bubble Tea would, but synchronously: every
// command runs in turn and its message goes back into Update. The watcher
// is read by drainEvents, which takes what is queued and never blocks.

var fixedNow = time.Date(2026, 11, 30, 12, 1, 0, 0, time.UTC)

// newLab is the control plane alone, seeded and with a fixed clock, so pod
// names, clusterIPs and times are the same on every run.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	return newLabMode(t, "")
}

// newLabMode is newLab with its proxies' mode.
func newLabMode(t *testing.T, mode plane.ProxyMode) *lab.Lab {
	t.Helper()
	l, err := lab.New(lab.Config{Name: "demo", Rand: rand.New(rand.NewPCG(1, 2)), Now: func() time.Time { return fixedNow }, ProxyMode: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func drainEvents(w *lab.Watcher) bt.Cmd {
	return func() bt.Msg {
		var evs []lab.Event
		for {
			select {
			case e, ok := <-w.Events:
				if !ok {
					return eventsMsg{w: w, events: evs, closed: true}
				}
				evs = append(evs, e)
			default:
				if len(evs) == 0 {
					return nil
				}
				return eventsMsg{w: w, events: evs}
			}
		}
	}
}

// harness holds a model and what its commands did.
type harness struct {
	t    *testing.T
	m    Model
	quit bool
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.Renderer == nil {
		cfg.Renderer = PlainRenderer()
	}
	m := New(cfg)
	m.rearm = drainEvents
	h := &harness{t: t, m: m}
	h.send(bt.WindowSizeMsg{Width: 120, Height: 40})
	h.run(m.Init())
	return h
}

// running is a harness on a lab that is already running lesson ls.
func running(t *testing.T, l *lab.Lab, ls Lesson) *harness {
	t.Helper()
	if ls == nil {
		ls = freeLesson{"free", "free lab", ""}
	}
	entry := Entry{Name: ls.Name(), Title: ls.Title(), Start: func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error) {
		progress("reusing the test's lab")
		return l, ls, nil
	}}
	h := newHarness(t, Config{Open: &entry})
	if h.m.phase != phaseRunning {
		t.Fatalf("phase %v after start, want running", h.m.phase)
	}
	return h
}

func (h *harness) send(msg bt.Msg) {
	h.t.Helper()
	next, cmd := h.m.Update(msg)
	h.m = next.(Model)
	h.run(cmd)
}

// run runs cmd and everything it leads to.
func (h *harness) run(cmd bt.Cmd) {
	h.t.Helper()
	if cmd == nil {
		return
	}
	msg := cmd()
	switch msg := msg.(type) {
	case nil, tea.TickMsg:
	case bt.BatchMsg:
		for _, c := range msg {
			h.run(c)
		}
	case bt.QuitMsg:
		h.quit = true
	default:
		h.send(msg)
	}
}

// pump lets the lab's controllers finish what a key started (a
// Deployment's pods come after Apply and Scale return), then feeds the
// lab's queued events to the model.
func (h *harness) pump() {
	h.t.Helper()
	if h.m.lab != nil {
		if err := h.m.lab.WaitIdle(context.Background()); err != nil && !errors.Is(err, lab.ErrClosed) {
			h.t.Fatalf("WaitIdle: %v", err)
		}
	}
	if h.m.watcher != nil {
		h.run(drainEvents(h.m.watcher))
	}
}

func (h *harness) key(keys ...string) {
	h.t.Helper()
	for _, k := range keys {
		h.send(keyMsg(k))
		h.pump()
	}
}

func keyMsg(k string) bt.KeyMsg {
	switch k {
	case "enter":
		return bt.KeyMsg{Type: bt.KeyEnter}
	case "esc":
		return bt.KeyMsg{Type: bt.KeyEsc}
	case "tab":
		return bt.KeyMsg{Type: bt.KeyTab}
	case "shift+tab":
		return bt.KeyMsg{Type: bt.KeyShiftTab}
	case "up":
		return bt.KeyMsg{Type: bt.KeyUp}
	case "down":
		return bt.KeyMsg{Type: bt.KeyDown}
	case "ctrl+c":
		return bt.KeyMsg{Type: bt.KeyCtrlC}
	}
	return bt.KeyMsg{Type: bt.KeyRunes, Runes: []rune(k)}
}

// events feeds hand-made events, numbered after the model's state.
func (h *harness) events(evs ...lab.Event) {
	h.t.Helper()
	seq := h.m.state.Seq
	for i := range evs {
		seq++
		evs[i].Seq = seq
		if evs[i].Time.IsZero() {
			evs[i].Time = fixedNow.Add(time.Duration(seq) * time.Second)
		}
	}
	h.send(eventsMsg{w: h.m.watcher, events: evs})
}

// selectRow puts the topology selection on row ("node/x", "pod/y").
func (h *harness) selectRow(row string) {
	h.t.Helper()
	for range 50 {
		if h.m.topoSel == row {
			return
		}
		h.key("down")
	}
	h.t.Fatalf("row %q not reachable; rows %v", row, topoRows(h.m.state))
}

// podOn is a pod on node.
func (h *harness) podOn(node string) string {
	for _, name := range h.m.state.PodNames() {
		if h.m.state.Pods[name].Node == node {
			return name
		}
	}
	h.t.Fatalf("no pod on %s", node)
	return ""
}

// flow is a hand-made flow from the client through node to pod.
func (h *harness) flow(node, pod, proto string, res plane.FlowResult) lab.Event {
	s := h.m.state
	n, _ := s.Node(node)
	f := &plane.Flow{Protocol: proto, Client: netip.AddrPortFrom(s.Client, 40000), EntryNode: node,
		Frontend: netip.AddrPortFrom(n.IP, 30080), Service: "default/web", PortName: "http", Result: res,
		Duration: 2 * time.Millisecond, BytesIn: 80, BytesOut: 200}
	if proto == "UDP" {
		f.PortName = "udp"
	}
	if pod != "" {
		p := s.Pods[pod]
		port := uint16(8080)
		if proto == "UDP" {
			port = 8081
		}
		f.Pod, f.PodNode, f.Backend = pod, p.Node, netip.AddrPortFrom(p.IP, port)
		if res == plane.FlowOK {
			f.SourceSeen = n.IP
		}
	}
	switch res {
	case plane.FlowRefused:
		f.Reason, f.Kernel = plane.ReasonNoEndpoints, true
	case plane.FlowDropped:
		f.Reason, f.Kernel = plane.ReasonLocalPolicy, true
	case plane.FlowTimedOut:
		f.Reason = plane.ReasonPodTimeout
	}
	return lab.Event{Type: lab.EventFlow, Object: "service/web", Message: lab.FlowString(f), Flow: f}
}

// listening is what a data plane reports when every node's proxy listens
// on web's nodePorts.
func (h *harness) listening() []lab.Event {
	var out []lab.Event
	for _, n := range h.m.state.Nodes {
		n.Listeners = []plane.Listener{
			{Protocol: "TCP", Addr: netip.MustParseAddrPort("0.0.0.0:30080"), Service: "default/web", NodePort: true},
			{Protocol: "UDP", Addr: netip.MustParseAddrPort("0.0.0.0:30080"), Service: "default/web", NodePort: true},
		}
		out = append(out, lab.Event{Type: lab.EventListening, Object: "node/" + n.Name, Message: "proxy listens on 0.0.0.0:30080/TCP, 0.0.0.0:30080/UDP", Node: &n})
	}
	return out
}

// fakeLesson is a three-step lesson whose checks pass from step 2 on.
type fakeLesson struct {
	entered []int
	checked []int
}

func (*fakeLesson) Name() string    { return "basics" }
func (*fakeLesson) Title() string   { return "Every node answers" }
func (*fakeLesson) Summary() string { return "one Service, three nodes, one nodePort" }
func (*fakeLesson) Steps() []Step {
	return []Step{
		{Title: "Look", Text: "# The lab\nThree nodes, one **Service**.\n- every node opens `30080`\n- even one without a pod"},
		{Title: "Every node answers", Text: "Press T to send traffic to every node.", Checks: []string{"every node reached every pod"},
			Hints: []string{"T sends to all three nodes.", "Watch the fan-out pane."}},
		{Title: "Break it", Text: "Press x on a pod.", Checks: []string{"the pod was replaced"}},
	}
}
func (f *fakeLesson) Enter(_ context.Context, _ *lab.Lab, i int) error {
	f.entered = append(f.entered, i)
	if i == 2 {
		return errors.New("could not set up step 3")
	}
	return nil
}
func (f *fakeLesson) Check(_ context.Context, _ *lab.Lab, i int) ([]CheckResult, error) {
	f.checked = append(f.checked, i)
	if i == 1 {
		return []CheckResult{{Name: "every node reached every pod", Pass: false, Expected: "3 nodes × 3 pods", Observed: "node-2 reached 2 pods"}}, nil
	}
	return []CheckResult{{Name: "the pod was replaced", Pass: true}}, nil
}
