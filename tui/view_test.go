package tui

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	bt "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/nplab/nplab/internal/golden"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/scenarios"
)

// The golden screens: a fixed lab (seeded, fixed clock), a fixed event
// sequence, the Ascii colour profile, at 80×24 and 120×40. Run with
// -update to rewrite them, then read the diff.

var sizes = [][2]int{{80, 24}, {120, 40}}

// scene is the basics lesson at step 2, after the student sent traffic to
// every node, made one pod unready, put delay on node-3 and got a refusal.
func scene(t *testing.T) *harness {
	t.Helper()
	l := defaultLab(t)
	h := running(t, l, &fakeLesson{})
	h.events(h.listening()...)
	p1, p2, p3 := h.podOn("node-1"), h.podOn("node-2"), h.podOn("node-3")
	var evs []lab.Event
	for i, node := range []string{"node-1", "node-2", "node-3"} {
		for j, pod := range []string{p1, p2, p3, p1, p2} {
			if (i+j)%4 == 3 {
				continue
			}
			evs = append(evs, h.flow(node, pod, "TCP", plane.FlowOK))
		}
	}
	evs = append(evs, h.flow("node-2", p3, "UDP", plane.FlowOK))
	h.events(evs...)
	n3, _ := h.m.state.Node("node-3")
	n3.Impairment = DefaultImpairment
	h.events(lab.Event{Type: lab.EventFault, Object: "node/node-3", Message: "node node-3: link impaired: " + DefaultImpairment.String(),
		Fault: &lab.Fault{Kind: lab.FaultImpair, Node: "node-3", Impairment: DefaultImpairment}, Node: &n3})
	if err := l.Inject(lab.Fault{Kind: lab.FaultPodUnready, Pod: p2}); err != nil {
		t.Fatal(err)
	}
	h.pump()
	h.events(h.flow("node-2", "", "TCP", plane.FlowTimedOut), h.flow("node-3", "", "TCP", plane.FlowRefused))
	h.key("n", "c")
	h.m.status = ""
	return h
}

func checkScreens(t *testing.T, name string, h *harness) {
	t.Helper()
	for _, sz := range sizes {
		h.send(bt.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		golden.Check(t, filepath.Join("testdata", fmt.Sprintf("%s-%dx%d.golden", name, sz[0], sz[1])), []byte(h.m.View()+"\n"))
	}
}

func TestGoldenRunning(t *testing.T) {
	h := scene(t)
	checkScreens(t, "running", h)
	h.key("tab", "tab", "tab") // the lesson pane, unfolded
	checkScreens(t, "lesson", h)
	h.key("shift+tab") // the events pane
	checkScreens(t, "events", h)
	h.key("tab", "tab", "tab") // the services pane
	checkScreens(t, "services", h)
}

func TestGoldenExplain(t *testing.T) {
	h := scene(t)
	h.m.focus = paneEvents
	// The oldest TCP flow: node-1 to a pod on node-2... found by walking
	// down from the newest.
	for i := 0; i < 40; i++ {
		if e := h.m.flowToExplain(); e != nil && e.Flow != nil && e.Flow.Result == plane.FlowOK && e.Flow.PodNode != e.Flow.EntryNode && e.Flow.Protocol == "TCP" {
			break
		}
		h.key("down")
	}
	h.key("enter")
	checkScreens(t, "explain-cluster", h)
	h.key("esc", "esc", "enter") // the newest: the refusal
	checkScreens(t, "explain-refused", h)
}

func TestGoldenOtherPhases(t *testing.T) {
	h := newHarness(t, Config{Entries: []Entry{
		{Name: "basics", Title: "Every node answers", Summary: "One Service, three nodes: every node opens the nodePort and forwards to every pod."},
		{Name: "local", Title: "externalTrafficPolicy: Local", Summary: "Keep the client's address, lose the nodes without a pod."},
		FreeLab(nil),
	}})
	h.key("down")
	checkScreens(t, "picker", h)

	m := New(Config{Renderer: PlainRenderer(), Open: &Entry{Title: "Every node answers"}})
	m.progress = []string{"building nodes, the client and the cluster bridge", "applying manifests"}
	checkScreens(t, "starting", &harness{t: t, m: m})

	m.phase, m.err = phaseError, errors.New(`lab "demo": 300 nodes: a lab has 1 to 250 nodes`)
	checkScreens(t, "error", &harness{t: t, m: m})

	h = scene(t)
	h.key("?")
	checkScreens(t, "help", h)
}

// Without colour every state is still on the screen: the plain screen
// has the symbols, and a colour screen is the same text once its escapes
// are gone.
func TestColourOnlyRepeatsSymbols(t *testing.T) {
	h := scene(t)
	plain := h.m.View()
	for _, sym := range []string{"●", "○", "▲", "≈", "✗", "✓", "▸", "┏"} {
		if !strings.Contains(plain, sym) {
			t.Errorf("the plain screen lacks %q", sym)
		}
	}
	r := lipgloss.NewRenderer(nil)
	r.SetColorProfile(termenv.ANSI256)
	h.m.th = newTheme(r)
	coloured := h.m.View()
	if coloured == plain {
		t.Fatal("the ANSI256 renderer drew no colour")
	}
	if got := stripANSI(coloured); got != plain {
		t.Errorf("without its escapes the colour screen differs from the plain one:\n%s\n---\n%s", got, plain)
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestPlainWanted(t *testing.T) {
	t.Setenv("TERM", "xterm-256color")
	t.Setenv("NO_COLOR", "1")
	if !plainWanted() {
		t.Error("NO_COLOR=1 not honoured")
	}
	t.Setenv("NO_COLOR", "")
	if !plainWanted() {
		t.Error("NO_COLOR set but empty is still NO_COLOR (no-color.org)")
	}
}

func TestPlainWantedDumb(t *testing.T) {
	t.Setenv("TERM", "dumb")
	if !plainWanted() {
		t.Error("TERM=dumb not honoured")
	}
}

// FreeLab with a nil factory is only for the picker golden; starting it
// would fail, which the tests never do.
var _ = context.Background

// New without a renderer honours NO_COLOR.
func TestNoColorMakesThePlainTheme(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	m := New(Config{})
	if got := m.th.ok.Render("●"); got != "●" {
		t.Errorf("under NO_COLOR the ok style draws %q", got)
	}
}

// The picker with the built-in lessons fits 80×24: whichever lesson is
// chosen, it is on the screen with its summary, and so is the way out.
func TestPickerFitsWithTheBuiltInLessons(t *testing.T) {
	var entries []Entry
	for _, name := range scenarios.Lessons {
		sc, err := scenarios.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, ScenarioEntry(sc, "demo", nil))
	}
	entries = append(entries, FreeLab(nil))
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {60, 15}} {
		h := newHarness(t, Config{Entries: entries})
		h.send(bt.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for i, e := range entries {
			v := h.m.View()
			lines := strings.Split(v, "\n")
			if len(lines) > sz[1] {
				t.Errorf("%dx%d: %d lines", sz[0], sz[1], len(lines))
			}
			if !strings.Contains(v, "▸ "+e.Name+" ") || !strings.Contains(v, "q quit") {
				t.Errorf("%dx%d: lesson %d (%s) or the keys are not on the screen:\n%s", sz[0], sz[1], i, e.Name, v)
			}
			if first := strings.Join(strings.Fields(e.Summary)[:2], " "); !strings.Contains(v, first) {
				t.Errorf("%dx%d: the summary of %s is not shown:\n%s", sz[0], sz[1], e.Name, v)
			}
			h.key("down")
		}
	}
}

// After x the fan-out has a column more (the deleted pod keeps its
// counts, its replacement gets some): the table narrows its bars so the
// refused, dropped and timed-out columns stay on the screen at 80×24 and
// 120×40.
func TestFanoutKeepsFailuresInView(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	gone := h.podOn("node-1")
	var evs []lab.Event
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		for _, p := range h.m.state.PodNames() {
			evs = append(evs, h.flow(n, p, "TCP", plane.FlowOK))
		}
	}
	h.events(evs...)
	h.selectRow("pod/" + gone)
	h.key("x")
	if len(h.m.state.Pods) != 3 {
		t.Fatalf("%d pods after x", len(h.m.state.Pods))
	}
	evs = nil
	for _, p := range h.m.state.PodNames() {
		evs = append(evs, h.flow("node-2", p, "TCP", plane.FlowOK))
	}
	evs = append(evs, h.flow("node-1", "", "TCP", plane.FlowTimedOut), h.flow("node-3", "", "TCP", plane.FlowRefused),
		h.flow("node-3", "", "TCP", plane.FlowDropped))
	h.events(evs...)
	for _, sz := range sizes {
		h.send(bt.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		v := h.m.View()
		head := ""
		for _, line := range strings.Split(v, "\n") {
			if strings.Contains(line, `entry \ pod`) {
				head = line
			}
		}
		// Four pods and three failure columns: the pods go by their own
		// suffix.
		for _, want := range []string{gone[strings.LastIndex(gone, "-")+1:], "refused", "dropped", "timeout"} {
			if !strings.Contains(head, want+" ") {
				t.Errorf("%dx%d: the fan-out's header lacks %q: %q", sz[0], sz[1], want, head)
			}
		}
		if strings.Count(v, "✗ 1") < 6 {
			t.Errorf("%dx%d: the failure counts are not all on the screen:\n%s", sz[0], sz[1], v)
		}
	}
}

// A request to a node whose link is down reaches no node, so no flow
// says it timed out; the burst's own count of it goes into the fan-out,
// in the node's row, with a line saying where it comes from.
func TestFanoutCountsWhatNoNodeSaw(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.events(h.flow("node-2", h.podOn("node-2"), "TCP", plane.FlowOK))
	h.send(trafficMsg{doneMsg: doneMsg{text: "30 TCP requests to node-1:30080: 30 timed out"}, service: "web", proto: "TCP",
		unseen: map[string]map[string]int64{"node-1": {"timeout": 30}}})
	v := m2s(h.m.fanoutLines(120))
	for _, want := range []string{"total 31", "✗ 30", "✗ 30 sent to node-1 never reached it (link down?)"} {
		if !strings.Contains(v, want) {
			t.Errorf("fan-out lacks %q:\n%s", want, v)
		}
	}
	var row string
	for _, line := range strings.Split(v, "\n") {
		if strings.HasPrefix(line, "node-1 ") {
			row = line
		}
	}
	if !strings.HasSuffix(row, "✗ 30") {
		t.Errorf("node-1's row does not end in its timeouts: %q", row)
	}
	if h.m.status != "30 TCP requests to node-1:30080: 30 timed out" || h.m.busy != 0 {
		t.Errorf("status %q busy %d", h.m.status, h.m.busy)
	}
	// Another protocol's fan-out does not show them.
	h.key("p")
	if v := m2s(h.m.fanoutLines(120)); strings.Contains(v, "never reached") {
		t.Errorf("UDP's fan-out shows TCP's unseen attempts:\n%s", v)
	}
}

// With four pods and no failure yet, the empty failure columns fold
// away before the bars do: the bars are what shows the fan-out growing.
func TestFanoutKeepsBarsBeforeEmptyColumns(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	if err := l.Scale("web", 4); err != nil {
		t.Fatal(err)
	}
	h.pump()
	var evs []lab.Event
	for _, p := range h.m.state.PodNames() {
		evs = append(evs, h.flow("node-1", p, "TCP", plane.FlowOK))
	}
	h.events(evs...)
	got := m2s(h.m.fanoutLines(78))
	if !strings.Contains(got, "█") || strings.Contains(got, "refused") || maxWidth(h.m.fanoutLines(78)) > 78 {
		t.Errorf("fan-out at 78 cells:\n%s", got)
	}
	if wide := m2s(h.m.fanoutLines(120)); !strings.Contains(wide, "refused  dropped  timeout") {
		t.Errorf("fan-out at 120 cells folds its columns:\n%s", wide)
	}
}

// TestListenPorts: a node line says which nodePorts its proxy listens on,
// and, when none, that it listens on nothing (it read "no nodePort",
// which a student took for a Service without one).
func TestListenPorts(t *testing.T) {
	l := func(port uint16, proto string, nodePort bool) plane.Listener {
		return plane.Listener{Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), port), Protocol: proto, NodePort: nodePort}
	}
	tests := []struct {
		ls   []plane.Listener
		want string
	}{
		{nil, "listens on nothing"},
		{[]plane.Listener{l(8080, "TCP", false)}, "listens on nothing"},
		{[]plane.Listener{l(30080, "TCP", true), l(30080, "UDP", true)}, "30080 tcp+udp"},
		{[]plane.Listener{l(30090, "SCTP", true), l(30080, "TCP", true)}, "30080 tcp 30090 sctp"},
	}
	for _, tt := range tests {
		if got := listenPorts(tt.ls); got != tt.want {
			t.Errorf("listenPorts(%v) = %q, want %q", tt.ls, got, tt.want)
		}
	}
}
