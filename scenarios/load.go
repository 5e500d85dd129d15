package scenarios

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// Limits a scenario must stay within, so every run is bounded.
const (
	MaxCount       = 10000            // requests in one traffic step
	MaxConcurrency = 64               // requests in flight at once
	MaxWait        = 10 * time.Minute // a wait step's timeout
	DefaultWait    = 30 * time.Second // a wait step's timeout when not given
)

// Parse decodes and checks a scenario file. file names it in errors;
// readFile reads a manifest path the scenario names, relative to the
// scenario (nil: a manifest given by path is an error). Every problem is
// an *Error with the file, line and key, all of them together in Errors.
func Parse(file string, data []byte, readFile func(name string) ([]byte, error)) (*Scenario, error) {
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file, lines: map[string]int{}}
	sc := &Scenario{File: file, Source: data}
	d.decode(root, reflect.ValueOf(sc).Elem(), "")
	sc.lines = d.lines
	if len(d.errs) == 0 {
		v := &validator{d: d, sc: sc, readFile: readFile}
		v.scenario()
	}
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
		return nil, d.errs
	}
	return sc, nil
}

// Load reads a scenario file from disk; manifest paths are relative to its
// directory.
func Load(file string) (*Scenario, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(file)
	return Parse(file, data, func(name string) ([]byte, error) {
		if filepath.IsAbs(name) {
			return os.ReadFile(name)
		}
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	})
}

// LoadFS reads a scenario file from fsys; manifest paths are relative to
// its directory in fsys.
func LoadFS(fsys fs.FS, file string) (*Scenario, error) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, err
	}
	dir := path.Dir(file)
	return Parse(path.Base(file), data, func(name string) ([]byte, error) {
		return fs.ReadFile(fsys, path.Join(dir, name))
	})
}

// Open is what `nplab run NAME` opens: a built-in scenario by name, or
// else a file.
func Open(nameOrFile string) (*Scenario, error) {
	if IsBuiltin(nameOrFile) {
		return Builtin(nameOrFile)
	}
	sc, err := Load(nameOrFile)
	if errors.Is(err, fs.ErrNotExist) && !strings.ContainsAny(nameOrFile, "/.") {
		if m := Suggest(nameOrFile); m != "" {
			return nil, fmt.Errorf("no built-in scenario %q and no file of that name; did you mean %s? (nplab list shows the built-in ones)", nameOrFile, m)
		}
		return nil, fmt.Errorf("no built-in scenario %q and no file of that name (nplab list shows the built-in ones)", nameOrFile)
	}
	return sc, err
}

// Line is the line of a key path in the scenario file ("steps[2].traffic"),
// or 0.
func (sc *Scenario) Line(key string) int { return sc.lines[key] }

// validator checks what the decoder cannot: one action per step, values
// that make sense together, manifest files that exist.
type validator struct {
	d        *decoder
	sc       *Scenario
	readFile func(string) ([]byte, error)
}

func (v *validator) errorf(key, format string, args ...any) {
	line := v.d.lines[key]
	for k := key; line == 0 && k != ""; {
		// The key was not written (a missing value): blame its parent.
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			k = ""
		} else {
			k = k[:i]
		}
		line = v.d.lines[k]
	}
	v.d.errAt(line, key, fmt.Sprintf(format, args...))
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (v *validator) scenario() {
	sc := v.sc
	switch {
	case sc.Name == "":
		v.errorf("name", "a scenario needs a name (lower case letters, digits and '-')")
	case !nameRE.MatchString(sc.Name):
		v.errorf("name", "%q: a name has lower case letters, digits and '-', and starts and ends with a letter or digit", sc.Name)
	}
	if sc.Title == "" {
		sc.Title = sc.Name
	}
	c := sc.Cluster
	if c.Nodes < 0 || c.Nodes > plane.MaxNodes {
		v.errorf("cluster.nodes", "%d nodes: a lab has 1 to %d", c.Nodes, plane.MaxNodes)
	}
	if _, err := plane.ParseProxyMode(c.ProxyMode); err != nil {
		v.errorf("cluster.proxyMode", "%v", err)
	}
	if c.NodePortRange != "" {
		if l, err := lab.New(lab.Config{Name: "check", Nodes: 1, NodePortRange: c.NodePortRange}); err != nil {
			v.errorf("cluster.nodePortRange", "%v", err)
		} else {
			l.Close()
		}
	}
	v.manifests("manifests", sc.Manifests)
	if len(sc.Steps) == 0 {
		v.errorf("steps", "a scenario needs at least one step")
	}
	for i := range sc.Steps {
		v.step(fmt.Sprintf("steps[%d]", i), &sc.Steps[i])
	}
}

func (v *validator) manifests(key string, ms Manifests) {
	for i := range ms {
		k := key
		if len(ms) > 1 || v.d.lines[fmt.Sprintf("%s[%d]", key, i)] != 0 {
			k = fmt.Sprintf("%s[%d]", key, i)
		}
		v.manifest(k, &ms[i])
	}
}

func (v *validator) manifest(key string, m *Manifest) {
	if m.Inline != "" {
		if m.Name == "" {
			m.Name = "STDIN"
		}
		m.Data = []byte(m.Inline)
		return
	}
	if m.File == "" {
		return // reported by the decoder
	}
	m.Name = m.File
	if v.readFile == nil {
		v.errorf(key, "manifest %q: this scenario was given without its directory, so only inline manifests work", m.File)
		return
	}
	data, err := v.readFile(m.File)
	if err != nil {
		v.errorf(key, "manifest %q: %v", m.File, unwrapPathError(err))
		return
	}
	m.Data = data
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (v *validator) step(key string, st *Step) {
	if st.Name == "" {
		st.Name, _, _ = strings.Cut(strings.TrimSpace(st.Text), "\n")
	}
	var actions []string
	if st.Apply != nil || v.d.lines[key+".apply"] != 0 {
		actions = append(actions, "apply")
		if len(st.Apply) == 0 {
			v.errorf(key+".apply", "apply needs at least one manifest")
		}
		v.manifests(key+".apply", st.Apply)
	}
	if st.Delete != nil {
		actions = append(actions, "delete")
		if len(st.Delete.Objects)+len(st.Delete.Manifests) == 0 {
			v.errorf(key+".delete", "delete needs KIND/NAME or a manifest")
		}
		v.deletion(key+".delete", st.Delete)
	}
	if st.Fault != nil {
		actions = append(actions, "fault")
		v.fault(key+".fault", st.Fault)
	}
	if st.Wait != nil {
		actions = append(actions, "wait")
		v.wait(key+".wait", st.Wait)
	}
	if st.Task != nil {
		actions = append(actions, "task")
		v.task(key+".task", st.Task)
	}
	if len(actions) > 1 {
		v.errorf(key+"."+actions[1], "a step does one of apply, delete, fault, wait and task; this one also has %s (split it into two steps)", actions[0])
	}
	if st.Name == "" {
		v.errorf(key, "a step needs a name or a text")
	}
	if st.Traffic != nil {
		v.traffic(key+".traffic", st.Traffic)
	}
	v.expect(key+".expect", st, len(actions) > 0 && actions[0] != "fault" && actions[0] != "wait")
}

func (v *validator) deletion(key string, del *Deletion) {
	for i, o := range del.Objects {
		if _, ok := kinds[strings.ToLower(o.Kind)]; !ok && o.Kind != "" {
			k := key
			if len(del.Objects)+len(del.Manifests) > 1 {
				k = fmt.Sprintf("%s[%d]", key, i)
			}
			v.errorf(k, "unknown kind %q (known: deployment, pod, service)", o.Kind)
		}
	}
	v.manifests(key, del.Manifests)
}

// kinds are the kinds (and kubectl's short names) nplab has.
var kinds = map[string]string{
	"service": "Service", "services": "Service", "svc": "Service",
	"pod": "Pod", "pods": "Pod", "po": "Pod",
	"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment", "deployment.apps": "Deployment",
}

var podFaults = map[lab.FaultKind]bool{lab.FaultDeletePod: true, lab.FaultPodUnready: true, lab.FaultPodReady: true, lab.FaultStopApp: true, lab.FaultStartApp: true}
var nodeFaults = map[lab.FaultKind]bool{lab.FaultLinkDown: true, lab.FaultLinkUp: true, lab.FaultImpair: true, lab.FaultClearImpair: true}

func (v *validator) fault(key string, f *Fault) {
	k := lab.FaultKind(f.Kind)
	impaired := f.Delay != 0 || f.Jitter != 0 || f.Loss != 0 || f.Rate != 0
	switch {
	case podFaults[k]:
		if (f.Pod == "") == (f.Selector == nil) {
			v.errorf(key+".pod", "a %s fault names its pod: pod NAME, or selector (with onNode or all)", f.Kind)
		}
		if f.Pod != "" && (f.OnNode != "" || f.All) {
			v.errorf(key+".pod", "onNode and all go with selector, not with pod")
		}
		if f.Node != "" {
			v.errorf(key+".node", "node is for link faults; a pod fault picks its pod's node with onNode")
		}
		v.nodeName(key+".onNode", f.OnNode)
	case nodeFaults[k]:
		if f.Node == "" {
			v.errorf(key+".node", "a %s fault names its node", f.Kind)
		}
		v.nodeName(key+".node", f.Node)
		if f.Pod != "" || f.Selector != nil || f.OnNode != "" || f.All {
			v.errorf(key+".pod", "a %s fault is on a node, not a pod", f.Kind)
		}
	default:
		names := make([]string, 0, len(podFaults)+len(nodeFaults))
		for k := range podFaults {
			names = append(names, string(k))
		}
		for k := range nodeFaults {
			names = append(names, string(k))
		}
		sort.Strings(names)
		v.errorf(key+".kind", "unknown fault %q (known: %s)", f.Kind, strings.Join(names, ", "))
	}
	if k == lab.FaultImpair && !impaired {
		v.errorf(key, "an impair fault needs delay, jitter, loss or rate")
	}
	if k != lab.FaultImpair && impaired {
		v.errorf(key+".kind", "delay, jitter, loss and rate go with kind: impair")
	}
}

func (v *validator) nodeName(key, name string) {
	if name == "" {
		return
	}
	if _, ok := v.nodeIndex(name); !ok {
		v.errorf(key, "%q: the nodes are node-1 to node-%d", name, v.nodes())
	}
}

func (v *validator) nodes() int {
	if v.sc.Cluster.Nodes == 0 {
		return 3
	}
	return v.sc.Cluster.Nodes
}

func (v *validator) nodeIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "node-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 1 && i <= v.nodes() && strconv.Itoa(i) == s
}

func (v *validator) wait(key string, w *Wait) {
	if w.Timeout == 0 {
		w.Timeout = Duration(DefaultWait)
	}
	if time.Duration(w.Timeout) > MaxWait {
		v.errorf(key+".timeout", "%s: a wait lasts at most %s", time.Duration(w.Timeout), MaxWait)
	}
	for i := range w.Until {
		v.stateCheck(fmt.Sprintf("%s.until[%d]", key, i), &w.Until[i])
	}
}

func (v *validator) task(key string, t *Task) {
	if len(t.Solution) == 0 {
		v.errorf(key+".solution", "a task needs a solution, so that `nplab run` proves it can be solved")
	}
	v.manifests(key+".solution", t.Solution)
	for i, o := range t.Supplies {
		if _, ok := kinds[strings.ToLower(o.Kind)]; !ok {
			v.errorf(fmt.Sprintf("%s.supplies[%d]", key, i), "unknown kind %q (known: Deployment, Pod, Service)", o.Kind)
		}
	}
}

// target is a parsed Traffic.To.
type target struct {
	nodes   []string // node names; nil for a ClusterIP target
	port    int      // a literal port (0: the Service's)
	service string   // the Service whose nodePort or ClusterIP is meant
	addr    netip.Addr
}

func (v *validator) traffic(key string, t *Traffic) {
	t.Protocol = strings.ToUpper(t.Protocol)
	switch t.Protocol {
	case "":
		t.Protocol = "TCP"
	case "TCP", "UDP", "SCTP":
	default:
		v.errorf(key+".protocol", "%q: the protocols are TCP, UDP and SCTP", t.Protocol)
	}
	if t.Count == 0 {
		t.Count = 10
	}
	if t.Count < 0 || t.Count > MaxCount {
		v.errorf(key+".count", "%d: a traffic step sends 1 to %d requests", t.Count, MaxCount)
	}
	if t.Rate < 0 {
		v.errorf(key+".rate", "%g: a rate is requests per second, 0 or more", t.Rate)
	}
	if t.Concurrency == 0 {
		t.Concurrency = 4
	}
	if t.Concurrency < 0 || t.Concurrency > MaxConcurrency {
		v.errorf(key+".concurrency", "%d: 1 to %d requests at once", t.Concurrency, MaxConcurrency)
	}
	if time.Duration(t.Timeout) > time.Minute {
		v.errorf(key+".timeout", "%s: a request waits at most 1m", time.Duration(t.Timeout))
	}
	if t.From == "" {
		t.From = plane.ClientHost
	}
	if strings.HasPrefix(t.From, "node-") {
		v.nodeName(key+".from", t.From)
	}
	tg, err := v.parseTarget(t.To)
	if err != nil {
		v.errorf(key+".to", "%v", err)
	}
	t.tg = tg
}

// parseTarget parses a Traffic.To.
func (v *validator) parseTarget(s string) (target, error) {
	var tg target
	if s == "" {
		return tg, errors.New(`a traffic step needs a target: "node-1:30080", "node-*:30080", "node-1,node-2:30080", "node-*:SERVICE", "SERVICE[:PORT]" or "CLUSTER-IP:PORT"`)
	}
	host, port, hasPort := strings.Cut(s, ":")
	if strings.Count(s, ":") > 1 {
		return tg, fmt.Errorf("%q: only IPv4 targets (HOST:PORT)", s)
	}
	p, perr := strconv.Atoi(port)
	if hasPort && perr == nil && (p < 1 || p > 65535) {
		return tg, fmt.Errorf("%q: port %d is not 1-65535", s, p)
	}
	switch {
	case host == "node-*":
		for i := 1; i <= v.nodes(); i++ {
			tg.nodes = append(tg.nodes, fmt.Sprintf("node-%d", i))
		}
	case strings.HasPrefix(host, "node-"):
		for _, n := range strings.Split(host, ",") {
			if _, ok := v.nodeIndex(n); !ok {
				return tg, fmt.Errorf("%q: the nodes are node-1 to node-%d (or node-* for each in turn)", n, v.nodes())
			}
			tg.nodes = append(tg.nodes, n)
		}
	}
	if tg.nodes != nil {
		if !hasPort || port == "" {
			return tg, fmt.Errorf("%q: a node target needs a port: %s:30080, or %s:SERVICE for a Service's nodePort", s, host, host)
		}
		if perr == nil {
			tg.port = p
		} else if nameRE.MatchString(port) {
			tg.service = port
		} else {
			return tg, fmt.Errorf("%q: after the node comes a port or a Service name", s)
		}
		return tg, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !hasPort || perr != nil {
			return tg, fmt.Errorf("%q: an address target needs a port (10.96.0.10:80)", s)
		}
		tg.addr, tg.port = a, p
		return tg, nil
	}
	if !nameRE.MatchString(host) {
		return tg, fmt.Errorf("%q: not a node, an address or a Service name", s)
	}
	tg.service = host
	if hasPort {
		if perr != nil {
			return tg, fmt.Errorf("%q: after a Service name comes its port number", s)
		}
		tg.port = p
	}
	return tg, nil
}

var resultNames = map[string]plane.FlowResult{
	"ok": plane.FlowOK, "refused": plane.FlowRefused, "reset": plane.FlowReset,
	"dropped": plane.FlowDropped, "timed out": plane.FlowTimedOut, "error": plane.FlowError,
}

func (v *validator) expect(key string, st *Step, changes bool) {
	e := &st.Expect
	if e.Succeeds != nil && e.Error != "" {
		v.errorf(key+".error", "a step either succeeds or fails with an error, not both")
	}
	if (e.Succeeds != nil || e.Error != "") && !changes {
		k := key + ".succeeds"
		if e.Error != "" {
			k = key + ".error"
		}
		v.errorf(k, "succeeds and error check an apply, delete or task step")
	}
	traffic := e.Results != nil || e.Reaches != nil || e.Refused || e.TimesOut || e.Distribution != nil || e.SourceSeen != "" || e.Sticky
	if traffic && st.Traffic == nil {
		v.errorf(key, "results, reaches, refused, timesOut, distribution, sourceSeen and sticky check traffic: this step sends none")
	}
	if e.Refused && e.TimesOut {
		v.errorf(key+".timesOut", "requests cannot all be refused and all time out")
	}
	for name, n := range e.Results {
		if _, ok := resultNames[name]; !ok {
			v.errorf(key+".results."+name, "unknown result (known: dropped, error, ok, refused, reset, timed out)")
		}
		if n < 0 {
			v.errorf(key+".results."+name, "a count is 0 or more")
		}
	}
	if r := e.Reaches; r != nil {
		if len(r.Selector) == 0 {
			v.errorf(key+".reaches.selector", "reaches needs the selector of the pods (app: web)")
		}
		for i, n := range r.Nodes {
			v.nodeName(fmt.Sprintf("%s.reaches.nodes[%d]", key, i), n)
		}
	}
	if d := e.Distribution; d != nil {
		if len(d.Selector) == 0 {
			v.errorf(key+".distribution.selector", "distribution needs the selector of the pods (app: web)")
		}
		if d.Tolerance == 0 {
			v.errorf(key+".distribution.tolerance", "distribution needs a tolerance (20%%: each pod within 20%% of an even share)")
		}
	}
	if s := e.SourceSeen; s != "" && s != "client" && s != "node" {
		if _, err := netip.ParseAddr(s); err != nil {
			v.errorf(key+".sourceSeen", "%q: want client, node or an IP address", s)
		}
	}
	for i := range e.State {
		v.stateCheck(fmt.Sprintf("%s.state[%d]", key, i), &e.State[i])
	}
}

func (v *validator) stateCheck(key string, c *StateCheck) {
	n := 0
	for _, set := range []bool{c.Service != "", c.Pod != "", c.Pods != nil, c.Node != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.errorf(key, "a state check names one thing: service, pod, pods (a selector) or node")
		return
	}
	bad := func(field string, set bool, what string) {
		if set {
			v.errorf(key+"."+field, "%s checks a %s", field, what)
		}
	}
	svc := c.Service != ""
	bad("nodePort", c.NodePort != 0 && !svc, "service")
	bad("nodePortIn", c.NodePortIn != "" && !svc, "service")
	bad("band", c.Band != "" && !svc, "service")
	bad("endpoints", c.Endpoints != nil && !svc, "service")
	bad("type", c.Type != "" && !svc, "service")
	bad("externalTrafficPolicy", c.ExternalTrafficPolicy != "" && !svc, "service")
	bad("exists", c.Exists != nil && !svc && c.Pod == "", "service or pod")
	bad("onNode", c.OnNode != "" && c.Pod == "", "pod")
	bad("phase", c.Phase != "" && c.Pod == "", "pod")
	bad("count", c.Count != nil && c.Pods == nil, "pods selector")
	bad("ready", c.Ready != nil && c.Pod == "" && c.Pods == nil, "pod or pods")
	bad("linkUp", c.LinkUp != nil && c.Node == "", "node")
	bad("listens", c.Listens != "" && c.Node == "", "node")
	if c.Ready != nil && c.Pod != "" && c.Ready.Bool == nil {
		v.errorf(key+".ready", "a pod is ready: true or false")
	}
	if c.Ready != nil && c.Pods != nil && c.Ready.Count == nil {
		v.errorf(key+".ready", "for pods, ready is how many are ready")
	}
	if c.Band != "" && c.Band != "static" && c.Band != "dynamic" {
		v.errorf(key+".band", "%q: the bands are static (lower) and dynamic (upper)", c.Band)
	}
	if c.NodePortIn != "" {
		if _, _, err := parsePortRange(c.NodePortIn); err != nil {
			v.errorf(key+".nodePortIn", "%v", err)
		}
	}
	if c.Listens != "" && !nameRE.MatchString(c.Listens) {
		if _, _, err := parseListen(c.Listens); err != nil {
			v.errorf(key+".listens", "%v", err)
		}
	}
	v.nodeName(key+".node", c.Node)
	v.nodeName(key+".onNode", c.OnNode)
}

// parsePortRange parses "30000-30085" or "30080".
func parsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 0 || hi > 65535 || hi < lo {
		return 0, 0, fmt.Errorf("%q: want a port range LOW-HIGH such as 30000-30085", s)
	}
	return lo, hi, nil
}

// parseListen parses "30080/TCP".
func parseListen(s string) (int, string, error) {
	p, proto, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(p)
	proto = strings.ToUpper(proto)
	if !ok || err != nil || n < 1 || n > 65535 || (proto != "TCP" && proto != "UDP" && proto != "SCTP") {
		return 0, "", fmt.Errorf("%q: want PORT/PROTOCOL such as 30080/TCP, or a Service's name for its nodePorts", s)
	}
	return n, proto, nil
}
