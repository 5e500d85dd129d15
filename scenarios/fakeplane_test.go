package scenarios

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// fakePlane is a data plane in memory, for the runner's tests without
// root: a simplified kubelet (pods are ready once started, unless made
// unready or their app stopped) and kube-proxy (round robin over the ready
// endpoints whose app listens; Local policy; ClientIP affinity; link
// faults), reporting flows as the real one does. It is a model of what
// nodes/doc.go describes, good enough to run every lesson's steps; the
// lessons' real test is TestLessonsDataPlane.
type fakePlane struct {
	topo plane.Topology
	ctl  plane.Control

	mu       sync.Mutex
	pods     map[string]fakePod
	ports    []plane.ServicePort
	linkDown map[string]bool
	rr       map[string]int
	affinity map[string]string
}

type fakePod struct {
	node    string
	ip      netip.Addr
	listens map[string]bool // "8080/TCP"
	stopped bool
	unready bool
}

func fakeFactory(ctx context.Context, topo plane.Topology, _ plane.Options, ctl plane.Control) (plane.DataPlane, error) {
	return &fakePlane{topo: topo, ctl: ctl, pods: map[string]fakePod{}, linkDown: map[string]bool{}, rr: map[string]int{}, affinity: map[string]string{}}, nil
}

// startFake is Options.Start with the fake data plane.
func startFake(ctx context.Context, cfg lab.Config) (*lab.Lab, error) {
	cfg.DataPlane = fakeFactory
	return lab.Start(ctx, cfg)
}

// appPorts is what a pod's app listens on, as the image catalog says.
func appPorts(pod *corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for _, c := range pod.Spec.Containers {
		switch {
		case strings.Contains(c.Image, "agnhost"):
			http, udp := "8080", "8081"
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "--http-port="); ok {
					http = v
				}
				if v, ok := strings.CutPrefix(a, "--udp-port="); ok {
					udp = v
				}
				if v, ok := strings.CutPrefix(a, "--sctp-port="); ok {
					out[v+"/SCTP"] = true
				}
			}
			out[http+"/TCP"] = true
			if udp != "-1" {
				out[udp+"/UDP"] = true
			}
		case strings.HasPrefix(c.Image, "nginx"):
			out["80/TCP"] = true
		}
	}
	return out
}

func (f *fakePlane) StartPod(ctx context.Context, node string, pod *corev1.Pod, ip netip.Addr) error {
	f.mu.Lock()
	f.pods[pod.Name] = fakePod{node: node, ip: ip, listens: appPorts(pod)}
	f.mu.Unlock()
	f.ctl.PodStarted(pod.Name, node, "started")
	f.ctl.PodReady(pod.Name, true)
	return nil
}

func (f *fakePlane) StopPod(name string, _ time.Duration) {
	f.mu.Lock()
	delete(f.pods, name)
	f.mu.Unlock()
	f.ctl.PodStopped(name)
}

func (f *fakePlane) Logs(string, string, bool) ([]plane.LogLine, error) { return nil, nil }

func (f *fakePlane) SyncServices(ports []plane.ServicePort) {
	f.mu.Lock()
	f.ports = ports
	listeners := map[string][]plane.Listener{}
	for _, sp := range ports {
		if sp.NodePort == 0 || len(f.usable(sp)) == 0 {
			continue
		}
		for _, n := range f.topo.Nodes {
			listeners[n.Name] = append(listeners[n.Name], plane.Listener{Protocol: sp.Protocol,
				Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), sp.NodePort), Service: sp.Service, NodePort: true})
		}
	}
	f.mu.Unlock()
	for _, n := range f.topo.Nodes {
		f.ctl.Listening(n.Name, listeners[n.Name])
	}
}

// usable are the ready endpoints some app listens on; f.mu is held.
func (f *fakePlane) usable(sp plane.ServicePort) []plane.Endpoint {
	var out []plane.Endpoint
	for _, ep := range sp.Endpoints {
		p, ok := f.pods[ep.Pod]
		if ep.Ready && ok && p.listens[fmt.Sprintf("%d/%s", ep.Addr.Port(), sp.Protocol)] {
			out = append(out, ep)
		}
	}
	return out
}

func (f *fakePlane) Send(ctx context.Context, r plane.Request) (plane.Reply, error) {
	if r.Protocol == "SCTP" {
		return plane.Reply{}, fmt.Errorf("SCTP: %w", plane.ErrNotSupported)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var client netip.Addr
	fromNode := ""
	switch {
	case r.From == plane.ClientHost:
		client = f.topo.Client
	case strings.HasPrefix(r.From, "node-"):
		n, _ := f.topo.Node(r.From)
		client, fromNode = n.IP, n.Name
	default:
		p, ok := f.pods[r.From]
		if !ok {
			return plane.Reply{}, &plane.NotFoundError{Kind: "host", Name: r.From, Lab: f.topo.Lab}
		}
		client, fromNode = p.ip, p.node
	}
	timedOut := plane.Reply{Result: plane.FlowTimedOut, Err: fmt.Errorf("timeout")}
	entry, isNode := f.topo.NodeByIP(r.Target.Addr())
	var sp *plane.ServicePort
	for i := range f.ports {
		p := &f.ports[i]
		if p.Protocol != r.Protocol {
			continue
		}
		if isNode && p.NodePort == r.Target.Port() || !isNode && p.ClusterIP == r.Target.Addr() && p.Port == r.Target.Port() {
			sp = p
		}
	}
	if !isNode {
		if fromNode == "" {
			return plane.Reply{Result: plane.FlowError, Err: fmt.Errorf("network is unreachable")}, nil
		}
		entry, _ = f.topo.Node(fromNode)
	}
	if f.linkDown[entry.Name] && fromNode != entry.Name {
		return timedOut, nil
	}
	flow := plane.Flow{Protocol: r.Protocol, Client: netip.AddrPortFrom(client, 40000), EntryNode: entry.Name, Frontend: r.Target}
	if sp == nil {
		flow.Result, flow.Kernel = plane.FlowRefused, true
		f.ctl.Flow(flow)
		return plane.Reply{Result: plane.FlowRefused, Flow: &flow}, nil
	}
	flow.Service = sp.Service
	eps := f.usable(*sp)
	local := isNode && sp.ExternalTrafficPolicy == "Local" && r.From == plane.ClientHost
	if local && len(eps) > 0 {
		var mine []plane.Endpoint
		for _, ep := range eps {
			if ep.Node == entry.Name {
				mine = append(mine, ep)
			}
		}
		if len(mine) == 0 {
			flow.Result, flow.Reason, flow.Kernel = plane.FlowDropped, plane.ReasonLocalPolicy, true
			f.ctl.Flow(flow)
			return timedOut, nil
		}
		eps = mine
	}
	if len(eps) == 0 {
		flow.Result, flow.Reason, flow.Kernel = plane.FlowRefused, plane.ReasonNoEndpoints, true
		f.ctl.Flow(flow)
		return plane.Reply{Result: plane.FlowRefused, Flow: &flow}, nil
	}
	key := entry.Name + "/" + sp.Service + "/" + strconv.Itoa(int(sp.Port)) + sp.Protocol
	ep := eps[f.rr[key]%len(eps)]
	f.rr[key]++
	if sp.AffinityTimeout > 0 {
		ak := key + "/" + client.String()
		if pinned, ok := f.affinity[ak]; ok {
			for _, e := range eps {
				if e.Pod == pinned {
					ep = e
				}
			}
		}
		f.affinity[ak] = ep.Pod
	}
	pod := f.pods[ep.Pod]
	flow.Pod, flow.PodNode, flow.Backend = ep.Pod, ep.Node, ep.Addr
	switch {
	case f.linkDown[ep.Node] && ep.Node != entry.Name:
		flow.Result, flow.Reason = plane.FlowTimedOut, plane.ReasonNodeLinkDown
		f.ctl.Flow(flow)
		return timedOut, nil
	case pod.stopped:
		flow.Result, flow.Reason = plane.FlowReset, plane.ReasonAppStopped
		f.ctl.Flow(flow)
		return plane.Reply{Result: plane.FlowReset, Flow: &flow}, nil
	}
	switch {
	case local:
		flow.SourceSeen = client
	case ep.Node == entry.Name:
		flow.SourceSeen = entry.Gateway()
	default:
		flow.SourceSeen = entry.IP
	}
	flow.Result = plane.FlowOK
	f.ctl.Flow(flow)
	return plane.Reply{Body: ep.Pod, Status: 200, Result: plane.FlowOK, Flow: &flow}, nil
}

func (f *fakePlane) Command(r plane.Request) string { return "curl " + r.Target.String() + r.Message }

func (f *fakePlane) SetPodUnready(pod string, unready bool) error {
	f.mu.Lock()
	p := f.pods[pod]
	p.unready = unready
	f.pods[pod] = p
	ready := !p.unready && !p.stopped
	f.mu.Unlock()
	f.ctl.PodReady(pod, ready)
	return nil
}

func (f *fakePlane) SetAppRunning(pod string, running bool) error {
	f.mu.Lock()
	p := f.pods[pod]
	p.stopped = !running
	f.pods[pod] = p
	ready := !p.unready && !p.stopped
	f.mu.Unlock()
	f.ctl.PodReady(pod, ready)
	return nil
}

func (f *fakePlane) SetNodeLink(node string, up bool) error {
	f.mu.Lock()
	f.linkDown[node] = !up
	f.mu.Unlock()
	return nil
}

func (f *fakePlane) SetImpairment(node string, im plane.Impairment) error {
	if im.Delay > 0 || im.Jitter > 0 || im.LossPercent > 0 {
		return fmt.Errorf("netem: %w", plane.ErrNotSupported)
	}
	return nil
}

func (f *fakePlane) Close() error { return nil }
