package nodes

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// TestPlanProxy is the proxy's plan as a table: which listeners, which ip
// rules, and why each known service address is not proxied. Pure: no root,
// any OS.
func TestPlanProxy(t *testing.T) {
	cip := netip.MustParseAddr("10.96.0.10")
	local := ep("a", "node-1", "10.244.1.10:8080", true, true, false)
	remote := ep("b", "node-2", "10.244.2.10:8080", true, true, false)
	unready := ep("u", "node-2", "10.244.2.11:8080", false, false, false)
	terminating := ep("t", "node-2", "10.244.2.12:8080", false, true, true)
	nginx := ep("nginx", "node-2", "10.244.2.20:8080", true, true, false)
	pods := map[string]podFacts{
		"nginx": {ip: nginx.Addr.Addr(), specs: []apps.Spec{{Kind: apps.KindNginx, HTTP: []uint16{80}}}},
		"a":     {ip: local.Addr.Addr(), specs: []apps.Spec{{Kind: apps.KindNetexec, HTTP: []uint16{8080}, UDP: []uint16{8081}}}},
	}
	podCIDRs := []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("10.244.2.0/24")}
	svc := func(proto, policy string, eps ...plane.Endpoint) plane.ServicePort {
		return plane.ServicePort{Service: "default/web", Protocol: proto, ClusterIP: cip, Port: 80, NodePort: 30080,
			ExternalTrafficPolicy: policy, Endpoints: eps}
	}
	np := func(proto string) frontKey { return frontKey{proto, netip.MustParseAddrPort("0.0.0.0:30080")} }
	cipKey := func(proto string) frontKey { return frontKey{proto, netip.MustParseAddrPort("10.96.0.10:80")} }
	both := func(proto string) map[frontKey]planFront {
		return map[frontKey]planFront{
			cipKey(proto): {svc: "default/web:/" + proto, service: "default/web"},
			np(proto):     {svc: "default/web:/" + proto, service: "default/web", nodePort: true},
		}
	}
	refused := func(proto string, reason plane.FlowReason) map[frontKey]verdict {
		v := verdict{Service: "default/web", Result: plane.FlowRefused, Reason: reason}
		return map[frontKey]verdict{cipKey(proto): v, np(proto): v}
	}
	blackhole := func(proto string) []netsim.Rule {
		p := strings.ToLower(proto)
		return []netsim.Rule{
			{Priority: blackholePriority, IIF: "eth0", Proto: p, DPort: 30080, Blackhole: true},
			{Priority: podBypassPriority, IIF: "eth0", From: podCIDRs[0], Proto: p, DPort: 30080, Table: localTable},
			{Priority: podBypassPriority, IIF: "eth0", From: podCIDRs[1], Proto: p, DPort: 30080, Table: localTable},
		}
	}
	tproxy := func(proto string, e plane.Endpoint) netsim.Rule {
		return netsim.Rule{Priority: tproxyRulePriority, From: netip.PrefixFrom(e.Addr.Addr(), 32), Proto: strings.ToLower(proto),
			SPort: e.Addr.Port(), Table: tproxyTable}
	}
	tests := []struct {
		name        string
		ports       []plane.ServicePort
		transparent bool
		fronts      map[frontKey]planFront
		rules       []netsim.Rule
		verdicts    map[frontKey]verdict
		warning     string
	}{
		{name: "nothing", ports: nil},
		{name: "Cluster policy with ready endpoints listens on ClusterIP and nodePort",
			ports: []plane.ServicePort{svc("TCP", "Cluster", local, remote)}, fronts: both("TCP")},
		{name: "protocol is upper-cased, empty is TCP",
			ports: []plane.ServicePort{svc("", "Cluster", remote)}, fronts: both("TCP")},
		{name: "no endpoints: the kernel refuses",
			ports:    []plane.ServicePort{svc("UDP", "Cluster")},
			verdicts: refused("UDP", plane.ReasonNoEndpoints)},
		{name: "only unready endpoints: no endpoints",
			ports:    []plane.ServicePort{svc("TCP", "Cluster", unready)},
			verdicts: refused("TCP", plane.ReasonNoEndpoints)},
		{name: "serving terminating endpoints are used when none is ready",
			ports: []plane.ServicePort{svc("TCP", "Cluster", unready, terminating)}, fronts: both("TCP")},
		{name: "endpoints, but no app listens on the target port: refused",
			ports:    []plane.ServicePort{svc("TCP", "Cluster", nginx)},
			verdicts: refused("TCP", plane.ReasonNoListener)},
		{name: "a pod the cluster does not run counts as listening",
			ports: []plane.ServicePort{svc("TCP", "Cluster", remote, nginx)}, fronts: both("TCP")},
		{name: "the catalog is per protocol (netexec's UDP port is 8081, not 8080)",
			ports:    []plane.ServicePort{svc("UDP", "Cluster", local)},
			verdicts: refused("UDP", plane.ReasonNoListener)},
		{name: "Local policy, no local endpoint: blackhole for external traffic, pods bypass",
			ports: []plane.ServicePort{svc("TCP", "Local", remote)}, transparent: true, fronts: both("TCP"),
			rules: blackhole("TCP"),
			verdicts: map[frontKey]verdict{np("TCP"): {Service: "default/web", Result: plane.FlowDropped,
				Reason: plane.ReasonLocalPolicy, ExternalOnly: true}}},
		{name: "Local policy with a local endpoint: tproxy reply rule",
			ports:       []plane.ServicePort{svc("UDP", "Local", remote, ep("a", "node-1", "10.244.1.10:8081", true, true, false))},
			transparent: true, fronts: both("UDP"),
			rules: []netsim.Rule{tproxy("UDP", ep("a", "node-1", "10.244.1.10:8081", true, true, false))}},
		{name: "Local policy without transparent sockets: no tproxy rule",
			ports: []plane.ServicePort{svc("TCP", "Local", local)}, fronts: both("TCP")},
		{name: "Local policy over SCTP: no tproxy rule (SCTP cannot send from a foreign address)",
			ports: []plane.ServicePort{svc("SCTP", "Local", ep("s", "node-1", "10.244.1.30:8082", true, true, false))}, transparent: true, fronts: both("SCTP")},
		{name: "Local policy with no endpoints at all: refused, no blackhole",
			ports: []plane.ServicePort{svc("TCP", "Local")}, transparent: true,
			verdicts: refused("TCP", plane.ReasonNoEndpoints)},
		{name: "two services on one nodePort: the first keeps it",
			ports: []plane.ServicePort{svc("TCP", "Cluster", remote),
				{Service: "default/other", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.11"), Port: 80, NodePort: 30080,
					ExternalTrafficPolicy: "Cluster", Endpoints: []plane.Endpoint{remote}}},
			fronts: map[frontKey]planFront{
				cipKey("TCP"): {svc: "default/web:/TCP", service: "default/web"},
				np("TCP"):     {svc: "default/web:/TCP", service: "default/web", nodePort: true},
				{"TCP", netip.MustParseAddrPort("10.96.0.11:80")}: {svc: "default/other:/TCP", service: "default/other"},
			},
			warning: "default/web:/TCP and default/other:/TCP both want nodePort 0.0.0.0:30080/TCP"},
		{name: "a refusal does not hold where another service port listens",
			ports: []plane.ServicePort{svc("TCP", "Cluster", remote),
				{Service: "default/empty", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.12"), Port: 80, NodePort: 30080}},
			fronts: both("TCP"),
			verdicts: map[frontKey]verdict{{"TCP", netip.MustParseAddrPort("10.96.0.12:80")}: {Service: "default/empty",
				Result: plane.FlowRefused, Reason: plane.ReasonNoEndpoints}}},
		{name: "type ClusterIP: no nodePort",
			ports:  []plane.ServicePort{{Service: "default/web", Protocol: "TCP", ClusterIP: cip, Port: 80, Endpoints: []plane.Endpoint{remote}}},
			fronts: map[frontKey]planFront{cipKey("TCP"): {svc: "default/web:/TCP", service: "default/web"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := planProxy(tt.ports, planEnv{node: "node-1", podCIDRs: podCIDRs, transparent: tt.transparent, pods: pods})
			if !mapsEqual(pl.fronts, tt.fronts) {
				t.Errorf("fronts = %v, want %v", pl.fronts, tt.fronts)
			}
			var rules []netsim.Rule
			for r := range pl.rules {
				rules = append(rules, r)
			}
			if !sameRules(rules, tt.rules) {
				t.Errorf("rules = %+v, want %+v", rules, tt.rules)
			}
			if !mapsEqual(pl.verdicts, tt.verdicts) {
				t.Errorf("verdicts = %+v, want %+v", pl.verdicts, tt.verdicts)
			}
			if tt.warning == "" && len(pl.warnings) > 0 || tt.warning != "" && !slices.ContainsFunc(pl.warnings, func(w string) bool { return strings.Contains(w, tt.warning) }) {
				t.Errorf("warnings = %q, want %q", pl.warnings, tt.warning)
			}
			// Every service port is known by its key, in order.
			if len(pl.keys) != len(pl.ports) {
				t.Errorf("keys %v for ports %v", pl.keys, pl.ports)
			}
		})
	}
}

// TestPlanProxyDoesNotChangeItsInput: the plan is computed from a copy.
func TestPlanProxyDoesNotChangeItsInput(t *testing.T) {
	eps := []plane.Endpoint{ep("b", "node-2", "10.244.2.10:8080", true, true, false), ep("a", "node-1", "10.244.1.10:8080", true, true, false)}
	ports := []plane.ServicePort{{Service: "default/web", Protocol: "tcp", NodePort: 30080, Endpoints: eps}}
	planProxy(ports, planEnv{node: "node-1"})
	if ports[0].Protocol != "tcp" || ports[0].Endpoints[0].Pod != "b" {
		t.Errorf("planProxy changed its input: %+v", ports)
	}
}

func TestListenerSet(t *testing.T) {
	got := listenerSet(map[frontKey]planFront{
		{"UDP", netip.MustParseAddrPort("0.0.0.0:30081")}: {svc: "x", service: "default/web", nodePort: true},
		{"TCP", netip.MustParseAddrPort("10.96.0.10:80")}: {svc: "y", service: "default/web"},
		{"TCP", netip.MustParseAddrPort("0.0.0.0:30080")}: {svc: "y", service: "default/web", nodePort: true},
	})
	want := []plane.Listener{
		{Protocol: "TCP", Addr: netip.MustParseAddrPort("0.0.0.0:30080"), Service: "default/web", NodePort: true},
		{Protocol: "TCP", Addr: netip.MustParseAddrPort("10.96.0.10:80"), Service: "default/web"},
		{Protocol: "UDP", Addr: netip.MustParseAddrPort("0.0.0.0:30081"), Service: "default/web", NodePort: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("listenerSet = %+v, want %+v", got, want)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sameRules(got, want []netsim.Rule) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}
