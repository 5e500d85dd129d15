package scenarios

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// A state with three web pods (web-b unready) on three nodes.
func testState() lab.State {
	pod := func(name, node string, ready bool) lab.PodState {
		return lab.PodState{Name: name, Labels: map[string]string{"app": "web"}, Node: node, Ready: ready, Phase: "Running"}
	}
	topo := plane.DefaultTopology("t", 3)
	st := lab.State{NodePortRange: "30000-32767", Client: topo.Client,
		Pods: map[string]lab.PodState{
			"web-a": pod("web-a", "node-1", true),
			"web-b": pod("web-b", "node-2", false),
			"web-c": pod("web-c", "node-3", true),
			"db-x":  {Name: "db-x", Labels: map[string]string{"app": "db"}, Node: "node-1", Ready: true},
		},
		Services: map[string]lab.ServiceState{
			"web": {Name: "web", Type: "NodePort", ClusterIP: "10.96.0.10", ExternalTrafficPolicy: "Cluster",
				Ports: []lab.PortState{{Protocol: "TCP", Port: 80, NodePort: 30080,
					Endpoints: []plane.Endpoint{{Pod: "web-a", Ready: true}, {Pod: "web-c", Ready: true}}}}},
		},
	}
	for _, n := range topo.Nodes {
		st.Nodes = append(st.Nodes, lab.NodeState{Name: n.Name, IP: n.IP, PodCIDR: n.PodCIDR, LinkUp: true,
			Listeners: []plane.Listener{{Protocol: "TCP", Addr: netip.MustParseAddrPort("0.0.0.0:30080"), NodePort: true}}})
	}
	return st
}

func obs(perPod map[string]int, results map[plane.FlowResult]int, sources ...string) *trafficObs {
	t := &trafficObs{what: "requests", perPod: perPod, perResult: results, podNode: map[string]string{}, sources: map[netip.Addr]int{}}
	for p := range perPod {
		t.podNode[p] = map[string]string{"web-a": "node-1", "web-b": "node-2", "web-c": "node-3", "db-x": "node-1"}[p]
	}
	for _, r := range results {
		t.sent += r
	}
	for _, s := range sources {
		t.sources[netip.MustParseAddr(s)]++
	}
	return t
}

func TestTrafficChecks(t *testing.T) {
	ok := func(n int) map[plane.FlowResult]int { return map[plane.FlowResult]int{plane.FlowOK: n} }
	web := map[string]string{"app": "web"}
	tests := []struct {
		name   string
		expect Expect
		obs    *trafficObs
		pass   bool
		// observed must contain this
		observed string
	}{
		{"reaches all", Expect{Reaches: &Reaches{Selector: web, All: true}}, obs(map[string]int{"web-a": 5, "web-c": 5}, ok(10)), true, "10 ok (web-a 5 on node-1, web-c 5 on node-3)"},
		{"reaches all misses one", Expect{Reaches: &Reaches{Selector: web, All: true}}, obs(map[string]int{"web-a": 10}, ok(10)), false, "never answered: web-c"},
		{"reaches a stranger", Expect{Reaches: &Reaches{Selector: web}}, obs(map[string]int{"web-a": 9, "db-x": 1}, ok(10)), false, "not of app=web: db-x"},
		{"reaches an unready pod", Expect{Reaches: &Reaches{Selector: web}}, obs(map[string]int{"web-a": 9, "web-b": 1}, ok(10)), false, "answered though not ready: web-b"},
		{"reaches only node-1", Expect{Reaches: &Reaches{Selector: web, Nodes: []string{"node-1"}}}, obs(map[string]int{"web-a": 9, "web-c": 1}, ok(10)), false, "on other nodes: web-c on node-3"},
		{"reaches nothing", Expect{Reaches: &Reaches{Selector: web}}, obs(nil, map[plane.FlowResult]int{plane.FlowRefused: 3}), false, "no answer at all: 3 requests: 3 refused"},
		{"refused", Expect{Refused: true}, obs(nil, map[plane.FlowResult]int{plane.FlowRefused: 3}), true, "3 refused"},
		{"refused but one ok", Expect{Refused: true}, obs(map[string]int{"web-a": 1}, map[plane.FlowResult]int{plane.FlowRefused: 2, plane.FlowOK: 1}), false, "3 requests: 1 ok (web-a 1 on node-1), 2 refused"},
		{"times out", Expect{TimesOut: true}, obs(nil, map[plane.FlowResult]int{plane.FlowDropped: 1, plane.FlowTimedOut: 2}), true, "1 dropped, 2 timed out"},
		{"results", Expect{Results: map[string]int{"ok": 10}}, obs(map[string]int{"web-a": 8}, map[plane.FlowResult]int{plane.FlowOK: 8, plane.FlowReset: 2}), false, "8 ok"},
		{"distribution even", Expect{Distribution: &Distribution{Selector: web, Tolerance: 20}}, obs(map[string]int{"web-a": 11, "web-c": 9}, ok(20)), true, ""},
		{"distribution skewed", Expect{Distribution: &Distribution{Selector: web, Tolerance: 20}}, obs(map[string]int{"web-a": 15, "web-c": 5}, ok(20)), false, "web-a 15"},
		{"sticky", Expect{Sticky: true}, obs(map[string]int{"web-c": 10}, ok(10)), true, ""},
		{"not sticky", Expect{Sticky: true}, obs(map[string]int{"web-a": 5, "web-c": 5}, ok(10)), false, ""},
		{"source client", Expect{SourceSeen: "client"}, obs(map[string]int{"web-a": 2}, ok(2), "172.18.0.100", "172.18.0.100"), true, "172.18.0.100 (the client) 2"},
		{"source node, saw client", Expect{SourceSeen: "node"}, obs(map[string]int{"web-a": 1}, ok(1), "172.18.0.100"), false, "172.18.0.100 (the client) 1"},
		{"source node", Expect{SourceSeen: "node"}, obs(map[string]int{"web-a": 2}, ok(2), "172.18.0.4", "10.244.1.1"), true, "10.244.1.1 (node-1, pod side) 1, 172.18.0.4 (node-3) 1"},
		{"source unreported", Expect{SourceSeen: "client"}, obs(map[string]int{"web-a": 2}, ok(2)), false, "no answer reported the source it saw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := trafficChecks(testState(), &tt.expect, tt.obs)
			if len(cs) != 1 {
				t.Fatalf("%d checks, want 1: %+v", len(cs), cs)
			}
			c := cs[0]
			if c.Pass != tt.pass || !strings.Contains(c.Observed, tt.observed) {
				t.Errorf("pass %v observed %q; want pass %v and observed containing %q (expected %q)", c.Pass, c.Observed, tt.pass, tt.observed, c.Expected)
			}
		})
	}
}

func TestCheckState(t *testing.T) {
	yes, no := true, false
	two, three := 2, 3
	tests := []struct {
		name     string
		c        StateCheck
		pass     bool
		expected string
		observed string
	}{
		{"nodePort", StateCheck{Service: "web", NodePort: 30080}, true, "service web: nodePort 30080", "type NodePort, nodePort 30080"},
		{"static band", StateCheck{Service: "web", Band: "static"}, true, "service web: nodePort in the static band (30000-30085 of 30000-32767)", ""},
		{"dynamic band", StateCheck{Service: "web", Band: "dynamic"}, false, "service web: nodePort in the dynamic band (30086-32767 of 30000-32767)", "nodePort 30080"},
		{"in range", StateCheck{Service: "web", NodePortIn: "30000-30079"}, false, "", ""},
		{"endpoints", StateCheck{Service: "web", Endpoints: &two}, true, "service web: 2 ready endpoints", "2 ready endpoints"},
		{"missing service", StateCheck{Service: "db"}, false, "service db exists", "no service db"},
		{"absent service", StateCheck{Service: "db", Exists: &no}, true, "service db does not exist", "no service db"},
		{"present service", StateCheck{Service: "web", Exists: &no}, false, "", "service web exists"},
		{"pod ready", StateCheck{Pod: "web-b", Ready: &Ready{Bool: &yes}}, false, "pod web-b: ready true", "Running, ready false, on node-2"},
		{"pod on node", StateCheck{Pod: "web-a", OnNode: "node-1"}, true, "", ""},
		{"pods", StateCheck{Pods: map[string]string{"app": "web"}, Count: &three, Ready: &Ready{Count: &two}}, true, "pods of app=web: 3 pods, 2 ready", "3 pods (web-a, web-b, web-c), 2 ready"},
		{"link", StateCheck{Node: "node-2", LinkUp: &no}, false, "node node-2: link up false", "link up true"},
		{"listens port", StateCheck{Node: "node-3", Listens: "30080/TCP"}, true, "", "nodePorts it listens on: 30080/TCP"},
		{"listens udp", StateCheck{Node: "node-3", Listens: "30080/UDP"}, false, "", ""},
		{"listens service", StateCheck{Node: "node-3", Listens: "web"}, true, "node node-3: listens on the nodePorts of service web", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkState(testState(), &tt.c)
			if c.Pass != tt.pass || !strings.Contains(c.Expected, tt.expected) || !strings.Contains(c.Observed, tt.observed) {
				t.Errorf("got pass %v expected %q observed %q; want %v, %q, %q", c.Pass, c.Expected, c.Observed, tt.pass, tt.expected, tt.observed)
			}
		})
	}
}

func TestBands(t *testing.T) {
	for _, tt := range []struct {
		rng            string
		sl, sh, dl, dh int
	}{
		{"30000-32767", 30000, 30085, 30086, 32767}, // 2768/32 = 86
		{"30000-30019", 30000, 30015, 30016, 30019}, // at least 16
		{"30000-30015", 30000, 29999, 30000, 30015}, // 16 ports: no static band
		{"30000-34095", 30000, 30127, 30128, 34095}, // at most 128
	} {
		sl, sh, dl, dh, err := bands(tt.rng)
		if err != nil || sl != tt.sl || sh != tt.sh || dl != tt.dl || dh != tt.dh {
			t.Errorf("bands(%s) = %d-%d, %d-%d, %v; want %d-%d, %d-%d", tt.rng, sl, sh, dl, dh, err, tt.sl, tt.sh, tt.dl, tt.dh)
		}
	}
}

func TestResolveTargets(t *testing.T) {
	st := testState()
	nodes := plane.DefaultTopology("t", 3).Nodes
	v := &validator{sc: &Scenario{}}
	for _, tt := range []struct {
		to, proto, want string
	}{
		{"node-1:30080", "TCP", "[172.18.0.2:30080]"},
		{"node-*:web", "TCP", "[172.18.0.2:30080 172.18.0.3:30080 172.18.0.4:30080]"},
		{"node-1,node-3:31000", "TCP", "[172.18.0.2:31000 172.18.0.4:31000]"},
		{"web", "TCP", "[10.96.0.10:80]"},
		{"web:80", "TCP", "[10.96.0.10:80]"},
		{"10.96.0.10:80", "TCP", "[10.96.0.10:80]"},
		{"web", "UDP", "error: Service web has no UDP port 0"},
		{"node-1:web", "UDP", "error: Service web has no UDP nodePort"},
		{"node-1:db", "TCP", "error: there is no Service db to send to"},
	} {
		tg, err := v.parseTarget(tt.to)
		if err != nil {
			t.Fatalf("parseTarget(%q): %v", tt.to, err)
		}
		addrs, err := resolveTargets(st, nodes, &Traffic{Protocol: tt.proto, tg: tg})
		got := ""
		if err != nil {
			got = "error: " + err.Error()
		} else {
			got = strings.Join(strings.Fields(strings.Trim(strings.ReplaceAll(strings.Trim(fmtAddrs(addrs), "[]"), ",", " "), " ")), " ")
			got = "[" + got + "]"
		}
		if got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.proto, tt.to, got, tt.want)
		}
	}
	if from, err := resolveFrom(st, "app=web"); err != nil || from != "web-a" {
		t.Errorf("from app=web: %q %v, want web-a (the first ready pod)", from, err)
	}
	if _, err := resolveFrom(st, "app=none"); err == nil {
		t.Error("from app=none: no error")
	}
}

func fmtAddrs(a []netip.AddrPort) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// A session step by step: hints one at a time; in check mode each student
// file goes to the task that names its objects.
func TestSessionHintsAndStudentFiles(t *testing.T) {
	sc, err := Builtin("docs-examples")
	if err != nil {
		t.Fatal(err)
	}
	pod := lab.File{Name: "pod.yaml", Data: []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: backend\n  labels: {app: backend}\nspec:\n  containers:\n  - {name: c, image: nginx}\n")}
	svc := lab.File{Name: "svc.yaml", Data: []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: nodeport-service\nspec:\n  type: NodePort\n  ports: [{port: 80}]\n")}
	junk := lab.File{Name: "junk.yaml", Data: []byte("a: [")}
	s, err := NewSession(context.Background(), sc, Options{ControlPlaneOnly: true, Check: true, Student: []lab.File{pod, svc, junk}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names := func(fs []lab.File) string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return strings.Join(out, ",")
	}
	// Tasks: step 4 (backend-service), 6 (nodeport-service), 12 (Pod/backend), 0-based 3, 5, 11.
	for i, want := range map[int]string{3: "junk.yaml", 5: "svc.yaml", 11: "pod.yaml"} {
		if got := names(s.student[i]); got != want {
			t.Errorf("task step %d got %q, want %q", i+1, got, want)
		}
	}
	var hints []string
	for {
		h, ok := s.Hint(3)
		if !ok {
			break
		}
		hints = append(hints, h)
	}
	if len(hints) != 2 || !strings.Contains(hints[0], "indent") {
		t.Errorf("hints %q, want the two hints of the backend-service task in order", hints)
	}
	for range 4 { // steps 1 to 4 (later waits would wait for the student's pods)
		s.Next(context.Background())
	}
	res := s.Results()
	got := res[4] // step 4, after step 0
	if got.Index != 4 || got.Status != Fail {
		t.Fatalf("step 4: %+v, want a failure", got)
	}
	var supplied, applied CheckResult
	for _, c := range got.Checks {
		switch c.Check {
		case "your files supply Service/backend-service":
			supplied = c
		case "kubectl apply succeeds":
			applied = c
		}
	}
	if supplied.Pass || supplied.Observed != "not in junk.yaml" {
		t.Errorf("supplies check %+v", supplied)
	}
	if applied.Pass || !strings.HasPrefix(applied.Observed, "error: error parsing junk.yaml: ") || applied.Hint == "" {
		t.Errorf("apply check %+v: want kubectl's parse error and a hint", applied)
	}
}

// A task re-checked on demand and continuously: it fails until the
// student applies the Service (here, through the session's lab, as the
// terminal UI would), and Await returns as soon as it passes.
func TestRecheckAndAwait(t *testing.T) {
	src := `name: task
steps:
  - name: Create web
    task:
      supplies: [Service/web]
      solution: {inline: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80}]}\n"}
    expect:
      state:
        - service: web
          type: NodePort
      hint: A NodePort Service named web.
`
	sc, err := Parse("task.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := NewSession(ctx, sc, Options{Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := s.Next(ctx); r.Status != Fail || len(r.Checks) != 1 {
		t.Fatalf("before the student's work the task passed, or checked more than its state: %+v", r)
	}
	if r := s.Recheck(ctx, 0); r.Status != Fail || r.Checks[len(r.Checks)-1].Hint != "A NodePort Service named web." {
		t.Fatalf("Recheck before the student's work: %+v", r)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Lab().Apply("web.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80}]}\n"))
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r := s.Await(ctx, 0, 5*time.Millisecond)
	var state CheckResult
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Check, "service web") {
			state = c
		}
	}
	if !state.Pass || r.Status != Pass {
		t.Fatalf("Await: %+v", r)
	}
}
