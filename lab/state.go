package lab

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/plane"
)

// State is a snapshot of a lab: what a student's screen shows. It is the
// fold of the lab's events — Watch gives a State and the events after it,
// and [State.Apply] folds each event in, so a watcher's State stays what
// the lab's own would be. The slices and maps inside the values of a State
// are never modified in place; a State from Watch or Clone is the
// caller's.
type State struct {
	// Seq is the last event folded in.
	Seq uint64
	Lab string
	// NodePortRange is --service-node-port-range.
	NodePortRange string
	// Client is the outside client's address.
	Client netip.Addr
	// Nodes in topology order.
	Nodes []NodeState
	// Services and Pods by name.
	Services map[string]ServiceState
	Pods     map[string]PodState
	// Flows counts the attempts through the nodes.
	Flows map[FlowKey]FlowCount
}

// NodeState is one node.
type NodeState struct {
	Name    string
	IP      netip.Addr
	PodCIDR netip.Prefix
	// LinkUp is false while the node's link to the cluster network is down.
	LinkUp bool
	// Impairment is the delay, loss and rate limit on its link.
	Impairment plane.Impairment
	// Listeners are the sockets the node's proxy listens on (none without
	// a data plane). A Service with no usable endpoint has none: the
	// kernel answers instead, as kube-proxy's REJECT rule would.
	Listeners []plane.Listener
}

// ServiceState is one Service, with its endpoints per port.
type ServiceState struct {
	Name                  string
	Type                  corev1.ServiceType
	ClusterIP             string // "None" for headless, "" for ExternalName
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy
	SessionAffinity       corev1.ServiceAffinity
	Selector              map[string]string
	Ports                 []PortState
}

// PortState is one port of a Service.
type PortState struct {
	Name       string
	Protocol   corev1.Protocol
	Port       int32
	TargetPort string
	NodePort   int32 // 0: none
	// Endpoints are the port's endpoints with their EndpointSlice
	// conditions, as kube-proxy reads them.
	Endpoints []plane.Endpoint
}

// PodState is one pod.
type PodState struct {
	Name   string
	Labels map[string]string
	// Deployment owns the pod ("" for a bare pod).
	Deployment string
	Node       string     // "" while Pending without a node
	IP         netip.Addr // invalid until scheduled
	Phase      corev1.PodPhase
	Ready      bool
	// Terminating: deleted, and waiting for its app to stop.
	Terminating bool
	// Status is `kubectl get pods`' STATUS: Running, Pending, Init:0/1,
	// Init:Error, Error, CrashLoopBackOff, Completed, Terminating...
	Status string
	// Restarts is how often the kubelet restarted the pod's containers
	// (init containers included), RESTARTS without the "(5s ago)".
	Restarts int32
	// Reason is why a pod is not running (the scheduler's message).
	Reason string
	// ForcedUnready and AppStopped are the faults a student injected.
	ForcedUnready bool
	AppStopped    bool
}

// FlowKey is what flows are counted by.
type FlowKey struct {
	Service  string // "default/web"; "" when the node knew no Service there
	Node     string // the entry node
	Pod      string // "" when no pod was chosen
	Protocol string
	Result   plane.FlowResult
}

// FlowCount is the attempts of one FlowKey.
type FlowCount struct {
	Count             int64
	BytesIn, BytesOut int64
	// SourceSeen is the source address the pod saw, the last time.
	SourceSeen netip.Addr
}

// Clone returns a copy that shares nothing mutable with s.
func (s State) Clone() State {
	c := s
	c.Nodes = slices.Clone(s.Nodes)
	c.Services = maps.Clone(s.Services)
	c.Pods = maps.Clone(s.Pods)
	c.Flows = maps.Clone(s.Flows)
	return c
}

// Apply folds e into s: the object state it carries replaces the old one
// (or removes it), and a flow is counted.
func (s *State) Apply(e Event) {
	if e.Seq > s.Seq {
		s.Seq = e.Seq
	}
	kind, name, _ := strings.Cut(e.Object, "/")
	switch {
	case e.Pod != nil:
		if s.Pods == nil {
			s.Pods = map[string]PodState{}
		}
		s.Pods[e.Pod.Name] = *e.Pod
	case e.Service != nil:
		if s.Services == nil {
			s.Services = map[string]ServiceState{}
		}
		s.Services[e.Service.Name] = *e.Service
	case e.Node != nil:
		for i := range s.Nodes {
			if s.Nodes[i].Name == e.Node.Name {
				s.Nodes[i] = *e.Node
			}
		}
	case e.Removed:
		switch kind {
		case "pod":
			delete(s.Pods, name)
		case "service", "endpoints":
			delete(s.Services, name)
		}
	}
	if f := e.Flow; f != nil {
		if s.Flows == nil {
			s.Flows = map[FlowKey]FlowCount{}
		}
		k := FlowKey{Service: f.Service, Node: f.EntryNode, Pod: f.Pod, Protocol: f.Protocol, Result: f.Result}
		c := s.Flows[k]
		c.Count++
		c.BytesIn += f.BytesIn
		c.BytesOut += f.BytesOut
		if f.SourceSeen.IsValid() {
			c.SourceSeen = f.SourceSeen
		}
		s.Flows[k] = c
	}
}

// PodCounts is how many attempts through Service service ("web" or
// "default/web") reached each pod (result ok).
func (s State) PodCounts(service string) map[string]int64 {
	if !strings.Contains(service, "/") {
		service = Namespace + "/" + service
	}
	out := map[string]int64{}
	for k, c := range s.Flows {
		if k.Service == service && k.Pod != "" && k.Result == plane.FlowOK {
			out[k.Pod] += c.Count
		}
	}
	return out
}

// PodNames returns the pods' names, sorted.
func (s State) PodNames() []string { return slices.Sorted(maps.Keys(s.Pods)) }

// ServiceNames returns the Services' names, sorted.
func (s State) ServiceNames() []string { return slices.Sorted(maps.Keys(s.Services)) }

// Node returns the node named name.
func (s State) Node(name string) (NodeState, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodeState{}, false
}

// nodeRuntime is what the lab knows of a node beyond its plan: the faults
// on it and what its proxy listens on.
type nodeRuntime struct {
	linkDown   bool
	impairment plane.Impairment
	listeners  []plane.Listener
}

// initialState is the state of a new lab, before any event.
func (l *Lab) initialState() State {
	s := State{
		Lab:           l.name,
		NodePortRange: l.reg.NodePortRange().String(),
		Client:        l.topo.Client,
		Services:      map[string]ServiceState{},
		Pods:          map[string]PodState{},
		Flows:         map[FlowKey]FlowCount{},
	}
	for _, n := range l.topo.Nodes {
		s.Nodes = append(s.Nodes, l.nodeState(n.Name))
	}
	for _, svc := range l.reg.ListServices() {
		s.Services[svc.Name] = l.serviceStateOf(svc)
	}
	return s
}

// attachState sets e's object state from the lab as it is now. l.mu is held.
func (l *Lab) attachState(e *Event) {
	kind, name, ok := strings.Cut(e.Object, "/")
	if !ok || name == "" {
		return
	}
	switch kind {
	case "pod":
		if p, ok := l.reg.PeekPod(Namespace, name); ok {
			ps := l.podStateOf(p)
			e.Pod = &ps
		} else {
			e.Removed = true
		}
	case "service", "endpoints":
		if svc, ok := l.reg.PeekService(Namespace, name); ok {
			ss := l.serviceStateOf(svc)
			e.Service = &ss
		} else {
			e.Removed = true
		}
	case "node":
		if _, ok := l.topo.Node(name); ok {
			ns := l.nodeState(name)
			e.Node = &ns
		}
	}
}

// syncState emits an Updated event for every pod and Service whose state
// changed without an event of its own, so the lab's State (the fold of its
// events) always matches its objects. pods and services are the sorted
// names of those that may have changed since the last call (afterChange
// knows them from the registry's change log; every other object's state
// is what the lab's State holds already). l.mu is held.
func (l *Lab) syncState(pods, services []string) {
	for _, name := range pods {
		if p, ok := l.reg.PeekPod(Namespace, name); ok {
			ps := l.podStateOf(p)
			if old, ok := l.state.Pods[name]; !ok || !reflect.DeepEqual(old, ps) {
				l.emitEvent(Event{Type: EventUpdated, Object: "pod/" + name, Message: "pod updated", Pod: &ps})
			}
		}
	}
	for _, name := range pods {
		if _, ok := l.reg.PeekPod(Namespace, name); ok {
			continue
		}
		if _, ok := l.state.Pods[name]; ok {
			l.emitEvent(Event{Type: EventUpdated, Object: "pod/" + name, Message: "pod gone", Removed: true})
		}
	}
	for _, name := range services {
		if svc, ok := l.reg.PeekService(Namespace, name); ok {
			ss := l.serviceStateOf(svc)
			if old, ok := l.state.Services[name]; !ok || !reflect.DeepEqual(old, ss) {
				l.emitEvent(Event{Type: EventUpdated, Object: "service/" + name, Message: "service updated", Service: &ss})
			}
		}
	}
	for _, name := range services {
		if _, ok := l.reg.PeekService(Namespace, name); ok {
			continue
		}
		if _, ok := l.state.Services[name]; ok {
			l.emitEvent(Event{Type: EventUpdated, Object: "service/" + name, Message: "service gone", Removed: true})
		}
	}
}

func (l *Lab) nodeState(name string) NodeState {
	spec, _ := l.topo.Node(name)
	rt := l.nodeRT[name]
	ns := NodeState{Name: spec.Name, IP: spec.IP, PodCIDR: spec.PodCIDR, LinkUp: true}
	if rt != nil {
		ns.LinkUp = !rt.linkDown
		ns.Impairment = rt.impairment
		ns.Listeners = rt.listeners
	}
	return ns
}

func (l *Lab) podStateOf(p *corev1.Pod) PodState {
	ps := PodState{
		Name:          p.Name,
		Labels:        p.Labels,
		Node:          p.Spec.NodeName,
		Phase:         p.Status.Phase,
		Ready:         podReady(p),
		Terminating:   p.DeletionTimestamp != nil,
		ForcedUnready: l.forcedUnready[p.Name],
		AppStopped:    l.appStopped[p.Name],
	}
	if ps.Phase == "" {
		ps.Phase = corev1.PodPending
	}
	ps.Status = kubectl.PodStatusText(p)
	for _, c := range p.Status.InitContainerStatuses {
		ps.Restarts += c.RestartCount
	}
	for _, c := range p.Status.ContainerStatuses {
		ps.Restarts += c.RestartCount
	}
	ps.IP, _ = netip.ParseAddr(p.Status.PodIP)
	for _, ref := range p.OwnerReferences {
		if ref.Kind == "ReplicaSet" {
			ps.Deployment = strings.TrimSuffix(ref.Name, "-"+p.Labels["pod-template-hash"])
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			ps.Reason = c.Message
		}
	}
	return ps
}

func (l *Lab) serviceStateOf(svc *corev1.Service) ServiceState {
	ss := ServiceState{
		Name:                  svc.Name,
		Type:                  svc.Spec.Type,
		ClusterIP:             svc.Spec.ClusterIP,
		ExternalTrafficPolicy: svc.Spec.ExternalTrafficPolicy,
		SessionAffinity:       svc.Spec.SessionAffinity,
		Selector:              svc.Spec.Selector,
	}
	ports := l.portsOf(svc)
	for i, sp := range svc.Spec.Ports {
		ps := PortState{Name: sp.Name, Protocol: sp.Protocol, Port: sp.Port, TargetPort: sp.TargetPort.String(), NodePort: sp.NodePort}
		if i < len(ports) {
			ps.Endpoints = ports[i].Endpoints
		}
		ss.Ports = append(ss.Ports, ps)
	}
	return ss
}

// FlowString is one line for a flow:
// "TCP 172.18.0.100:41234 → node-1 172.18.0.2:30080 → pod web-x (node-2) 10.244.2.2:8080: ok, 120 B in, 310 B out, 2ms, pod saw 172.18.0.2".
func FlowString(f *plane.Flow) string {
	client := f.Client.String()
	if f.Client.Port() == 0 && f.Client.Addr().IsValid() {
		client = f.Client.Addr().String() // no source port: the connect never left
	}
	s := fmt.Sprintf("%s %s → %s %s", f.Protocol, client, f.EntryNode, f.Frontend)
	if f.HostPort {
		// "TCP 172.18.0.100:41234 → node-1 172.18.0.2:9090 (hostPort) → pod web (node-1) 10.244.1.2:8080: ok, DNAT by node-1's kernel (CNI portmap), pod saw 172.18.0.100"
		s += fmt.Sprintf(" (hostPort) → pod %s (%s) %s: %s", f.Pod, f.PodNode, f.Backend, f.Result)
		if f.Result != plane.FlowOK && f.Detail != "" {
			s += " (" + f.Detail + ")"
		}
		s += fmt.Sprintf(", DNAT by %s's kernel (CNI portmap)", f.EntryNode)
		if f.Result == plane.FlowOK {
			s += ", pod saw " + f.SourceSeen.String()
		}
		return s
	}
	if f.Pod != "" {
		s += fmt.Sprintf(" → pod %s (%s) %s", f.Pod, f.PodNode, f.Backend)
	}
	s += ": " + string(f.Result)
	if f.Result == plane.FlowOK {
		s += fmt.Sprintf(", %d B in, %d B out, %s", f.BytesIn, f.BytesOut, f.Duration.Round(100_000))
		if f.SourceSeen.IsValid() {
			s += ", pod saw " + f.SourceSeen.String()
		}
		return s
	}
	why := string(f.Reason)
	switch {
	case f.Detail == "":
	case f.Reason == plane.ReasonNodeLinkDown || f.Reason == plane.ReasonAppStopped:
		// The detail says the reason again, naming the node or pod
		// ("node-2's link is down"): say it once.
		why = f.Detail
	case why != "":
		why += ": " + f.Detail
	default:
		why = f.Detail
	}
	if why != "" {
		s += " (" + why + ")"
	}
	if f.Kernel {
		if f.Result == plane.FlowRefused {
			s += ", answered by the node's kernel"
		} else {
			// Nothing answered a drop: say where it happened.
			s += ", in the node's kernel"
		}
	}
	return s
}
