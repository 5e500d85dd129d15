package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bt "github.com/charmbracelet/bubbletea"
	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// defaultLab is newLab with the default manifest applied.
func defaultLab(t *testing.T) *lab.Lab {
	t.Helper()
	l := newLab(t)
	for _, r := range l.Apply("default.yaml", lab.DefaultManifest) {
		if r.Err != nil {
			t.Fatal(r)
		}
	}
	if err := l.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

func labClosed(l *lab.Lab) bool { return errors.Is(l.Watch().Err(), lab.ErrLabClosed) }

func TestPickerStartsTheChosenLessonAndQRemovesTheLab(t *testing.T) {
	var built *lab.Lab
	mk := func(ctx context.Context) (*lab.Lab, error) {
		l, err := lab.New(lab.Config{Name: "picked", Now: func() time.Time { return fixedNow }})
		built = l
		return l, err
	}
	other := Entry{Name: "other", Title: "never started", Start: func(context.Context, func(string)) (*lab.Lab, Lesson, error) {
		t.Error("the wrong entry started")
		return nil, nil, errors.New("no")
	}}
	// The status line's first words come from HintFor, asked with the lab
	// that runs (nplab tui says how kubectl reaches it, or why it cannot).
	hintFor := func(l *lab.Lab) string { return "kubectl for lab " + l.Name() }
	h := newHarness(t, Config{Entries: []Entry{other, FreeLab(mk)}, Hint: "not this one", HintFor: hintFor})
	if h.m.phase != phasePicker {
		t.Fatalf("phase %v, want the picker", h.m.phase)
	}
	if v := h.m.View(); !strings.Contains(v, "▸ other") || !strings.Contains(v, "free lab") {
		t.Errorf("picker view:\n%s", v)
	}
	h.key("down", "down", "up", "down") // clamps at the last entry
	if h.m.pick != 1 {
		t.Fatalf("pick = %d, want 1", h.m.pick)
	}
	h.key("enter")
	if h.m.phase != phaseRunning || built == nil {
		t.Fatalf("phase %v (err %v), want running", h.m.phase, h.m.err)
	}
	if got := h.m.progress; len(got) != 2 || !strings.Contains(got[1], "applying") {
		t.Errorf("progress %q, want the two steps of the free lab", got)
	}
	if len(h.m.state.Pods) != 3 || len(h.m.log) == 0 {
		t.Errorf("state has %d pods, log %d events; want the default lab and its history", len(h.m.state.Pods), len(h.m.log))
	}
	if v := h.m.View(); !strings.Contains(v, "kubectl for lab picked") || strings.Contains(v, "not this one") {
		t.Errorf("the status line does not say HintFor's hint:\n%s", v)
	}
	h.key("q")
	if !h.quit || h.m.phase != phaseClosing {
		t.Fatalf("q: quit %v phase %v", h.quit, h.m.phase)
	}
	if !labClosed(built) {
		t.Error("q left the lab running")
	}
}

func TestStartingShowsProgressAndCtrlCRemovesTheLab(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.key("ctrl+c")
	if !h.quit || !labClosed(l) {
		t.Fatalf("ctrl+c: quit %v, lab closed %v", h.quit, labClosed(l))
	}
	if v := h.m.View(); !strings.Contains(v, "Removing lab demo") {
		t.Errorf("closing view: %q", v)
	}
}

func TestStartErrorIsShownAndAnyKeyQuits(t *testing.T) {
	entry := Entry{Name: "broken", Title: "broken", Start: func(ctx context.Context, progress func(string)) (*lab.Lab, Lesson, error) {
		progress("building nodes")
		return nil, nil, errors.New(`nplab up creates network namespaces and needs root: run it with sudo`)
	}}
	h := newHarness(t, Config{Open: &entry})
	if h.m.phase != phaseError {
		t.Fatalf("phase %v, want error", h.m.phase)
	}
	if v := h.m.View(); !strings.Contains(v, "needs root") || !strings.Contains(v, "✗ The lab could not start") {
		t.Errorf("error view:\n%s", v)
	}
	h.key("x")
	if !h.quit {
		t.Error("a key on the error screen did not quit")
	}
}

func TestStartingViewShowsWhatIsBuilt(t *testing.T) {
	m := New(Config{Renderer: PlainRenderer(), Open: &Entry{Title: "basics"}})
	ch := make(chan string, 2)
	m.progCh = ch
	next, cmd := m.Update(progressMsg{ch: ch, text: "building nodes"})
	m = next.(Model)
	next, _ = m.Update(progressMsg{ch: ch, text: "applying manifests"})
	m = next.(Model)
	if cmd == nil {
		t.Error("progress is not read again")
	}
	v := m.View()
	if !strings.Contains(v, "✓ building nodes") || !strings.Contains(v, "applying manifests") || !strings.Contains(v, "starting basics") {
		t.Errorf("starting view:\n%s", v)
	}
	// A progress message from an older start is ignored.
	next, _ = m.Update(progressMsg{ch: make(chan string), text: "stale"})
	if got := next.(Model).progress; len(got) != 2 {
		t.Errorf("stale progress taken: %q", got)
	}
}

func TestKeysOnPods(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	victim := h.podOn("node-2")
	h.selectRow("pod/" + victim)

	// r: readiness off, then on again (works without a data plane).
	h.key("r")
	if p := h.m.state.Pods[victim]; p.Ready || !p.ForcedUnready {
		t.Fatalf("after r: %+v", p)
	}
	h.send(bt.WindowSizeMsg{Width: 80, Height: 24})
	if !strings.Contains(h.m.View(), "○ web-") || !strings.Contains(h.m.View(), "NotReady · probe failing") {
		t.Errorf("an unready pod is not shown as ○ … probe failing:\n%s", h.m.View())
	}
	h.key("r")
	if p := h.m.state.Pods[victim]; !p.Ready || p.ForcedUnready {
		t.Fatalf("after r r: %+v", p)
	}
	// s: stopping an app needs a data plane; the status says so.
	h.key("s")
	if !h.m.statErr || !strings.Contains(h.m.status, "no data plane") {
		t.Errorf("s without a data plane: status %q", h.m.status)
	}
	// x: the pod is deleted, the Deployment replaces it, the selection
	// falls back to its node.
	h.key("x")
	if _, ok := h.m.state.Pods[victim]; ok {
		t.Fatalf("x did not delete %s", victim)
	}
	if len(h.m.state.Pods) != 3 {
		t.Errorf("%d pods after x, want the replacement too", len(h.m.state.Pods))
	}
	if h.m.topoSel != "node/node-2" {
		t.Errorf("selection %q after its pod went, want node/node-2", h.m.topoSel)
	}
	// x on a node: a message, no action.
	h.key("x")
	if !h.m.statErr || !strings.Contains(h.m.status, "select a pod") {
		t.Errorf("x on a node: %q", h.m.status)
	}
}

func TestKeysOnNodesNeedADataPlane(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.selectRow("node/node-3")
	for _, k := range []string{"d", "l", "t", "T"} {
		h.m.status = ""
		h.key(k)
		if !h.m.statErr || !strings.Contains(h.m.status, "no data plane") {
			t.Errorf("%s: status %q, want the no-data-plane sentence", k, h.m.status)
		}
		if h.m.busy != 0 {
			t.Errorf("%s: busy %d after its command ended", k, h.m.busy)
		}
	}
}

func TestNetemMissingIsSaidPlainly(t *testing.T) {
	err := fmt.Errorf("node node-1: link impaired: delay 100ms: %w", plane.ErrNotSupported)
	if got := errorText(err); !strings.Contains(got, "netem") || !strings.Contains(got, "not possible on this kernel") {
		t.Errorf("errorText = %q", got)
	}
	// What an 80-column status line shows of it says why.
	m := New(Config{Renderer: PlainRenderer()})
	m.setStatus(errorText(err), true)
	if got := fit(m.statusLine(), 72); !strings.Contains(got, "need the netem qdisc") {
		t.Errorf("an 80-column status line cuts the reason: %q", got)
	}
}

func TestTrafficNeedsANodePortForTheProtocol(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.key("p")
	if h.m.proto != "UDP" {
		t.Fatalf("p: proto %q, want UDP (web has TCP and UDP)", h.m.proto)
	}
	h.key("p")
	if h.m.proto != "TCP" {
		t.Fatalf("p p: proto %q, want TCP again", h.m.proto)
	}
	h.m.proto = "SCTP"
	h.key("t")
	if !strings.Contains(h.m.status, "no SCTP nodePort") {
		t.Errorf("t with SCTP: %q", h.m.status)
	}
}

func TestPolicyToggleAndScale(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	pod := h.podOn("node-2")
	h.events(h.flow("node-1", pod, "TCP", plane.FlowOK), h.flow("node-2", pod, "TCP", plane.FlowOK))
	if got := h.m.fanout().total; got != 2 {
		t.Fatalf("fan-out total %d before e, want 2", got)
	}
	h.key("e")
	// The fan-out starts over under the new policy (its title says it).
	if got := h.m.fanout().total; got != 0 || !strings.Contains(h.m.fanoutTitle(), "Local") {
		t.Errorf("after e: fan-out total %d, title %q; want 0 under Local", got, h.m.fanoutTitle())
	}
	h.events(h.flow("node-2", pod, "TCP", plane.FlowOK))
	if f := h.m.fanout(); f.total != 1 || f.ok["node-2"][pod] != 1 || f.ok["node-1"][pod] != 0 {
		t.Errorf("after e and one flow: total %d, ok %v; want only the new one", f.total, f.ok)
	}
	if got := h.m.state.Services["web"].ExternalTrafficPolicy; got != corev1.ServiceExternalTrafficPolicyLocal {
		t.Fatalf("e: policy %q (status %q)", got, h.m.status)
	}
	if !strings.Contains(h.m.status, "service/web configured") {
		t.Errorf("e: status %q", h.m.status)
	}
	if np := nodePortFor(h.m.state.Services["web"], "TCP"); np != 30080 {
		t.Errorf("e changed the nodePort to %d", np)
	}
	h.key("e")
	if got := h.m.state.Services["web"].ExternalTrafficPolicy; got != corev1.ServiceExternalTrafficPolicyCluster {
		t.Fatalf("e e: policy %q (status %q)", got, h.m.status)
	}
	h.key("+")
	if n := len(h.m.state.Pods); n != 4 {
		t.Errorf("+: %d pods, want 4 (status %q)", n, h.m.status)
	}
	h.key("-", "-")
	if n := len(h.m.state.Pods); n != 2 {
		t.Errorf("+ - -: %d pods, want 2 (status %q)", n, h.m.status)
	}
	// The kubernetes Service selects nothing: no Deployment to scale,
	// and it has no nodePort for e.
	h.m.focus = paneServices
	h.key("up")
	if h.m.svcSel != "kubernetes" {
		t.Fatalf("up in services: %q", h.m.svcSel)
	}
	h.key("+")
	if !strings.Contains(h.m.status, "nothing to scale") {
		t.Errorf("+ on kubernetes: %q", h.m.status)
	}
	h.key("e")
	if !strings.Contains(h.m.status, "NodePort and LoadBalancer") {
		t.Errorf("e on kubernetes: %q", h.m.status)
	}
}

func TestApplyPromptShowsTheExactRejection(t *testing.T) {
	l := defaultLab(t)
	files := map[string]string{"clash.yaml": `apiVersion: v1
kind: Service
metadata:
  name: backend-service
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30080
`}
	h := running(t, l, nil)
	h.m.cfg.ReadFile = func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("no such file")
	}
	h.key("a")
	if !h.m.prompting {
		t.Fatal("a did not open the prompt")
	}
	for _, r := range "clash.yaml" {
		h.key(string(r))
	}
	if !strings.Contains(h.m.View(), "apply -f clash.yaml") {
		t.Errorf("prompt not shown:\n%s", h.m.View())
	}
	h.key("enter")
	want := `The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`
	if !strings.Contains(h.m.status, want) {
		t.Errorf("status %q, want the API server's error", h.m.status)
	}
	found := false
	for _, e := range h.m.log {
		if e.Type == lab.EventRejected && strings.Contains(h.m.eventText(e), want) {
			found = true
		}
	}
	if !found {
		t.Error("the events pane has no Rejected event with the exact error")
	}
	h.key("a", "n", "o", "esc")
	if h.m.prompting || h.m.busy != 0 {
		t.Error("esc did not close the prompt without applying")
	}
	h.key("a", "m", "i", "s", "s", "enter")
	if !strings.Contains(h.m.status, `the path "miss" does not exist`) {
		t.Errorf("missing file: %q", h.m.status)
	}
}

func TestLessonKeys(t *testing.T) {
	l := defaultLab(t)
	ls := &fakeLesson{}
	h := running(t, l, ls)
	if fmt.Sprint(ls.entered) != "[0]" {
		t.Fatalf("entered %v on start, want [0]", ls.entered)
	}
	h.key("c")
	if len(ls.checked) != 0 || !strings.Contains(h.m.status, "not a task") {
		t.Errorf("c on a step without checks: checked %v, status %q", ls.checked, h.m.status)
	}
	h.key("h")
	if !strings.Contains(h.m.status, "no hints") {
		t.Errorf("h without hints: %q", h.m.status)
	}
	h.key("b")
	if h.m.step != 0 {
		t.Errorf("b on the first step moved to %d", h.m.step)
	}
	h.key("n")
	if h.m.step != 1 || fmt.Sprint(ls.entered) != "[0 1]" {
		t.Fatalf("n: step %d entered %v", h.m.step, ls.entered)
	}
	h.key("tab", "tab", "tab") // to the lesson pane
	if h.m.focus != paneLesson {
		t.Fatalf("focus %v", h.m.focus)
	}
	v := h.m.View()
	if !strings.Contains(v, "· every node reached every pod (c checks)") || !strings.Contains(v, "h: a hint (2 left)") {
		t.Errorf("lesson pane before the check:\n%s", v)
	}
	h.key("c")
	v = h.m.View()
	if !strings.Contains(v, "✗ every node reached every pod") || !strings.Contains(v, "observed: node-2 reached 2 pods") {
		t.Errorf("lesson pane after a failed check:\n%s", v)
	}
	h.key("h")
	if v := h.m.View(); !strings.Contains(v, "Hint 1: T sends to all three nodes.") || strings.Contains(v, "Hint 2") {
		t.Errorf("one hint at a time:\n%s", v)
	}
	h.key("h", "h")
	if h.m.hints != 2 || !strings.Contains(h.m.status, "no more hints") {
		t.Errorf("hints %d status %q", h.m.hints, h.m.status)
	}
	h.key("n")
	if h.m.step != 2 || h.m.hints != 0 || !strings.Contains(h.m.status, "could not set up step 3") {
		t.Errorf("n to step 3: step %d hints %d status %q", h.m.step, h.m.hints, h.m.status)
	}
	h.key("c")
	if !strings.Contains(h.m.View(), "✓ the pod was replaced") {
		t.Errorf("passing check not shown:\n%s", h.m.View())
	}
	h.key("n")
	if h.m.step != 2 || !strings.Contains(h.m.status, "last step") {
		t.Errorf("n past the end: step %d status %q", h.m.step, h.m.status)
	}
	h.key("b")
	if h.m.step != 1 {
		t.Errorf("b: step %d", h.m.step)
	}
	// The free lab has no steps.
	h2 := running(t, defaultLab(t), nil)
	h2.key("n")
	if !strings.Contains(h2.m.status, "no steps") {
		t.Errorf("n in a free lab: %q", h2.m.status)
	}
}

func TestNavigationHelpAndExplain(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	if h.m.focus != paneTopology || h.m.topoSel != "node/node-1" {
		t.Fatalf("initial focus %v selection %q", h.m.focus, h.m.topoSel)
	}
	h.key("down")
	if !strings.HasPrefix(h.m.topoSel, "pod/") {
		t.Errorf("down: %q", h.m.topoSel)
	}
	h.key("up", "up")
	if h.m.topoSel != "node/node-1" {
		t.Errorf("up clamps at the first row: %q", h.m.topoSel)
	}
	h.key("tab")
	if h.m.focus != paneServices {
		t.Errorf("tab: %v", h.m.focus)
	}
	h.key("shift+tab", "shift+tab")
	if h.m.focus != paneLesson {
		t.Errorf("shift+tab wraps: %v", h.m.focus)
	}
	h.key("?")
	if !h.m.fullHelp || !strings.Contains(h.m.View(), "Keys (any key closes)") || !strings.Contains(h.m.View(), "delay+loss") {
		t.Errorf("? shows no full help:\n%s", h.m.View())
	}
	h.key("x") // closes help, does nothing else
	if h.m.fullHelp || len(h.m.state.Pods) != 3 {
		t.Error("a key on the help screen did more than close it")
	}
	// Enter with no flow yet.
	h.key("enter")
	if h.m.explain != nil || !strings.Contains(h.m.status, "no flow to explain") {
		t.Errorf("enter without flows: %q", h.m.status)
	}
	// Two flows; select the older one in the events pane and explain it.
	pod := h.podOn("node-2")
	h.events(h.flow("node-1", pod, "TCP", plane.FlowOK), h.flow("node-3", "", "TCP", plane.FlowDropped))
	h.m.focus = paneEvents
	h.key("up") // the newest is at the top already
	if h.m.evSel != 0 {
		t.Fatal("up from the newest event moved")
	}
	h.key("down", "down")
	sel := h.m.evSel
	h.key("up")
	if h.m.evSel == sel || h.m.evSel == 0 {
		t.Fatal("up in the events pane did not move to a newer event")
	}
	h.key("down")
	if h.m.evSel != sel {
		t.Fatalf("down did not come back: %d want %d", h.m.evSel, sel)
	}
	h.key("up")
	h.key("enter")
	if h.m.explain == nil || h.m.explain.Flow.EntryNode != "node-1" {
		t.Fatalf("enter explained %+v", h.m.explain)
	}
	v := h.m.View()
	for _, want := range []string{"KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-SVC-", "KUBE-SEP-", "DNAT → 10.244.2.2:8080", "MASQUERADE", "--probability 1/3, 1/2", "userspace"} {
		if !strings.Contains(v, want) {
			t.Errorf("explain lacks %q:\n%s", want, v)
		}
	}
	h.key("esc")
	if h.m.explain != nil {
		t.Error("esc did not close the explanation")
	}
	h.key("esc") // back to following the newest
	if h.m.evSel != 0 {
		t.Errorf("esc: evSel %d", h.m.evSel)
	}
	h.key("enter")
	if h.m.explain == nil || h.m.explain.Flow.Result != plane.FlowDropped {
		t.Fatalf("enter on the newest: %+v", h.m.explain)
	}
	h.key("enter")
	if h.m.explain != nil {
		t.Error("enter did not close the explanation")
	}
	h.key("q")
	if !h.quit {
		t.Error("q did not quit")
	}
}

func TestExplainUnderLocalPolicy(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.key("e") // Local
	f := h.flow("node-1", "", "TCP", plane.FlowDropped)
	h.events(f)
	h.key("enter")
	v := strings.Join(h.m.explainLines(*h.m.explain, 200), "\n")
	for _, want := range []string{"policy Local", "KUBE-SVL-", "dropped", "times out", "answered (or dropped) the attempt itself"} {
		if !strings.Contains(v, want) {
			t.Errorf("Local drop explanation lacks %q:\n%s", want, v)
		}
	}
	h.key("esc")
	pod := h.podOn("node-1")
	ok := h.flow("node-1", pod, "TCP", plane.FlowOK)
	ok.Flow.SourceSeen = h.m.state.Client
	h.events(ok)
	h.key("enter")
	v = strings.Join(h.m.explainLines(*h.m.explain, 200), "\n")
	if strings.Contains(v, "MASQUERADE") || !strings.Contains(v, "the client itself") || !strings.Contains(v, "no KUBE-MARK-MASQ") {
		t.Errorf("Local explanation:\n%s", v)
	}
}

// Chain names are kube-proxy's: KUBE-SVC- and 16 base32 characters.
func TestChainNames(t *testing.T) {
	c := svcChain("default/web:http", "TCP")
	if len(c) != len("KUBE-SVC-")+16 || c != svcChain("default/web:http", "tcp") {
		t.Errorf("svcChain = %q", c)
	}
	if sepChain("default/web:http", "tcp", "10.244.1.2:8080") == sepChain("default/web:http", "tcp", "10.244.2.2:8080") {
		t.Error("two endpoints share a KUBE-SEP chain")
	}
}

// Every event kind is folded into the state and shown in the events pane.
func TestEveryEventKind(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	pod := h.podOn("node-1")
	p := h.m.state.Pods[pod]
	n3, _ := h.m.state.Node("node-3")
	svc := h.m.state.Services["web"]

	unready := p
	unready.Ready = false
	term := p
	term.Terminating = true
	pending := lab.PodState{Name: "big", Phase: corev1.PodPending, Reason: "0/3 nodes are available: 3 Too many pods."}
	failed := lab.PodState{Name: "crash", Node: "node-2", Phase: corev1.PodFailed}
	down := n3
	down.LinkUp = false
	down.Impairment = DefaultImpairment
	noEP := svc
	noEP.Ports = nil
	pod2 := h.podOn("node-2")
	rej := &lab.Rejection{Text: `The Service "x" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767`}

	cases := []struct {
		e    lab.Event
		show string
		then func() bool
	}{
		{lab.Event{Type: lab.EventApplied, Object: "service/web", Message: "service/web configured", Service: &svc}, "service/web configured", nil},
		{lab.Event{Type: lab.EventRejected, Object: "service/x", Message: rej.Text, Rejection: rej}, "provided port is not in the valid range", nil},
		{lab.Event{Type: lab.EventDeleted, Object: "service/old", Message: `service "old" deleted`, Removed: true}, `service "old" deleted`, nil},
		{lab.Event{Type: lab.EventScaled, Object: "deployment.apps/web", Message: "scaled to 3"}, "scaled to 3", nil},
		{lab.Event{Type: lab.EventClusterIP, Object: "service/web", Message: "x", Alloc: &lab.Allocation{Service: "web", Kind: "ClusterIP", Value: "10.96.0.10"}}, "ClusterIP 10.96.0.10 allocated", nil},
		{lab.Event{Type: lab.EventNodePort, Object: "service/web", Message: "x", Alloc: &lab.Allocation{Service: "web", Kind: "NodePort", Value: "31000", Released: true}}, "NodePort 31000 released", nil},
		{lab.Event{Type: lab.EventScheduled, Object: "pod/" + pod, Message: "Successfully assigned", Pod: &p}, "Successfully assigned", nil},
		{lab.Event{Type: lab.EventFailedScheduling, Object: "pod/big", Message: pending.Reason, Pod: &pending}, "Too many pods", func() bool { return strings.Contains(h.m.View(), "… big") }},
		{lab.Event{Type: lab.EventPodUnready, Object: "pod/" + pod, Message: "not ready", Pod: &unready}, "not ready", func() bool { return !h.m.state.Pods[pod].Ready && strings.Contains(h.m.View(), "NotReady") }},
		{lab.Event{Type: lab.EventPodReady, Object: "pod/" + pod, Message: "ready", Pod: &p}, "ready", func() bool { return h.m.state.Pods[pod].Ready }},
		{lab.Event{Type: lab.EventPodTerminating, Object: "pod/" + pod, Message: "terminating", Pod: &term}, "terminating", func() bool {
			return strings.Contains(h.m.View(), "◌ ") && strings.Contains(h.m.View(), "Terminating")
		}},
		{lab.Event{Type: lab.EventPodDeleted, Object: "pod/" + pod, Message: "deleted", Removed: true}, "deleted", func() bool { _, ok := h.m.state.Pods[pod]; return !ok }},
		{lab.Event{Type: lab.EventEndpoints, Object: "endpoints/web", Message: "http: <none>", Service: &noEP}, "http: <none>", func() bool { return len(h.m.state.Services["web"].Ports) == 0 }},
		{lab.Event{Type: lab.EventFailed, Object: "pod/crash", Message: "unknown node", Pod: &failed}, "unknown node", func() bool {
			return strings.Contains(h.m.View(), "✗ crash") && strings.Contains(h.m.View(), "Failed")
		}},
		{lab.Event{Type: lab.EventFault, Object: "node/node-3", Message: "node node-3: link down", Fault: &lab.Fault{Kind: lab.FaultLinkDown, Node: "node-3"}, Node: &down}, "link down", func() bool {
			v := h.m.View()
			return strings.Contains(v, "▼ down") && strings.Contains(v, "≈ delay 100ms 20ms loss 10%")
		}},
		{lab.Event{Type: lab.EventUpdated, Object: "service/web", Message: "service updated", Service: &svc}, "service updated", nil},
		{h.flow("node-1", pod2, "TCP", plane.FlowOK), "✓ TCP 172.18.0.100:40000 → node-1", func() bool { return h.m.state.PodCounts("web")[pod2] == 1 }},
		{lab.Event{Type: lab.EventListening, Object: "node/node-3", Message: "proxy listens on nothing", Node: &n3}, "proxy listens on nothing", nil},
		{lab.Event{Type: lab.EventNotice, Object: "pod/" + h.podOn("node-2"), Message: "nginx listens on 80 only"}, "nginx listens on 80 only", nil},
		{lab.Event{Type: lab.EventWarning, Object: "node/node-2", Message: "proxy: bind: address in use"}, "address in use", nil},
	}
	seen := map[lab.EventType]bool{}
	for _, c := range cases {
		seen[c.e.Type] = true
		h.events(c.e)
		last := h.m.log[len(h.m.log)-1]
		if last.Type != c.e.Type || !strings.Contains(h.m.eventText(last), c.show) {
			t.Errorf("%s: events pane says %q, want %q", c.e.Type, h.m.eventText(last), c.show)
		}
		if h.m.state.Seq != last.Seq {
			t.Errorf("%s: state.Seq %d, event %d", c.e.Type, h.m.state.Seq, last.Seq)
		}
		if c.then != nil && !c.then() {
			t.Errorf("%s: not folded into the view:\n%s", c.e.Type, h.m.View())
		}
	}
	for _, ty := range []lab.EventType{lab.EventApplied, lab.EventRejected, lab.EventDeleted, lab.EventScaled, lab.EventClusterIP,
		lab.EventNodePort, lab.EventScheduled, lab.EventFailedScheduling, lab.EventPodReady, lab.EventPodUnready,
		lab.EventPodTerminating, lab.EventPodDeleted, lab.EventEndpoints, lab.EventFailed, lab.EventFault,
		lab.EventUpdated, lab.EventFlow, lab.EventListening, lab.EventNotice, lab.EventWarning} {
		if !seen[ty] {
			t.Errorf("event type %s has no case", ty)
		}
	}
}

// A watcher that fell behind is replaced: a new Watch, its snapshot, and
// the events after it.
func TestFellBehindWatchesAgain(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	old := h.m.watcher
	pod := h.podOn("node-1")
	for i := 0; h.m.watcher == old && i < 3000; i++ {
		kind := lab.FaultPodUnready
		if i%2 == 1 {
			kind = lab.FaultPodReady
		}
		if err := l.Inject(lab.Fault{Kind: kind, Pod: pod}); err != nil {
			t.Fatal(err)
		}
		if old.Err() != nil {
			break
		}
	}
	if !errors.Is(old.Err(), lab.ErrFellBehind) {
		t.Fatalf("the watcher did not fall behind: %v", old.Err())
	}
	h.pump()
	if h.m.watcher == nil || h.m.watcher == old {
		t.Fatal("no new watcher")
	}
	if h.m.state.Seq != l.State().Seq {
		t.Errorf("state at %d, lab at %d", h.m.state.Seq, l.State().Seq)
	}
	if !strings.Contains(h.m.status, "fresh snapshot") {
		t.Errorf("status %q", h.m.status)
	}
}

// waitEvents blocks for the first event and takes what is queued behind
// it; a closed lab ends the watch.
func TestWaitEvents(t *testing.T) {
	l := defaultLab(t)
	w := l.Watch()
	done := make(chan bt.Msg)
	go func() { done <- waitEvents(w)() }()
	select {
	case msg := <-done:
		t.Fatalf("waitEvents returned %#v with nothing to read", msg)
	case <-time.After(20 * time.Millisecond):
	}
	if err := l.Scale("web", 5); err != nil {
		t.Fatal(err)
	}
	msg := (<-done).(eventsMsg)
	if msg.w != w || len(msg.events) == 0 || msg.closed {
		t.Errorf("got %d events, closed %v", len(msg.events), msg.closed)
	}
	_ = l.Close()
	if msg := waitEvents(w)().(eventsMsg); !msg.closed {
		t.Error("a closed lab did not end the watch")
	}
	// A closed watch that did not fall behind is not watched again.
	m := New(Config{Renderer: PlainRenderer()})
	m.phase, m.watcher, m.lab = phaseRunning, w, l
	next, cmd := m.Update(eventsMsg{w: w, closed: true})
	if cmd != nil || next.(Model).watcher != nil {
		t.Error("a watch closed by the lab was re-armed")
	}
	// Events of another watcher are ignored.
	next, _ = next.(Model).Update(eventsMsg{w: l.Watch(), events: []lab.Event{{Seq: 99}}})
	if len(next.(Model).log) != 0 {
		t.Error("an old watcher's events were taken")
	}
}

// A tiny or zero-sized terminal draws what fits and never panics, in
// every phase and overlay.
func TestTinyTerminals(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, &fakeLesson{})
	h.events(h.flow("node-1", h.podOn("node-2"), "TCP", plane.FlowOK))
	for _, sz := range [][2]int{{0, 0}, {1, 1}, {10, 3}, {20, 5}, {40, 10}} {
		h.send(bt.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for _, k := range []string{"tab", "tab", "tab", "tab", "enter", "down", "esc", "?", "esc"} {
			_ = h.m.View()
			h.key(k)
		}
		if n := len(strings.Split(h.m.View(), "\n")); sz[1] > 0 && n > sz[1] {
			t.Errorf("%dx%d: %d lines", sz[0], sz[1], n)
		}
	}
	p := newHarness(t, Config{Entries: []Entry{FreeLab(nil)}})
	p.send(bt.WindowSizeMsg{Width: 5, Height: 2})
	_ = p.m.View()
}

func TestResize(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {60, 15}, {200, 60}, {100, 30}} {
		h.send(bt.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		lines := strings.Split(h.m.View(), "\n")
		if len(lines) != sz[1] {
			t.Errorf("%dx%d: %d lines", sz[0], sz[1], len(lines))
		}
		for i, line := range lines {
			if w := len([]rune(line)); w != sz[0] {
				t.Errorf("%dx%d: line %d is %d wide: %q", sz[0], sz[1], i, w, line)
				break
			}
		}
	}
}

// At 80×24 an explanation is longer than the pane: ↑/↓ scroll it, and the
// scroll starts at the top for the next one.
func TestExplainScrolls(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.send(bt.WindowSizeMsg{Width: 80, Height: 24})
	h.events(h.flow("node-1", h.podOn("node-2"), "TCP", plane.FlowOK))
	h.key("enter")
	top := h.m.View()
	if !strings.Contains(top, "↑/↓ scroll") || strings.Contains(top, "userspace") {
		t.Fatalf("no scroll sign, or everything fits:\n%s", top)
	}
	for range 20 {
		h.key("down")
	}
	if v := h.m.View(); !strings.Contains(v, "userspace") || !strings.Contains(v, "conntrack") {
		t.Errorf("scrolled to the end, the difference is not shown:\n%s", v)
	}
	end := h.m.explainOff
	h.key("up")
	if h.m.explainOff != end-1 || end != h.m.explainMaxOff() {
		t.Errorf("up from the end (%d, max %d) went to %d", end, h.m.explainMaxOff(), h.m.explainOff)
	}
	h.key("esc", "enter")
	if h.m.explainOff != 0 {
		t.Errorf("a new explanation starts scrolled by %d", h.m.explainOff)
	}
}

// After e, applying the student's own file again works (no immutable-field
// error), keeps the clusterIP and the TCP nodePort, and — the documented
// differences from kubectl patch — resets a policy that file does not set
// and gives the UDP port, whose nodePort the file leaves to the allocator
// while TCP holds 30080, a new one.
func TestPolicyToggleThenReapply(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.key("e")
	ip := h.m.state.Services["web"].ClusterIP
	for _, r := range l.Apply("default.yaml", lab.DefaultManifest) {
		if r.Err != nil {
			t.Fatalf("re-applying after e: %v", r)
		}
	}
	h.pump()
	svc := h.m.state.Services["web"]
	if svc.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || svc.ClusterIP != ip || nodePortFor(svc, "TCP") != 30080 {
		t.Errorf("after re-apply: policy %q clusterIP %q (was %q) TCP nodePort %d", svc.ExternalTrafficPolicy, svc.ClusterIP, ip, nodePortFor(svc, "TCP"))
	}
	if np := nodePortFor(svc, "UDP"); np == 0 || np == 30080 {
		t.Errorf("UDP nodePort %d: the documented reallocation did not happen (update policyManifest's doc)", np)
	}
}

// With more pods than the topology pane has rows, the selected one stays
// on the screen.
func TestSelectionStaysInView(t *testing.T) {
	l := defaultLab(t)
	if err := l.Scale("web", 12); err != nil {
		t.Fatal(err)
	}
	h := running(t, l, nil)
	h.send(bt.WindowSizeMsg{Width: 80, Height: 24})
	rows := topoRows(h.m.state)
	last := rows[len(rows)-1]
	h.selectRow(last)
	_, name, _ := strings.Cut(last, "/")
	v := h.m.View()
	if !strings.Contains(v, "▸     ● "+shortPod(h.m.state, name)) && !strings.Contains(v, "▸   ● "+shortPod(h.m.state, name)) {
		t.Errorf("the selected pod %s is not on the screen:\n%s", name, v)
	}
	if !strings.Contains(v, "↑ ") {
		t.Errorf("no sign of the rows above:\n%s", v)
	}
}

// A pod on the entry node itself sees the node's pod-side address
// (10.244.N.1), not its node IP: MASQUERADE takes the address of the
// interface the packet leaves by. The explanation and the fan-out say so,
// as the real data plane reports it.
func TestExplainMasqueradeToALocalPod(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	n1, _ := h.m.state.Node("node-1")
	gw := n1.PodCIDR.Addr().Next()
	if gw.String() != "10.244.1.1" {
		t.Fatalf("node-1's pod-side address is %s", gw)
	}
	local := h.flow("node-1", h.podOn("node-1"), "TCP", plane.FlowOK)
	local.Flow.SourceSeen = gw
	h.events(local)
	h.key("enter")
	v := strings.Join(h.m.explainLines(*h.m.explain, 200), "\n")
	for _, want := range []string{"MASQUERADE → its source becomes 10.244.1.1, node-1's own address on its pod network",
		"it saw 10.244.1.1, the entry node's address on its pod network", "opened its own to 10.244.1.2:8080 from 10.244.1.1"} {
		if !strings.Contains(v, want) {
			t.Errorf("explanation lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "becomes 172.18.0.2") {
		t.Errorf("the explanation says the pod saw the node IP:\n%s", v)
	}
	h.key("esc")
	// A pod on another node sees the entry node's IP.
	remote := h.flow("node-1", h.podOn("node-2"), "TCP", plane.FlowOK)
	h.events(remote)
	h.key("enter")
	v = strings.Join(h.m.explainLines(*h.m.explain, 200), "\n")
	if !strings.Contains(v, "its source becomes 172.18.0.2 (node-1's eth0") || !strings.Contains(v, "it saw 172.18.0.2, the entry node, not the client") {
		t.Errorf("remote pod explanation:\n%s", v)
	}
	h.key("esc")
	if got := m2s(h.m.fanoutLines(200)); !strings.Contains(got, "pods saw: the entry node's IP (node-1): SNAT; its pod-side address for a pod on it (node-1 10.244.1.1)") {
		t.Errorf("fan-out source line:\n%s", got)
	}
}

func m2s(lines []string) string { return strings.Join(lines, "\n") }

// In a round-robin lab the service chain step says round robin (IPVS rr),
// not iptables' random probabilities, and the fan-out title says so: the
// running lab's mode (a scenario's cluster.proxyMode, or --proxy-mode),
// whatever the UI was started with.
func TestExplainRoundRobin(t *testing.T) {
	l := newLabMode(t, plane.ProxyRoundRobin)
	for _, r := range l.Apply("default.yaml", lab.DefaultManifest) {
		if r.Err != nil {
			t.Fatal(r)
		}
	}
	if err := l.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	entry := Entry{Name: "rr", Title: "rr", Start: func(context.Context, func(string)) (*lab.Lab, Lesson, error) {
		return l, freeLesson{"free", "free lab", ""}, nil
	}}
	h := newHarness(t, Config{Open: &entry, ProxyMode: plane.ProxyRandom})
	h.events(h.flow("node-1", h.podOn("node-2"), "TCP", plane.FlowOK))
	h.key("enter")
	v := strings.Join(h.m.explainLines(*h.m.explain, 200), "\n")
	if !strings.Contains(v, "round robin over 3 ready endpoints (IPVS rr") || strings.Contains(v, "--probability") {
		t.Errorf("round-robin explanation:\n%s", v)
	}
	if !strings.Contains(h.m.fanoutTitle(), "roundrobin") {
		t.Errorf("fan-out title %q", h.m.fanoutTitle())
	}
}

// A rejection's exact error is longer than a line of the events pane:
// Enter on it there shows it in full, wrapped, at 80×24.
func TestEnterShowsAnEventInFull(t *testing.T) {
	l := defaultLab(t)
	h := running(t, l, nil)
	h.send(bt.WindowSizeMsg{Width: 80, Height: 24})
	text := `The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 300081: provided port is not in the valid range. The range of valid ports is 30000-32767`
	h.events(lab.Event{Type: lab.EventRejected, Object: "service/backend-service", Message: text, Rejection: &lab.Rejection{Text: text}})
	if strings.Contains(h.m.View(), "30000-32767") {
		t.Fatal("the events pane shows the whole error already; this test needs a longer one")
	}
	h.m.focus = paneEvents
	h.key("enter")
	v := h.m.View()
	if h.m.explain == nil || !strings.Contains(v, "30000-32767") || !strings.Contains(v, "the event in full") {
		t.Errorf("enter on a rejection:\n%s", v)
	}
	if got := strings.Join(strings.Fields(strings.Join(h.m.explainLines(*h.m.explain, 78), " ")), " "); !strings.HasSuffix(got, text) {
		t.Errorf("the event in full: %q", got)
	}
	h.key("esc")
	// Elsewhere Enter still explains the newest flow, and says so when
	// there is none.
	h.m.focus = paneTopology
	h.key("enter")
	if h.m.explain != nil || !strings.Contains(h.m.status, "no flow to explain") {
		t.Errorf("enter in the topology pane without flows: %q", h.m.status)
	}
}
