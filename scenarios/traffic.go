package scenarios

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// trafficObs is what a burst saw: every reply, counted.
type trafficObs struct {
	what      string // "30 TCP requests from client to node-*:30080"
	err       error  // the burst could not be sent (no such Service, ...)
	sent      int
	perResult map[plane.FlowResult]int
	perPod    map[string]int    // answers per pod
	podNode   map[string]string // the node of each pod that answered
	sources   map[netip.Addr]int
	noFlow    int // ok answers whose flow the data plane did not report
	errs      []string
	// unsupported: the data plane cannot do it here (SCTP without the
	// module).
	unsupported error
}

// send runs a traffic step's burst with lab.Send, one reply (and its flow)
// per request, so that every check reads the flows.
func (s *Session) send(ctx context.Context, t *Traffic) *trafficObs {
	obs := &trafficObs{perResult: map[plane.FlowResult]int{}, perPod: map[string]int{}, podNode: map[string]string{}, sources: map[netip.Addr]int{}}
	obs.what = fmt.Sprintf("%d %s requests from %s to %s", t.Count, t.Protocol, t.From, t.To)
	state := s.lab.State()
	targets, err := resolveTargets(state, s.lab.Nodes(), t)
	if err != nil {
		obs.err = err
		return obs
	}
	from, err := resolveFrom(state, t.From)
	if err != nil {
		obs.err = err
		return obs
	}
	msg := t.Message
	if msg == "" {
		msg = "hostname"
		if t.Protocol == "TCP" {
			msg = "/hostname"
		}
	}
	var tick <-chan time.Time
	if t.Rate > 0 {
		tk := time.NewTicker(time.Duration(float64(time.Second) / t.Rate))
		defer tk.Stop()
		tick = tk.C
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, t.Concurrency)
	)
	for i := 0; i < t.Count && ctx.Err() == nil; i++ {
		if tick != nil && i > 0 {
			select {
			case <-tick:
			case <-ctx.Done():
				continue
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		req := plane.Request{From: from, Protocol: t.Protocol, Target: targets[i%len(targets)], Message: msg, Timeout: time.Duration(t.Timeout)}
		wg.Go(func() {
			defer func() { <-sem }()
			rep, err := s.lab.Send(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			obs.record(state, rep, err)
		})
	}
	wg.Wait()
	return obs
}

func (obs *trafficObs) record(state lab.State, rep plane.Reply, err error) {
	if err != nil {
		if errors.Is(err, plane.ErrNotSupported) || errors.Is(err, lab.ErrNoDataPlane) {
			obs.unsupported = err
			return
		}
		obs.sent++
		obs.perResult[plane.FlowError]++
		if len(obs.errs) < 3 {
			obs.errs = append(obs.errs, err.Error())
		}
		return
	}
	obs.sent++
	obs.perResult[rep.Result]++
	if rep.Result != plane.FlowOK {
		// "refused", "dropped" and "timed out" say it all; the error of
		// one that ended otherwise is what says why.
		if quiet := rep.Result == plane.FlowRefused || rep.Result == plane.FlowDropped || rep.Result == plane.FlowTimedOut; !quiet &&
			rep.Err != nil && len(obs.errs) < 3 && !slices.Contains(obs.errs, rep.Err.Error()) {
			obs.errs = append(obs.errs, rep.Err.Error())
		}
		return
	}
	if f := rep.Flow; f != nil && f.Pod != "" {
		obs.perPod[f.Pod]++
		obs.podNode[f.Pod] = f.PodNode
		if f.SourceSeen.IsValid() {
			obs.sources[f.SourceSeen]++
		}
		return
	}
	// No flow through a node (a request straight to a pod): the pod's
	// answer to /hostname is its name.
	obs.noFlow++
	if p, ok := state.Pods[strings.TrimSpace(rep.Body)]; ok {
		obs.perPod[p.Name]++
		obs.podNode[p.Name] = p.Node
	}
}

// resolveTargets turns a parsed target into addresses, from the lab's state
// now (a Service's nodePort or ClusterIP).
func resolveTargets(state lab.State, nodes []plane.NodeSpec, t *Traffic) ([]netip.AddrPort, error) {
	tg := t.tg
	port := tg.port
	if tg.service != "" {
		svc, ok := state.Services[tg.service]
		if !ok {
			return nil, fmt.Errorf("there is no Service %s to send to", tg.service)
		}
		p, ok := servicePort(svc, t.Protocol, tg.port, tg.nodes != nil)
		if !ok {
			if tg.nodes != nil {
				return nil, fmt.Errorf("Service %s has no %s nodePort", tg.service, t.Protocol)
			}
			return nil, fmt.Errorf("Service %s has no %s port %d", tg.service, t.Protocol, tg.port)
		}
		if tg.nodes != nil {
			port = int(p.NodePort)
		} else {
			ip, err := netip.ParseAddr(svc.ClusterIP)
			if err != nil {
				return nil, fmt.Errorf("Service %s has no ClusterIP (%q)", tg.service, svc.ClusterIP)
			}
			return []netip.AddrPort{netip.AddrPortFrom(ip, uint16(p.Port))}, nil
		}
	}
	if tg.nodes == nil {
		return []netip.AddrPort{netip.AddrPortFrom(tg.addr, uint16(port))}, nil
	}
	var out []netip.AddrPort
	for _, name := range tg.nodes {
		i := slices.IndexFunc(nodes, func(n plane.NodeSpec) bool { return n.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("the lab has no %s", name)
		}
		out = append(out, netip.AddrPortFrom(nodes[i].IP, uint16(port)))
	}
	return out, nil
}

// servicePort is the Service's first port of the protocol (with that port
// number, if given) that has a nodePort when one is wanted.
func servicePort(svc lab.ServiceState, proto string, port int, nodePort bool) (lab.PortState, bool) {
	for _, p := range svc.Ports {
		if string(p.Protocol) == proto && (port == 0 || int(p.Port) == port) && (!nodePort || p.NodePort != 0) {
			return p, true
		}
	}
	return lab.PortState{}, false
}

// resolveFrom turns Traffic.From into a host: a selector "app=frontend"
// means its first ready pod by name.
func resolveFrom(state lab.State, from string) (string, error) {
	if !strings.Contains(from, "=") {
		return from, nil
	}
	sel := map[string]string{}
	for _, kv := range strings.Split(from, ",") {
		k, v, _ := strings.Cut(kv, "=")
		sel[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	for _, name := range state.PodNames() {
		p := state.Pods[name]
		if matches(sel, p.Labels) && p.Ready && !p.Terminating {
			return name, nil
		}
	}
	return "", fmt.Errorf("no ready pod of %s to send from", from)
}

// summary is the burst in a student's words: "30 requests: 28 ok (web-a 10,
// web-b 18), 2 refused".
func (obs *trafficObs) summary() string {
	if obs.err != nil {
		return "no request was sent: " + obs.err.Error()
	}
	if obs.sent == 0 {
		return "no request was sent"
	}
	var parts []string
	results := make([]string, 0, len(obs.perResult))
	for r := range obs.perResult {
		results = append(results, string(r))
	}
	sort.Slice(results, func(i, j int) bool {
		if results[i] == string(plane.FlowOK) || results[j] == string(plane.FlowOK) {
			return results[i] == string(plane.FlowOK)
		}
		return results[i] < results[j]
	})
	for _, r := range results {
		p := fmt.Sprintf("%d %s", obs.perResult[plane.FlowResult(r)], r)
		if r == string(plane.FlowOK) && len(obs.perPod) > 0 {
			p += " (" + obs.podList() + ")"
		}
		parts = append(parts, p)
	}
	s := fmt.Sprintf("%d requests: %s", obs.sent, strings.Join(parts, ", "))
	if len(obs.errs) > 0 {
		s += "; " + strings.Join(obs.errs, "; ")
	}
	return s
}

// podList is "web-a 10 on node-1, web-b 18 on node-2".
func (obs *trafficObs) podList() string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(obs.perPod)) {
		s := fmt.Sprintf("%s %d", p, obs.perPod[p])
		if n := obs.podNode[p]; n != "" {
			s += " on " + n
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}
