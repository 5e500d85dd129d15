package tui

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/charmbracelet/x/ansi"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/plane"
)

// View draws the current phase. It reads the model and nothing else.
func (m Model) View() string {
	var lines []string
	switch m.phase {
	case phasePicker:
		lines = m.pickerView()
	case phaseStarting:
		lines = m.startingView()
	case phaseError:
		lines = append([]string{m.th.bad.Render("✗ The lab could not start"), ""}, wrap(m.err.Error(), m.width-2)...)
		lines = append(lines, "", "Press any key to quit.")
	case phaseClosing:
		name := "the lab"
		if m.lab != nil {
			name = "lab " + m.state.Lab
		}
		lines = []string{m.spin.View() + " Removing " + name + "…"}
	default:
		lines = m.runningView()
	}
	for i, l := range lines {
		lines[i] = fit(l, m.width)
	}
	if len(lines) > m.height {
		lines = lines[:m.height]
	}
	return strings.Join(lines, "\n")
}

func (m Model) pickerView() []string {
	head := []string{m.th.title.Render(" nplab · choose a lesson"), ""}
	foot := []string{"", " ↑/↓ choose  ⏎ start  q quit"}
	if len(m.cfg.Entries) == 0 {
		return append(append(head, "  (no lessons)"), foot...)
	}
	nameW := 0
	for _, e := range m.cfg.Entries {
		nameW = max(nameW, len([]rune(e.Name)))
	}
	indent := strings.Repeat(" ", nameW+3)
	line := func(i int) string {
		e := m.cfg.Entries[i]
		mark := "  "
		name := fmt.Sprintf("%-*s %s", nameW, e.Name, e.Title)
		if i == m.pick {
			mark = "▸ "
			name = m.th.sel.Render(name)
		}
		return mark + name
	}
	var full []string
	for i, e := range m.cfg.Entries {
		full = append(full, line(i))
		for _, l := range wrap(e.Summary, m.width-len(indent)-2) {
			full = append(full, indent+m.th.dim.Render(l))
		}
	}
	if len(head)+len(full)+len(foot) <= m.height {
		return append(append(head, full...), foot...)
	}
	// Too short for every summary (80×24 with the built-in lessons): one
	// line per lesson, kept in view around the selection, and the chosen
	// one's summary under the list.
	var list []string
	for i := range m.cfg.Entries {
		list = append(list, line(i))
	}
	summary := append([]string{""}, wrap(m.cfg.Entries[m.pick].Summary, m.width-4)...)
	for i := range summary {
		if summary[i] != "" {
			summary[i] = "  " + m.th.dim.Render(summary[i])
		}
	}
	room := m.height - len(head) - len(foot) - len(summary)
	if room < 3 {
		summary, room = nil, m.height-len(head)-len(foot)
	}
	return append(append(append(head, scroll(list, room)...), summary...), foot...)
}

func (m Model) startingView() []string {
	out := []string{m.th.title.Render(" nplab · starting " + m.entry.Title), ""}
	for i, p := range m.progress {
		mark := m.th.ok.Render("✓")
		if i == len(m.progress)-1 {
			mark = m.spin.View()
		}
		out = append(out, " "+mark+" "+p)
	}
	if len(m.progress) == 0 {
		out = append(out, " "+m.spin.View()+" starting")
	}
	return append(out, "", " q quits (and removes what was built)")
}

// runningView lays the panes out: two columns when the terminal is wide
// and tall enough, else one column where the lower pane is the focused
// one of services, events and lesson.
func (m Model) runningView() []string {
	w, h := m.width, m.height
	header := m.header()
	footer := []string{m.statusLine(), m.help.View(m.keys)}
	if h < 30 {
		// Short: one footer line, the status when there is one (with the
		// way to the help), else the help bar.
		footer = footer[1:]
		if m.status != "" {
			footer[0] = fit(m.statusLine(), max(0, w-8)) + " ? help"
		}
	}
	if m.prompting {
		footer[0] = " " + m.prompt.View()
	}
	body := max(0, h-1-len(footer))
	var main []string
	switch {
	case m.explain != nil:
		lines := m.explainLines(*m.explain, w-2)
		off := min(m.explainOff, max(0, len(lines)-(body-2)))
		title := "Explain · " + flowTitle(m.explain.Flow)
		if len(lines) > body-2 {
			title += " · ↑/↓ scroll"
		}
		main = box(title, lines[off:], w, body, true)
	case m.fullHelp:
		main = box("Keys (any key closes)", m.fullHelpLines(w-2), w, body, true)
	case w >= 100 && h >= 30:
		main = m.wideView(w, body)
	default:
		main = m.narrowView(w, body)
	}
	out := append([]string{header}, main...)
	for len(out) < h-len(footer) {
		out = append(out, "")
	}
	return append(out, footer...)
}

func (m Model) wideView(w, h int) []string {
	leftW := max(44, w*37/100)
	rightW := w - leftW
	topo, svcs := m.topologyLines(leftW-2), m.serviceLines(leftW-2)
	fan, lesson := m.fanoutLines(rightW-2), m.lessonLines(rightW-2, true)
	// The top row gets what its panes need (at least 12 rows); the events
	// get the rest, at least 5.
	need := max(len(topo)+len(svcs), len(fan)+len(lesson)) + 4
	top := min(max(need, 12), h-5)
	evH := h - top
	topoH := min(len(topo)+2, top-4)
	left := append(box("Topology", topo, leftW, topoH, m.focus == paneTopology),
		box("Services", svcs, leftW, top-topoH, m.focus == paneServices)...)
	fanH := min(len(fan)+2, top-4)
	right := append(box(m.fanoutTitle(), fan, rightW, fanH, false),
		box(m.lessonTitle(), lesson, rightW, top-fanH, m.focus == paneLesson)...)
	return append(hjoin(left, right), box("Events", m.eventLines(evH-2), w, evH, m.focus == paneEvents)...)
}

func (m Model) narrowView(w, h int) []string {
	topo := m.topologyLines(w - 2)
	fan := m.fanoutLines(w - 2)
	if m.focus == paneServices || m.focus == paneLesson {
		// Reading the services or the lesson: they take the topology's
		// rows; the fan-out stays, to watch what a key does.
		fanH := min(len(fan)+2, h/2)
		return append(box(m.fanoutTitle(), fan, w, fanH, false), m.lowerPane(w, h-fanH)...)
	}
	lower := h - (len(topo) + 1) - (len(fan) + 2)
	if lower < 5 {
		// Too short for everything: the topology and fan-out share.
		room := max(4, h-5)
		topoH := min(len(topo)+2, room/2+1)
		fanH := room - topoH
		return append(append(box("Topology · client "+m.state.Client.String(), topo[1:], w, topoH, m.focus == paneTopology),
			box(m.fanoutTitle(), fan, w, fanH, false)...), m.lowerPane(w, h-topoH-fanH)...)
	}
	out := box("Topology · client "+m.state.Client.String(), topo[1:], w, len(topo)+1, m.focus == paneTopology)
	out = append(out, box(m.fanoutTitle(), fan, w, len(fan)+2, false)...)
	return append(out, m.lowerPane(w, h-len(out))...)
}

// lowerPane is the narrow layout's last pane: the focused one of services,
// lesson and events (events otherwise).
func (m Model) lowerPane(w, h int) []string {
	switch m.focus {
	case paneServices:
		return box("Services", m.serviceLines(w-2), w, h, true)
	case paneLesson:
		return box(m.lessonTitle(), m.lessonLines(w-2, true), w, h, true)
	}
	return box("Events · Tab: services, lesson", m.eventLines(h-2), w, h, m.focus == paneEvents)
}

func (m Model) header() string {
	left := " nplab"
	if m.lesson != nil {
		left += " · " + m.lesson.Name()
		if steps := m.steps(); len(steps) > 0 {
			left += fmt.Sprintf(" · step %d/%d %q", m.step+1, len(steps), steps[m.step].Title)
		}
	}
	ready := 0
	for _, p := range m.state.Pods {
		if p.Ready {
			ready++
		}
	}
	right := fmt.Sprintf("lab %s · %d nodes · %d/%d pods ready · traffic: %s ", m.state.Lab, len(m.state.Nodes), ready, len(m.state.Pods), m.proto)
	if m.busy > 0 {
		right = m.spin.View() + " " + right
	}
	pad := m.width - len([]rune(left)) - len([]rune(right))
	if pad < 1 {
		return m.th.title.Render(fit(left, max(0, m.width-len([]rune(right))-1))) + " " + right
	}
	return m.th.title.Render(left) + strings.Repeat(" ", pad) + right
}

func (m Model) statusLine() string {
	if m.status == "" {
		return ""
	}
	if m.statErr {
		return " " + m.th.bad.Render("✗ "+m.status)
	}
	if m.busy > 0 {
		return " " + m.spin.View() + " " + m.status
	}
	return " " + m.th.info.Render("· "+m.status)
}

// Pod states: a symbol and a word, and a colour on top.
func (m Model) podMark(p lab.PodState) (string, string) {
	switch {
	case p.Phase == corev1.PodFailed:
		return m.th.bad.Render("✗"), "Failed"
	case p.Terminating:
		return m.th.dim.Render("◌"), "Terminating"
	case p.Status == "CrashLoopBackOff" || p.Status == "Error" || strings.HasPrefix(p.Status, "Init:Error") ||
		strings.HasPrefix(p.Status, "Init:CrashLoop") || strings.HasPrefix(p.Status, "ExitCode:"):
		// What kubectl get pods says of a container the kubelet restarts.
		return m.th.bad.Render("✗"), p.Status
	case strings.HasPrefix(p.Status, "Init:") || p.Status == "Completed":
		return m.th.warn.Render("…"), p.Status
	case p.Node == "" || p.Phase == corev1.PodPending:
		return m.th.warn.Render("…"), "Pending"
	case p.Ready:
		return m.th.ok.Render("●"), "Ready"
	}
	return m.th.warn.Render("○"), "NotReady"
}

// shortPod is the name the panes show: the Deployment and the pod's own
// suffix (web-x2k9p for web-7d4b9c8f6d-x2k9p); bare pods keep their name.
func shortPod(s lab.State, name string) string {
	p, ok := s.Pods[name]
	dep := p.Deployment
	if !ok {
		// A pod that is gone: guess from the name's shape.
		parts := strings.Split(name, "-")
		if len(parts) >= 3 {
			dep = strings.Join(parts[:len(parts)-2], "-")
		}
	}
	if dep == "" {
		return name
	}
	return dep + "-" + name[strings.LastIndex(name, "-")+1:]
}

func (m Model) topologyLines(w int) []string {
	s := m.state
	out := []string{fmt.Sprintf("  %-6s %s", plane.ClientHost, s.Client)}
	rows := topoRows(s)
	unscheduled := false
	for _, r := range rows {
		extra := ""
		kind, name, _ := strings.Cut(r, "/")
		if kind == "pod" && s.Pods[name].Node == "" && !unscheduled {
			unscheduled = true
			out = append(out, "  (no node)")
		}
		mark := "  "
		if r == m.topoSel {
			mark = "▸ "
		}
		var line string
		if kind == "node" {
			n, _ := s.Node(name)
			link := m.th.ok.Render("▲ up  ")
			if !n.LinkUp {
				link = m.th.bad.Render("▼ down")
			}
			line = fmt.Sprintf("%-6s %-11s %s %s", n.Name, n.IP, link, listenPorts(n.Listeners))
			if im := n.Impairment; !im.IsZero() {
				// On a line of its own when the pane is narrow, so it is
				// not cut.
				if w >= 70 {
					line += " " + m.th.warn.Render("≈ "+im.String())
				} else {
					extra = "         " + m.th.warn.Render("≈ "+im.String())
				}
			}
		} else {
			p := s.Pods[name]
			sym, word := m.podMark(p)
			ip := "-"
			if p.IP.IsValid() {
				ip = p.IP.String()
			}
			line = fmt.Sprintf("  %s %-11s %-11s %s", sym, shortPod(s, name), ip, word)
			if p.AppStopped {
				line += " · app stopped"
			}
			if p.ForcedUnready {
				line += " · probe failing"
			}
			if p.Reason != "" && p.Node == "" {
				line += " · " + p.Reason
			}
		}
		if r == m.topoSel && m.focus == paneTopology {
			line = m.th.sel.Render(line)
		}
		out = append(out, mark+line)
		if extra != "" {
			out = append(out, extra)
		}
	}
	return out
}

// listenPorts is the nodePorts a node's proxy listens on: "30080 tcp+udp"
// ("listens on nothing" when none: not that a Service lacks a nodePort).
func listenPorts(ls []plane.Listener) string {
	protos := map[uint16][]string{}
	for _, l := range ls {
		if l.NodePort {
			p := strings.ToLower(l.Protocol)
			if !slices.Contains(protos[l.Addr.Port()], p) {
				protos[l.Addr.Port()] = append(protos[l.Addr.Port()], p)
			}
		}
	}
	if len(protos) == 0 {
		return "listens on nothing" // the words of its event
	}
	var parts []string
	for _, port := range sortedKeys(protos) {
		parts = append(parts, fmt.Sprintf("%d %s", port, strings.Join(protos[port], "+")))
	}
	return strings.Join(parts, " ")
}

// serviceLines is `kubectl get svc` (NAME TYPE CLUSTER-IP PORT(S)) with
// each Service's endpoints under it.
func (m Model) serviceLines(w int) []string {
	if out, width := m.serviceTable(false); width <= w {
		return out
	}
	out, _ := m.serviceTable(true)
	return out
}

func maxWidth(lines []string) int {
	n := 0
	for _, l := range lines {
		n = max(n, ansi.StringWidth(l))
	}
	return n
}

// serviceTable is the table; split puts PORT(S) on a line of its own, for
// a narrow pane.
func (m Model) serviceTable(split bool) ([]string, int) {
	rows := [][]string{{"  NAME", "TYPE", "CLUSTER-IP", "PORT(S)"}}
	if split {
		rows[0] = rows[0][:3]
	}
	names := m.state.ServiceNames()
	var portLines []string
	for _, n := range names {
		svc := m.state.Services[n]
		var ports []corev1.ServicePort
		for _, p := range svc.Ports {
			ports = append(ports, corev1.ServicePort{Port: p.Port, NodePort: p.NodePort, Protocol: p.Protocol})
		}
		ps := kubectl.PortString(ports)
		if ps == "" {
			ps = "<none>"
		}
		ip := svc.ClusterIP
		if ip == "" {
			ip = "<none>"
		}
		mark := "  "
		if n == m.svcSel {
			mark = "▸ "
		}
		row := []string{mark + n, string(svc.Type), ip, ps}
		if split {
			row = row[:3]
		}
		rows = append(rows, row)
		portLines = append(portLines, ps)
	}
	lines := cols(rows)
	width := maxWidth(lines)
	out := []string{lines[0]}
	for i, n := range names {
		l := lines[i+1]
		if n == m.svcSel && m.focus == paneServices {
			l = m.th.sel.Render(l)
		}
		out = append(out, l)
		if split {
			out = append(out, "    PORT(S) "+portLines[i])
		}
		svc := m.state.Services[n]
		ep := "    → " + m.endpointText(svc)
		if svc.ExternalTrafficPolicy != "" {
			ep = "    " + string(svc.ExternalTrafficPolicy) + " → " + m.endpointText(svc)
		}
		out = append(out, ep)
	}
	return out, width
}

// endpointText lists a Service's endpoints, marked by their conditions:
// ready ones plain, "○" not ready, "◌" terminating.
func (m Model) endpointText(svc lab.ServiceState) string {
	seen := map[netip.AddrPort]bool{}
	var parts []string
	for _, p := range svc.Ports {
		for _, e := range p.Endpoints {
			if seen[e.Addr] {
				continue
			}
			seen[e.Addr] = true
			s := e.Addr.String()
			switch {
			case e.Terminating:
				s = "◌" + s
			case !e.Ready:
				s = "○" + s
			}
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		if len(svc.Selector) == 0 {
			return "<none> (no selector)"
		}
		return m.th.bad.Render("<none>") + " (no pod matches, or none is ready)"
	}
	return strings.Join(parts, " ")
}

func (m Model) eventLines(n int) []string {
	if n <= 0 {
		return nil
	}
	// Newest first, so the pane shows the latest; the selection is kept in
	// view.
	start := len(m.log) - 1
	if m.evSel != 0 {
		for i := range m.log {
			if m.log[i].Seq == m.evSel && i < len(m.log)-n+1 {
				start = min(len(m.log)-1, i+n-1)
			}
		}
	}
	var out []string
	for i := start; i >= 0 && len(out) < n; i-- {
		e := m.log[i]
		mark := "  "
		selected := e.Seq == m.evSel || (m.evSel == 0 && i == len(m.log)-1 && m.focus == paneEvents)
		if selected {
			mark = "▸ "
		}
		line := fmt.Sprintf("%s %-16s %s", e.Time.Format("15:04:05"), e.Type, m.eventText(e))
		if m.width < 100 {
			line = fmt.Sprintf("%-16s %s", e.Type, m.eventText(e)) // room for the message
		}
		switch {
		case e.Type == lab.EventRejected || e.Type == lab.EventWarning || e.Type == lab.EventFailed:
			line = m.th.bad.Render(line)
		case e.Type == lab.EventFault:
			line = m.th.warn.Render(line)
		}
		if selected && m.focus == paneEvents {
			line = m.th.sel.Render(line)
		}
		out = append(out, mark+line)
	}
	if len(out) == 0 {
		out = append(out, "  (no events yet)")
	}
	return out
}

// eventText is what the events pane says of an event: a flow with its
// result first, a rejection with kubectl's exact error, an allocation with
// its value.
func (m Model) eventText(e lab.Event) string {
	switch {
	case e.Flow != nil:
		f := e.Flow
		mark := "✓"
		if f.Result != plane.FlowOK {
			mark = "✗"
		}
		return mark + " " + lab.FlowString(f)
	case e.Rejection != nil:
		return e.Rejection.Text
	case e.Alloc != nil:
		verb := "allocated"
		if e.Alloc.Released {
			verb = "released"
		}
		return fmt.Sprintf("service/%s %s %s %s", e.Alloc.Service, e.Alloc.Kind, e.Alloc.Value, verb)
	}
	if e.Object == "" || strings.HasPrefix(e.Message, e.Object) {
		return e.Message
	}
	return e.Object + ": " + e.Message
}

// Fan-out.

func (m Model) fanoutTitle() string {
	svc, ok := m.state.Services[m.svcSel]
	if !ok {
		return "Fan-out"
	}
	port := nodePortFor(svc, m.proto)
	mode := string(m.proxyMode())
	policy := string(svc.ExternalTrafficPolicy)
	if policy == "" {
		policy = "Cluster"
	}
	return fmt.Sprintf("Fan-out · service/%s · %d/%s · %s · %s", svc.Name, port, m.proto, mode, policy)
}

// failure columns of the fan-out, besides the pods.
var failCols = []struct {
	name    string
	results []plane.FlowResult
}{
	{"refused", []plane.FlowResult{plane.FlowRefused, plane.FlowReset}},
	{"dropped", []plane.FlowResult{plane.FlowDropped}},
	{"timeout", []plane.FlowResult{plane.FlowTimedOut}},
	{"error", []plane.FlowResult{plane.FlowError}},
}

// fanout is the counts of one service and protocol: per entry node, per
// pod (ok) and per failure column.
type fanout struct {
	pods  []string
	ok    map[string]map[string]int64 // node → pod → count
	fail  map[string]map[string]int64 // node → failure column → count
	saw   map[string][]netip.Addr     // pod → sources seen
	total int64
	// unseen is how many of the failures no node saw (the client sent to
	// unseenNodes and got no answer: a link down).
	unseen      int64
	unseenNodes []string
}

// failColumn is the fan-out's failure column of a result ("" for ok).
func failColumn(r plane.FlowResult) string {
	for _, col := range failCols {
		if slices.Contains(col.results, r) {
			return col.name
		}
	}
	return ""
}

func (m Model) fanout() fanout {
	f := fanout{ok: map[string]map[string]int64{}, fail: map[string]map[string]int64{}, saw: map[string][]netip.Addr{}}
	svc, ok := m.state.Services[m.svcSel]
	if !ok {
		return f
	}
	full := lab.Namespace + "/" + svc.Name
	pods := map[string]bool{}
	for _, p := range svc.Ports {
		if string(p.Protocol) == m.proto {
			for _, e := range p.Endpoints {
				pods[e.Pod] = true
			}
		}
	}
	for k, c := range m.state.Flows {
		if k.Service != full || k.Protocol != m.proto {
			continue
		}
		count := c.Count - m.fanBase[k] // since the fan-out last started over
		if count <= 0 {
			continue
		}
		f.total += count
		if k.Result == plane.FlowOK && k.Pod != "" {
			pods[k.Pod] = true
			if f.ok[k.Node] == nil {
				f.ok[k.Node] = map[string]int64{}
			}
			f.ok[k.Node][k.Pod] += count
			if c.SourceSeen.IsValid() && !slices.Contains(f.saw[k.Pod], c.SourceSeen) {
				f.saw[k.Pod] = append(f.saw[k.Pod], c.SourceSeen)
			}
			continue
		}
		if col := failColumn(k.Result); col != "" {
			if f.fail[k.Node] == nil {
				f.fail[k.Node] = map[string]int64{}
			}
			f.fail[k.Node][col] += count
		}
	}
	// What the client saw of attempts no node saw: counted the same way,
	// and said under the table.
	for node, cs := range m.unseen[unseenKey{svc.Name, m.proto}] {
		for col, n := range cs {
			if f.fail[node] == nil {
				f.fail[node] = map[string]int64{}
			}
			f.fail[node][col] += n
			f.total += n
			f.unseen += n
			if !slices.Contains(f.unseenNodes, node) {
				f.unseenNodes = append(f.unseenNodes, node)
			}
		}
	}
	slices.Sort(f.unseenNodes)
	f.pods = sortedKeys(pods)
	return f
}

// fanoutLines is the fan-out table, fitted to w cells: with a deleted
// pod's column or a fourth pod the bars get shorter; failure columns with nothing in them fold away before the bars
// go, and pods go by their suffix last, so the refused, dropped and
// timed-out counts stay on the screen.
func (m Model) fanoutLines(w int) []string {
	s := m.state
	if _, ok := s.Services[m.svcSel]; !ok {
		return []string{"no Service yet: press a to apply a manifest"}
	}
	f := m.fanout()
	shown := failCols[:3]
	for _, row := range f.fail {
		if row["error"] > 0 {
			shown = failCols
		}
	}
	var table []string
	// Bars go last but one: they are what shows the fan-out growing.
	for _, try := range []fanStyle{{bar: 5, pct: true}, {bar: 2, pct: true}, {bar: 5, pct: true, fold: true}, {bar: 2, pct: true, fold: true},
		{pct: true, fold: true}, {fold: true}, {fold: true, short: true}} {
		cs := shown
		if try.fold {
			cs = nil
			for _, c := range shown {
				for _, row := range f.fail {
					if row[c.name] > 0 {
						cs = append(cs, c)
						break
					}
				}
			}
		}
		table = m.fanoutTable(f, cs, try)
		if maxWidth(table) <= w {
			break
		}
	}
	out := append(table, m.sawLine(f))
	if f.unseen > 0 {
		out = append(out, fmt.Sprintf("✗ %d sent to %s never reached it (link down?): counted by the client", f.unseen, strings.Join(f.unseenNodes, ", ")))
	}
	if other := m.otherProtocols(); other != "" {
		out = append(out, other)
	}
	return out
}

// fanStyle is how compact the fan-out table is drawn.
type fanStyle struct {
	bar   int  // bar cells (0: counts only)
	pct   bool // each pod's share in the total row
	fold  bool // failure columns with no count folded away
	short bool // pods by their own suffix (44jcr) when they share a Deployment
}

// fanoutTable is the counts: a row per entry node, a column per pod and
// per failure column in shown, and the totals.
func (m Model) fanoutTable(f fanout, shown []struct {
	name    string
	results []plane.FlowResult
}, st fanStyle) []string {
	barW := st.bar
	s := m.state
	var maxCell int64 = 1
	for _, row := range f.ok {
		for _, c := range row {
			maxCell = max(maxCell, c)
		}
	}
	head := []string{"entry \\ pod"}
	var names []string
	deps := map[string]bool{}
	for _, p := range f.pods {
		n := shortPod(s, p)
		names = append(names, n)
		deps[n[:max(0, strings.LastIndex(n, "-"))]] = true
	}
	if st.short && len(deps) == 1 && !deps[""] {
		for i, n := range names {
			names[i] = n[strings.LastIndex(n, "-")+1:]
		}
	}
	head = append(head, names...)
	for _, c := range shown {
		head = append(head, c.name)
	}
	rows := [][]string{head}
	for _, n := range s.Nodes {
		row := []string{n.Name}
		for _, p := range f.pods {
			row = append(row, m.bar(f.ok[n.Name][p], maxCell, barW))
		}
		for _, c := range shown {
			row = append(row, m.failCell(f.fail[n.Name][c.name]))
		}
		rows = append(rows, row)
	}
	var okTotal int64
	perPod := map[string]int64{}
	for _, row := range f.ok {
		for p, c := range row {
			perPod[p] += c
			okTotal += c
		}
	}
	tot := []string{fmt.Sprintf("total %d", f.total)}
	for _, p := range f.pods {
		cell := fmt.Sprint(perPod[p])
		if okTotal > 0 && st.pct {
			cell += fmt.Sprintf(" (%d%%)", perPod[p]*100/okTotal)
		}
		tot = append(tot, cell)
	}
	for _, c := range shown {
		var n int64
		for _, row := range f.fail {
			n += row[c.name]
		}
		tot = append(tot, m.failCell(n))
	}
	return cols(append(rows, tot))
}

// otherProtocols counts the selected service's flows of the protocols not
// shown ("also UDP: 4 ok, 1 refused · p shows them"), so no traffic is
// hidden by the protocol switch.
func (m Model) otherProtocols() string {
	full := lab.Namespace + "/" + m.svcSel
	counts := map[string]map[plane.FlowResult]int64{}
	for k, c := range m.state.Flows {
		if k.Service == full && k.Protocol != m.proto {
			if counts[k.Protocol] == nil {
				counts[k.Protocol] = map[plane.FlowResult]int64{}
			}
			counts[k.Protocol][k.Result] += c.Count
		}
	}
	var parts []string
	for _, proto := range sortedKeys(counts) {
		var rs []string
		for _, r := range []plane.FlowResult{plane.FlowOK, plane.FlowRefused, plane.FlowReset, plane.FlowDropped, plane.FlowTimedOut, plane.FlowError} {
			if n := counts[proto][r]; n > 0 {
				rs = append(rs, fmt.Sprintf("%d %s", n, r))
			}
		}
		parts = append(parts, proto+": "+strings.Join(rs, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	return "also " + strings.Join(parts, "; ") + " · p shows them"
}

// bar is one fan-out cell: a bar of up to width cells that grows with the
// count, then the count.
func (m Model) bar(n, most int64, width int) string {
	if n == 0 {
		return "·"
	}
	if width <= 0 {
		return fmt.Sprint(n)
	}
	cells := int((n*int64(width) + most - 1) / most)
	return m.th.ok.Render(fmt.Sprintf("%-*s", width, strings.Repeat("█", cells))) + fmt.Sprintf(" %3d", n)
}

func (m Model) failCell(n int64) string {
	if n == 0 {
		return "·"
	}
	return m.th.bad.Render(fmt.Sprintf("✗ %d", n))
}

// sawLine says what source address the pods saw, and why.
func (m Model) sawLine(f fanout) string {
	var all []netip.Addr
	for _, p := range f.pods {
		for _, a := range f.saw[p] {
			if !slices.Contains(all, a) {
				all = append(all, a)
			}
		}
	}
	if len(all) == 0 {
		return "pods saw: (no traffic yet: t sends to the selected node, T to every node)"
	}
	slices.SortFunc(all, func(a, b netip.Addr) int { return a.Compare(b) })
	var nodes, gws, other []string
	client := false
	for _, a := range all {
		name, gw := "", ""
		for _, n := range m.state.Nodes {
			if n.IP == a {
				name = n.Name
			}
			if a == podGateway(m.state, n.Name) {
				gw = n.Name
			}
		}
		switch {
		case a == m.state.Client:
			client = true
		case name != "":
			nodes = append(nodes, name)
		case gw != "":
			gws = append(gws, gw+" "+a.String())
		default:
			other = append(other, a.String())
		}
	}
	var parts []string
	if len(nodes) > 0 {
		parts = append(parts, "the entry node's IP ("+strings.Join(nodes, ", ")+"): SNAT")
	}
	if len(gws) > 0 {
		// MASQUERADE takes the address of the interface the packet leaves
		// by: for a pod on the entry node itself, the node's side of the
		// pod network (10.244.N.1).
		parts = append(parts, "its pod-side address for a pod on it ("+strings.Join(gws, ", ")+")")
	}
	if client {
		parts = append(parts, "the client's "+m.state.Client.String()+": no SNAT")
	}
	parts = append(parts, other...)
	return "pods saw: " + strings.Join(parts, "; ")
}

// Lesson.

func (m Model) lessonTitle() string {
	steps := m.steps()
	if len(steps) == 0 {
		return "Lesson · free lab"
	}
	return fmt.Sprintf("Lesson · step %d/%d · %s", m.step+1, len(steps), steps[m.step].Title)
}

func (m Model) lessonLines(w int, full bool) []string {
	steps := m.steps()
	if len(steps) == 0 {
		return wrap("A free lab: no steps. Send traffic (t, T), break things (x, r, s, d, l, e) and watch the fan-out. a applies your own manifest; ? lists every key.", w)
	}
	st := steps[m.step]
	out := renderMarkdown(m.th, st.Text, w)
	if !full && !m.lessonBig && len(out) > 3 {
		out = append(out[:2:2], m.th.dim.Render("… (Tab to the lesson pane to read all of it)"))
	}
	res, ran := m.checks[m.step]
	if err := m.checked[m.step]; err != nil {
		out = append(out, m.th.bad.Render("✗ check failed to run: "+err.Error()))
	}
	for _, name := range st.Checks {
		if !ran {
			out = append(out, "· "+name+" (c checks)")
		}
	}
	for _, r := range res {
		if r.Pass {
			out = append(out, m.th.ok.Render("✓ ")+r.Name)
			continue
		}
		out = append(out, m.th.bad.Render("✗ ")+r.Name)
		if r.Expected != "" || r.Observed != "" {
			out = append(out, "    expected: "+r.Expected, "    observed: "+r.Observed)
		}
	}
	for i := 0; i < m.hints && i < len(st.Hints); i++ {
		out = append(out, wrap(fmt.Sprintf("Hint %d: %s", i+1, st.Hints[i]), w)...)
	}
	if left := len(st.Hints) - m.hints; left > 0 {
		out = append(out, m.th.dim.Render(fmt.Sprintf("h: a hint (%d left)", left)))
	}
	nav := "n: next step"
	if m.step == len(steps)-1 {
		nav = "the last step"
	}
	if m.step > 0 {
		nav += " · b: back"
	}
	return append(out, m.th.dim.Render(nav))
}

// renderMarkdown draws the lessons' small markdown: headings bold, bullet
// lists, **bold**; `code` keeps its backquotes, so it reads the same
// without colour.
func renderMarkdown(th theme, text string, w int) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "#"):
			out = append(out, th.bold.Render(strings.TrimSpace(strings.TrimLeft(t, "#"))))
		case strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* "):
			out = append(out, wrap("• "+strings.ReplaceAll(t[2:], "**", ""), w)...)
		case t == "":
			out = append(out, "")
		default:
			out = append(out, wrap(strings.ReplaceAll(t, "**", ""), w)...)
		}
	}
	return out
}

// fullHelpLines is `?`: one line per group of keys, wrapped to the pane.
func (m Model) fullHelpLines(w int) []string {
	names := []string{"traffic", "pods", "nodes and services", "lesson and files", "moving"}
	var out []string
	for i, group := range m.keys.FullHelp() {
		var parts []string
		for _, b := range group {
			parts = append(parts, m.th.key.Render(b.Help().Key)+" "+b.Help().Desc)
		}
		out = append(out, wrapHang(fmt.Sprintf("%-19s", names[i]), strings.Join(parts, " · "), w)...)
	}
	return append(out, "", "Esc closes an explanation and goes back to following the newest event.",
		"Enter explains the newest flow; in the events pane (Tab, ↑/↓) the selected",
		"one, or shows the selected event in full (a rejection's whole error).")
}
