package scenarios

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// evaluate runs a step's checks on what it observed.
func (s *Session) evaluate(i int, st *Step, obs *observation) []CheckResult {
	var out []CheckResult
	e := &st.Expect
	if s.opts.Check && st.Task != nil && obs.applied {
		// (Recheck applies nothing: the student works in the lab.)
		out = append(out, s.suppliesCheck(i, st.Task)...)
	}
	if obs.applied {
		switch {
		case e.Error != "":
			out = append(out, errorCheck(obs.results, e.Error, obs.verb))
		case e.Succeeds == nil || *e.Succeeds:
			out = append(out, succeeds(obs.results, obs.verb))
		default:
			c := succeeds(obs.results, obs.verb)
			c.Check = obs.verb + " fails"
			c.Expected = "an error"
			c.Pass = !c.Pass
			out = append(out, c)
		}
	}
	if st.Fault != nil && obs.acted && obs.unsupported == nil {
		c := CheckResult{Check: "fault: " + st.Fault.Kind, Pass: obs.faultErr == nil, Expected: "the fault is injected", Observed: "injected"}
		if obs.faultErr != nil {
			c.Observed = obs.faultErr.Error()
		}
		out = append(out, c)
	}
	if st.Wait != nil && obs.acted {
		c := CheckResult{Check: "wait", Pass: obs.waitErr == "", Expected: fmt.Sprintf("within %s: %s", st.Wait.Timeout.String(), waitWhat(st.Wait)), Observed: "reached"}
		if obs.waitErr != "" {
			c.Observed = obs.waitErr
		}
		out = append(out, c)
	}
	if t := obs.traffic; t != nil && obs.unsupported == nil {
		state := s.lab.State()
		if t.err != nil || t.sent == 0 {
			out = append(out, CheckResult{Check: "traffic: " + t.what, Expected: "the requests are sent", Observed: t.summary()})
		} else {
			out = append(out, trafficChecks(state, e, t)...)
		}
	}
	if len(e.State) > 0 {
		state := s.lab.State()
		for j := range e.State {
			if s.opts.ControlPlaneOnly && e.State[j].Listens != "" {
				continue // the proxies' sockets: there are none without a data plane
			}
			out = append(out, checkState(state, &e.State[j]))
		}
	}
	return out
}

func waitWhat(w *Wait) string {
	if len(w.Until) == 0 {
		return "the lab is idle"
	}
	var parts []string
	for i := range w.Until {
		parts = append(parts, stateCheckName(&w.Until[i]))
	}
	return strings.Join(parts, "; ")
}

// String is the duration as Go prints it ("30s").
func (d Duration) String() string { return time.Duration(d).String() }

// succeeds checks that an apply or delete had no error.
func succeeds(res []lab.Result, verb string) CheckResult {
	out, errs := appliedText(res)
	c := CheckResult{Check: verb + " succeeds", Pass: errs == "", Expected: "no error", Observed: out}
	if errs != "" {
		c.Observed = errs
		if out != "" {
			c.Observed = out + "; " + errs
		}
	}
	if len(res) == 0 {
		c.Pass, c.Observed = false, "nothing was applied"
	}
	return c
}

// errorCheck checks the exact error kubectl printed.
func errorCheck(res []lab.Result, want, verb string) CheckResult {
	out, errs := appliedText(res)
	want = strings.TrimRight(want, "\n")
	c := CheckResult{Check: verb + " fails with the exact error", Pass: errs == want, Expected: want, Observed: errs}
	if errs == "" {
		c.Observed = "no error: " + out
	}
	return c
}

// suppliesCheck: in `nplab check`, the student's files supply the task's
// objects and parse.
func (s *Session) suppliesCheck(i int, t *Task) []CheckResult {
	fs := s.student[i]
	have := studentSupplies(fs)
	var out []CheckResult
	for _, ref := range t.Supplies {
		key := kinds[strings.ToLower(ref.Kind)] + "/" + ref.Name
		c := CheckResult{Check: "your files supply " + key, Pass: have[key], Expected: key + " in your files"}
		switch {
		case have[key]:
			c.Observed = key + " found"
		case len(fs) == 0:
			c.Observed = "none of your files has it"
		default:
			var names []string
			for _, f := range fs {
				names = append(names, f.Name)
			}
			c.Observed = "not in " + strings.Join(names, ", ")
		}
		out = append(out, c)
	}
	return out
}

// readyPods are the ready, not terminating pods of sel, by name.
func readyPods(state lab.State, sel map[string]string) []string {
	var out []string
	for _, name := range state.PodNames() {
		p := state.Pods[name]
		if matches(sel, p.Labels) && p.Ready && !p.Terminating {
			out = append(out, name)
		}
	}
	return out
}

func trafficChecks(state lab.State, e *Expect, t *trafficObs) []CheckResult {
	var out []CheckResult
	observed := t.summary()
	ok := t.perResult[plane.FlowOK]
	if e.Results != nil {
		var want []string
		pass := true
		for _, name := range slices.Sorted(maps.Keys(e.Results)) {
			n := e.Results[name]
			want = append(want, fmt.Sprintf("%d %s", n, name))
			if t.perResult[resultNames[name]] != n {
				pass = false
			}
		}
		out = append(out, CheckResult{Check: "results of " + t.what, Pass: pass, Expected: strings.Join(want, ", "), Observed: observed})
	}
	if r := e.Reaches; r != nil {
		sel := selectorString(r.Selector)
		pods := readyPods(state, r.Selector)
		var strangers, missed, offNodes, unready []string
		for p := range t.perPod {
			sp, known := state.Pods[p]
			if !known || !matches(r.Selector, sp.Labels) {
				strangers = append(strangers, p)
			} else if !sp.Ready {
				unready = append(unready, p)
			}
			if len(r.Nodes) > 0 && !slices.Contains(r.Nodes, t.podNode[p]) {
				offNodes = append(offNodes, p+" on "+t.podNode[p])
			}
		}
		if r.All {
			for _, p := range pods {
				if t.perPod[p] == 0 {
					missed = append(missed, p)
				}
			}
		}
		slices.Sort(strangers)
		slices.Sort(offNodes)
		slices.Sort(unready)
		want := "answers from pods of " + sel
		if r.All {
			want = fmt.Sprintf("answers from every ready pod of %s (%s)", sel, orNone(pods))
		}
		if len(r.Nodes) > 0 {
			want += ", only pods on " + strings.Join(r.Nodes, ", ")
		}
		c := CheckResult{Check: "reaches " + sel, Pass: ok > 0 && len(strangers) == 0 && len(missed) == 0 && len(offNodes) == 0 && len(unready) == 0, Expected: want, Observed: observed}
		switch {
		case ok == 0:
			c.Observed = "no answer at all: " + observed
		case len(missed) > 0:
			c.Observed = observed + "; never answered: " + strings.Join(missed, ", ")
		case len(strangers) > 0:
			c.Observed = observed + "; not of " + sel + ": " + strings.Join(strangers, ", ")
		case len(unready) > 0:
			c.Observed = observed + "; answered though not ready: " + strings.Join(unready, ", ")
		case len(offNodes) > 0:
			c.Observed = observed + "; on other nodes: " + strings.Join(offNodes, ", ")
		}
		out = append(out, c)
	}
	if e.Refused {
		out = append(out, CheckResult{Check: "refused", Pass: t.perResult[plane.FlowRefused] == t.sent,
			Expected: fmt.Sprintf("all %d requests refused (connection refused)", t.sent), Observed: observed})
	}
	if e.TimesOut {
		n := t.perResult[plane.FlowDropped] + t.perResult[plane.FlowTimedOut]
		out = append(out, CheckResult{Check: "times out", Pass: n == t.sent,
			Expected: fmt.Sprintf("all %d requests unanswered (dropped or timed out)", t.sent), Observed: observed})
	}
	if d := e.Distribution; d != nil {
		sel := selectorString(d.Selector)
		pods := readyPods(state, d.Selector)
		c := CheckResult{Check: "distribution over " + sel, Pass: len(pods) > 0 && ok > 0, Observed: observed}
		if len(pods) > 0 {
			even := float64(ok) / float64(len(pods))
			lo, hi := even*(1-float64(d.Tolerance)/100), even*(1+float64(d.Tolerance)/100)
			c.Expected = fmt.Sprintf("each of the %d ready pods of %s answers %.0f–%.0f of %d (an even share ±%g%%)", len(pods), sel, math.Ceil(lo), math.Floor(hi), ok, float64(d.Tolerance))
			for _, p := range pods {
				if n := float64(t.perPod[p]); n < lo || n > hi {
					c.Pass = false
				}
			}
		} else {
			c.Expected = "ready pods of " + sel
		}
		out = append(out, c)
	}
	if want := e.SourceSeen; want != "" {
		c := CheckResult{Check: "source address the pods saw", Pass: len(t.sources) > 0}
		var seen []string
		for a, n := range t.sources {
			seen = append(seen, fmt.Sprintf("%s (%s) %d", a, addrName(state, a), n))
			if !sourceMatches(state, want, a) {
				c.Pass = false
			}
		}
		sort.Strings(seen)
		switch want {
		case "client":
			c.Expected = "the client's own address, " + state.Client.String()
		case "node":
			c.Expected = "a node's address (the proxy masqueraded the client)"
		default:
			c.Expected = want
		}
		c.Observed = "the pods saw " + strings.Join(seen, ", ")
		if len(seen) == 0 {
			c.Observed = "no answer reported the source it saw: " + observed
		}
		out = append(out, c)
	}
	if e.Sticky {
		out = append(out, CheckResult{Check: "sticks to one pod", Pass: ok > 0 && len(t.perPod) == 1,
			Expected: "every answer from the same pod", Observed: observed})
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none ready"
	}
	return strings.Join(s, ", ")
}

// addrName says whose address a is: "client", "node-2", "node-2's pod
// gateway", "pod web-x" or "unknown".
func addrName(state lab.State, a netip.Addr) string {
	if a == state.Client {
		return "the client"
	}
	for _, n := range state.Nodes {
		if n.IP == a {
			return n.Name
		}
		if n.PodCIDR.IsValid() && n.PodCIDR.Masked().Addr().Next() == a {
			return n.Name + ", pod side"
		}
	}
	for _, p := range state.Pods {
		if p.IP == a {
			return "pod " + p.Name
		}
	}
	return "unknown"
}

func sourceMatches(state lab.State, want string, a netip.Addr) bool {
	switch want {
	case "client":
		return a == state.Client
	case "node":
		n := addrName(state, a)
		return strings.HasPrefix(n, "node-")
	}
	w, err := netip.ParseAddr(want)
	return err == nil && w == a
}

// stateCheckName is the check in words: "service web: nodePort in the
// dynamic band".
func stateCheckName(c *StateCheck) string {
	var what string
	var props []string
	switch {
	case c.Service != "":
		what = "service " + c.Service
	case c.Pod != "":
		what = "pod " + c.Pod
	case c.Pods != nil:
		what = "pods of " + selectorString(c.Pods)
	default:
		what = "node " + c.Node
	}
	if c.Exists != nil && !*c.Exists {
		return what + " does not exist"
	}
	if c.NodePort != 0 {
		props = append(props, "nodePort "+strconv.Itoa(c.NodePort))
	}
	if c.NodePortIn != "" {
		props = append(props, "nodePort in "+c.NodePortIn)
	}
	if c.Band != "" {
		props = append(props, "nodePort in the "+c.Band+" band")
	}
	if c.Endpoints != nil {
		props = append(props, readyEndpoints(*c.Endpoints))
	}
	if c.Type != "" {
		props = append(props, "type "+c.Type)
	}
	if c.ExternalTrafficPolicy != "" {
		props = append(props, "externalTrafficPolicy "+c.ExternalTrafficPolicy)
	}
	if c.Count != nil {
		props = append(props, fmt.Sprintf("%d pods", *c.Count))
	}
	if r := c.Ready; r != nil {
		if r.Bool != nil {
			props = append(props, fmt.Sprintf("ready %t", *r.Bool))
		} else if r.Count != nil {
			props = append(props, fmt.Sprintf("%d ready", *r.Count))
		}
	}
	if c.OnNode != "" {
		props = append(props, "on "+c.OnNode)
	}
	if c.Phase != "" {
		props = append(props, "phase "+c.Phase)
	}
	if c.LinkUp != nil {
		props = append(props, fmt.Sprintf("link up %t", *c.LinkUp))
	}
	if c.Listens != "" {
		if _, _, err := parseListen(c.Listens); err == nil {
			props = append(props, "listens on "+c.Listens)
		} else {
			props = append(props, "listens on the nodePorts of service "+c.Listens)
		}
	}
	if len(props) == 0 {
		return what + " exists"
	}
	return what + ": " + strings.Join(props, ", ")
}

// bands returns the static (lower) and dynamic (upper) bands of a
// NodePort range "30000-32767", as kube-apiserver splits it (KEP-3668):
// the static band is size/32 ports, at least 16 and at most 128, and none
// at all for a range of 16 ports or fewer.
func bands(rng string) (staticLo, staticHi, dynLo, dynHi int, err error) {
	lo, hi, err := parsePortRange(rng)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	size := hi - lo + 1
	offset := 0
	if size > 16 {
		offset = min(max(size/32, 16), 128)
	}
	return lo, lo + offset - 1, lo + offset, hi, nil
}

// checkState checks one StateCheck on a state.
func checkState(state lab.State, c *StateCheck) CheckResult {
	res := CheckResult{Check: stateCheckName(c), Expected: stateCheckName(c), Pass: true}
	var seen []string
	fail := func(format string, args ...any) {
		res.Pass = false
		seen = append(seen, fmt.Sprintf(format, args...))
	}
	wantExists := c.Exists == nil || *c.Exists
	if c.Band != "" {
		if sl, sh, dl, dh, err := bands(state.NodePortRange); err == nil {
			lo, hi := dl, dh
			if c.Band == "static" {
				lo, hi = sl, sh
			}
			res.Expected = fmt.Sprintf("%s (%d-%d of %s)", res.Expected, lo, hi, state.NodePortRange)
		}
	}
	switch {
	case c.Service != "":
		svc, ok := state.Services[c.Service]
		if !ok || !wantExists {
			if ok != wantExists {
				if ok {
					fail("service %s exists", c.Service)
				} else {
					fail("no service %s", c.Service)
				}
			} else if !ok {
				seen = append(seen, "no service "+c.Service)
			}
			break
		}
		np := int32(0)
		if len(svc.Ports) > 0 {
			np = svc.Ports[0].NodePort
		}
		seen = append(seen, fmt.Sprintf("type %s, nodePort %d", svc.Type, np))
		if c.NodePort != 0 && int(np) != c.NodePort {
			res.Pass = false
		}
		if c.NodePortIn != "" {
			lo, hi, _ := parsePortRange(c.NodePortIn)
			if int(np) < lo || int(np) > hi {
				res.Pass = false
			}
		}
		if c.Band != "" {
			sl, sh, dl, dh, err := bands(state.NodePortRange)
			if err != nil {
				fail("the lab's range %q: %v", state.NodePortRange, err)
			} else {
				lo, hi := dl, dh
				if c.Band == "static" {
					lo, hi = sl, sh
				}
				if int(np) < lo || int(np) > hi {
					res.Pass = false
				}
			}
		}
		if c.Endpoints != nil {
			n := 0
			if len(svc.Ports) > 0 {
				for _, ep := range svc.Ports[0].Endpoints {
					if ep.Ready {
						n++
					}
				}
			}
			seen = append(seen, readyEndpoints(n))
			if n != *c.Endpoints {
				res.Pass = false
			}
		}
		if c.Type != "" && string(svc.Type) != c.Type {
			res.Pass = false
		}
		if c.ExternalTrafficPolicy != "" {
			seen = append(seen, "externalTrafficPolicy "+string(svc.ExternalTrafficPolicy))
			if string(svc.ExternalTrafficPolicy) != c.ExternalTrafficPolicy {
				res.Pass = false
			}
		}
	case c.Pod != "":
		p, ok := state.Pods[c.Pod]
		if !ok || !wantExists {
			if ok != wantExists {
				if ok {
					fail("pod %s exists", c.Pod)
				} else {
					fail("no pod %s", c.Pod)
				}
			} else if !ok {
				seen = append(seen, "no pod "+c.Pod)
			}
			break
		}
		seen = append(seen, fmt.Sprintf("%s, ready %t, on %s", p.Phase, p.Ready, orDash(p.Node)))
		if c.Ready != nil && c.Ready.Bool != nil && p.Ready != *c.Ready.Bool {
			res.Pass = false
		}
		if c.OnNode != "" && p.Node != c.OnNode {
			res.Pass = false
		}
		if c.Phase != "" && string(p.Phase) != c.Phase {
			res.Pass = false
		}
	case c.Pods != nil:
		var all, ready []string
		for _, name := range state.PodNames() {
			p := state.Pods[name]
			if matches(c.Pods, p.Labels) {
				all = append(all, name)
				if p.Ready && !p.Terminating {
					ready = append(ready, name)
				}
			}
		}
		seen = append(seen, fmt.Sprintf("%d pods (%s), %d ready", len(all), orNone(all), len(ready)))
		if c.Count != nil && len(all) != *c.Count {
			res.Pass = false
		}
		if c.Ready != nil && c.Ready.Count != nil && len(ready) != *c.Ready.Count {
			res.Pass = false
		}
	default:
		n, ok := state.Node(c.Node)
		if !ok {
			fail("no node %s", c.Node)
			break
		}
		seen = append(seen, fmt.Sprintf("link up %t", n.LinkUp))
		if c.LinkUp != nil && n.LinkUp != *c.LinkUp {
			res.Pass = false
		}
		if c.Listens != "" {
			// PORT/PROTOCOL, or a Service: each of its nodePorts.
			type sock struct {
				port  int
				proto string
			}
			var want []sock
			if port, proto, err := parseListen(c.Listens); err == nil {
				want = append(want, sock{port, proto})
			} else if svc, ok := state.Services[c.Listens]; ok {
				for _, p := range svc.Ports {
					if p.NodePort != 0 {
						want = append(want, sock{int(p.NodePort), string(p.Protocol)})
					}
				}
			}
			var ls []string
			found := len(want) > 0
			for _, w := range want {
				has := false
				for _, l := range n.Listeners {
					if l.NodePort && int(l.Addr.Port()) == w.port && l.Protocol == w.proto {
						has = true
					}
				}
				found = found && has
			}
			for _, l := range n.Listeners {
				if l.NodePort {
					ls = append(ls, fmt.Sprintf("%d/%s", l.Addr.Port(), l.Protocol))
				}
			}
			slices.Sort(ls)
			seen = append(seen, "nodePorts it listens on: "+orNone(ls))
			if !found {
				res.Pass = false
			}
		}
	}
	res.Observed = strings.Join(seen, "; ")
	return res
}

func orDash(s string) string {
	if s == "" {
		return "no node"
	}
	return s
}

// readyEndpoints is "1 ready endpoint", "3 ready endpoints".
func readyEndpoints(n int) string {
	if n == 1 {
		return "1 ready endpoint"
	}
	return fmt.Sprintf("%d ready endpoints", n)
}
