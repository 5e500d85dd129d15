//go:build linux

package nodes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// Cluster is a running lab cluster: the network, one agent per node (pods,
// probes, proxy) and the outside client. It implements plane.DataPlane and
// reports through the plane.Control it was built with.
type Cluster struct {
	topo   plane.Topology
	opts   plane.Options
	ctl    plane.Control
	netw   netsim.Network
	nodes  map[string]*node
	order  []*node
	client netsim.Host
	seed   uint64
	flows  *flowBook
	// kernelFlows: every node's kernel is observed (observeKernels) and
	// the attempts it answered itself are reported (kernelFlow), so Send
	// waits for a flow even for a request no proxy socket saw. Set by New
	// before the cluster is used.
	kernelFlows bool

	// ctx ends when Close begins: pods stopping in the background cut
	// their grace period short.
	ctx    context.Context
	cancel context.CancelFunc

	// neighLimit is the kernel's neighbour table cap (0: unknown, as in
	// rootless mode); neighWarned: the lab was told it may exceed it.
	neighLimit  int
	neighWarned bool

	mu         sync.Mutex
	closed     bool
	starting   sync.WaitGroup // StartPod calls in flight; Close waits for them
	stops      sync.WaitGroup // StopPod goroutines; Close waits for them
	pods       map[string]*pod
	stopping   map[string]*pod // pods StopPod is removing
	buildSlots chan struct{}   // a token per pod being built (StartPod)
	building   int             // pods being built
	built      chan struct{}   // closed when building drops to 0; nil while it is 0
	veths      map[string]bool
	clusterIPs map[netip.Addr]bool

	hp hostPorts // the nodes' hostPort mappings (hostport_linux.go)
}

// node is one node agent.
type node struct {
	spec  plane.NodeSpec
	host  netsim.Host
	link  netsim.Link
	proxy *proxy
	down  atomic.Bool // SetNodeLink(false)
	// kernel observes the attempts the node's kernel answers itself;
	// nil when the cluster cannot observe (see observeKernels).
	kernel *kernelWatch
}

// New builds the network of topo and starts an agent per node:
//
//   - host "net" with bridge br0; host "node-N" with eth0 = node IP on the
//     bridge, ip_forward=1 and a route to every other node's pod range via
//     that node; host "client" with eth0 on the bridge and no route to pod
//     ranges.
//
// Everything the agents observe goes to ctl (nil: dropped). On error New
// removes whatever it built.
func New(ctx context.Context, topo plane.Topology, opts plane.Options, ctl plane.Control) (*Cluster, error) {
	if err := validateTopology(topo); err != nil {
		return nil, err
	}
	if opts.ProbeScale <= 0 {
		opts.ProbeScale = 1
	}
	mode, err := plane.ParseProxyMode(string(opts.ProxyMode))
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", topo.Lab, err)
	}
	opts.ProxyMode = mode
	if ctl == nil {
		ctl = nopControl{}
	}
	netw, err := netsim.New(topo.Lab)
	if err != nil {
		return nil, planeErr(err) // netsim.New's errors name the lab
	}
	topo.Nodes = append([]plane.NodeSpec(nil), topo.Nodes...)
	c := &Cluster{
		topo: topo, opts: opts, ctl: ctl, netw: netw, nodes: map[string]*node{}, seed: rand.Uint64(), flows: newFlowBook(),
		pods: map[string]*pod{}, stopping: map[string]*pod{}, veths: map[string]bool{}, clusterIPs: map[netip.Addr]bool{},
		buildSlots: make(chan struct{}, buildParallelism),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.build(ctx); err != nil {
		c.cancel()
		c.stopAgents()
		if cerr := netw.Close(); cerr != nil {
			err = fmt.Errorf("%w (and removing it: %v)", err, cerr)
		}
		return nil, fmt.Errorf("lab %q: %w", topo.Lab, planeErr(err))
	}
	c.observeKernels()
	if n, err := netsim.NeighbourLimit(); err == nil {
		c.neighLimit = n
	}
	return c, nil
}

func validateTopology(t plane.Topology) error {
	var errs []error
	if t.Lab == "" {
		errs = append(errs, errors.New("topology has no lab name"))
	}
	if len(t.Nodes) == 0 {
		errs = append(errs, fmt.Errorf("lab %q: topology has no nodes", t.Lab))
	}
	if !t.ClusterNet.IsValid() || !t.Client.IsValid() || !t.ClusterNet.Contains(t.Client) {
		errs = append(errs, fmt.Errorf("lab %q: client %v must be inside the cluster network %v", t.Lab, t.Client, t.ClusterNet))
	}
	seen := map[string]bool{}
	for _, n := range t.Nodes {
		if seen[n.Name] || n.Name == plane.ClientHost || n.Name == plane.BridgeHost || strings.HasPrefix(n.Name, "pod-") {
			errs = append(errs, fmt.Errorf("lab %q: node name %q is taken", t.Lab, n.Name))
		}
		seen[n.Name] = true
		if !t.ClusterNet.Contains(n.IP) {
			errs = append(errs, fmt.Errorf("lab %q: node %q: IP %v is outside the cluster network %v", t.Lab, n.Name, n.IP, t.ClusterNet))
		}
		if !n.PodCIDR.IsValid() || n.PodCIDR.Bits() > 30 {
			errs = append(errs, fmt.Errorf("lab %q: node %q: pod range %v is not a usable prefix", t.Lab, n.Name, n.PodCIDR))
		}
	}
	return errors.Join(errs...)
}

// buildParallelism bounds the hosts built at once, when New builds the
// nodes and when pods start. The kernel serializes most of the work (the
// RTNL lock), but each host also waits: for its namespace's thread, for
// a veth's carrier (linkwatch runs in a kernel worker), for its first
// sockets. Building several at once overlaps those waits.
const buildParallelism = 8

func (c *Cluster) build(ctx context.Context) error {
	t := c.topo
	br, err := c.netw.AddHost(plane.BridgeHost)
	if err != nil {
		return err
	}
	if err := c.netw.AddBridge(br, BridgeDev); err != nil {
		return err
	}
	var podCIDRs []netip.Prefix
	for _, ns := range t.Nodes {
		podCIDRs = append(podCIDRs, ns.PodCIDR.Masked())
	}
	// The nodes and the client, in parallel.
	nodes := make([]*node, len(t.Nodes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(buildParallelism)
	g.Go(func() error { return c.buildClient(br) })
	for i, ns := range t.Nodes {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			n, err := c.buildNode(br, i, ns, podCIDRs)
			nodes[i] = n
			return err
		})
	}
	err = g.Wait()
	for _, n := range nodes {
		if n != nil { // on error too: New stops the agents of those built
			c.nodes[n.spec.Name] = n
			c.order = append(c.order, n)
		}
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

// buildNode makes node i: host "node-N" with eth0 = node IP on the bridge,
// ip_forward=1 and a route to every other node's pod range via that node,
// and its agent's proxy (which listens on nothing yet).
func (c *Cluster) buildNode(br netsim.Host, i int, ns plane.NodeSpec, podCIDRs []netip.Prefix) (*node, error) {
	t := c.topo
	h, err := c.netw.AddHost(ns.Name)
	if err != nil {
		return nil, err
	}
	l, err := c.netw.AddLink(netsim.LinkSpec{Name: ns.Name,
		A: netsim.LinkEnd{Host: h, Dev: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(ns.IP, t.ClusterNet.Bits())}},
		B: netsim.LinkEnd{Host: br, Dev: bridgePort(ns.Name, i), Bridge: BridgeDev},
	})
	if err != nil {
		return nil, err
	}
	if err := h.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return nil, fmt.Errorf("node %q: %w", ns.Name, err)
	}
	// The proxy's connections to pods leave TIME_WAIT in the node, where
	// kernel DNAT leaves none: the proxy passes the client's FIN on first.
	// Once the even half of the ephemeral range is in TIME_WAIT towards a
	// pod, every connect(2) walks all of it looking for a free port (65%
	// of the CPU at a few thousand connections a second, in
	// __inet_hash_connect). Reusing a TIME_WAIT port after a second, as
	// proxies' hosts are told to, keeps the walk short.
	if err := h.Sysctl("net.ipv4.tcp_tw_reuse", "1"); err != nil {
		return nil, fmt.Errorf("node %q: %w", ns.Name, err)
	}
	for _, other := range t.Nodes {
		if other.Name == ns.Name {
			continue
		}
		if err := h.AddRoute(netsim.Route{Dst: other.PodCIDR.Masked(), Via: other.IP}); err != nil {
			return nil, fmt.Errorf("node %q: route to %s's pods: %w", ns.Name, other.Name, err)
		}
	}
	n := &node{spec: ns, host: h, link: l}
	n.proxy = newProxy(proxyEnv{
		watch: func(ws []netsim.Watch) { n.kernel.setWatch(ws) },
		node:  ns.Name, host: h, nodeIP: ns.IP, podCIDR: ns.PodCIDR, podCIDRs: podCIDRs,
		isPodIP: t.IsPodIP, isNodeIP: c.isNodeIP, serviceCIDR: t.ServiceCIDR,
		mode: c.opts.ProxyMode, ctl: c.ctl, report: c.reportFlow, pods: c.podFacts,
		explain: func(pod, podNode string) (plane.FlowReason, string) { return c.explain(ns.Name, pod, podNode) },
		seed:    c.seed + uint64(i)*104729,
	})
	return n, nil
}

// buildClient makes host "client" with eth0 on the bridge and no route to
// pod ranges.
func (c *Cluster) buildClient(br netsim.Host) error {
	t := c.topo
	cl, err := c.netw.AddHost(plane.ClientHost)
	if err != nil {
		return err
	}
	if _, err := c.netw.AddLink(netsim.LinkSpec{Name: plane.ClientHost,
		A: netsim.LinkEnd{Host: cl, Dev: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(t.Client, t.ClusterNet.Bits())}},
		B: netsim.LinkEnd{Host: br, Dev: plane.ClientHost, Bridge: BridgeDev},
	}); err != nil {
		return err
	}
	c.client = cl
	return nil
}

func (c *Cluster) isNodeIP(a netip.Addr) bool {
	_, ok := c.topo.NodeByIP(a)
	return ok
}

// podFacts snapshots what the running pods' apps listen on, for the
// proxies' plans.
func (c *Cluster) podFacts() map[string]podFacts {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]podFacts, len(c.pods))
	for name, p := range c.pods {
		m[name] = podFacts{ip: p.ip, specs: p.specs}
	}
	return m
}

// explain says why an attempt from node entry to pod on podNode failed,
// when the cluster knows: a link on the path is down, or the pod's app is
// stopped. It returns "" when it knows nothing.
func (c *Cluster) explain(entry, pod, podNode string) (plane.FlowReason, string) {
	if podNode != entry {
		for _, name := range []string{entry, podNode} {
			if n := c.nodes[name]; n != nil && n.down.Load() {
				return plane.ReasonNodeLinkDown, name + "'s link is down"
			}
		}
	}
	c.mu.Lock()
	p := c.pods[pod]
	c.mu.Unlock()
	if p != nil && p.isAppStopped() {
		return plane.ReasonAppStopped, "the app of pod " + pod + " is stopped"
	}
	return plane.ReasonNone, ""
}

// reportFlow is where every finished flow goes: to the control plane, and
// to a Send waiting for the flow of its request. It is also the hook for
// flows the nodes' kernels answered (see kernelFlow).
func (c *Cluster) reportFlow(f plane.Flow) {
	c.ctl.Flow(f)
	c.flows.add(f)
}

// kernelFlow completes and reports a flow that a node's kernel answered
// without any proxy socket: a refusal (no listener) or a Local-policy drop,
// as the node's observer saw it (watchKernel): start is when its first
// packet arrived. It fills in the Service and the reason from the node's
// plan in force then (proxy.verdict) and resolves a Send waiting for it.
// It reports nothing when the node knows no verdict for the frontend.
func (c *Cluster) kernelFlow(nodeName, proto string, client, frontend netip.AddrPort, start time.Time) bool {
	n := c.nodes[nodeName]
	if n == nil {
		return false
	}
	if c.hostPortFlow(n, proto, client, frontend, start) {
		return true
	}
	v, ok := n.proxy.verdict(proto, frontend, client.Addr(), start)
	if !ok {
		return false
	}
	c.reportFlow(plane.Flow{Protocol: proto, Client: client, EntryNode: nodeName, Frontend: frontend,
		Service: v.Service, PortName: v.PortName, Result: v.Result, Reason: v.Reason, Kernel: true,
		Start: start, Duration: time.Since(start)})
	return true
}

// Topology returns the cluster's plan.
func (c *Cluster) Topology() plane.Topology { return c.topo }

// Network returns the lab's network (for tools that look inside).
func (c *Cluster) Network() netsim.Network { return c.netw }

// Close stops every agent, pod and proxy and removes every namespace of
// the lab. It is safe to call twice.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	// A StartPod in flight sees closed when it is about to publish its
	// pod and tears it down itself; a StopPod in flight cuts its grace
	// period short. Wait for both, so no app or prober outlives the lab.
	c.starting.Wait()
	c.stops.Wait()
	c.mu.Lock()
	pods := c.pods
	c.pods = map[string]*pod{}
	c.mu.Unlock()
	for _, p := range pods {
		p.stopRunning()
	}
	c.stopAgents()
	return planeErr(c.netw.Close())
}

// stopAgents stops every node's kernel observer (before the node's
// namespace goes) and then its proxy. The observers close side by side:
// closing a packet socket waits for an RCU grace period
// (synchronize_net in packet_release), ~10 ms each, and one after the
// other the 100 nodes of a large lab took 1-1.5 s of its tear-down.
func (c *Cluster) stopAgents() {
	var wg sync.WaitGroup
	for _, n := range c.order {
		wg.Go(n.kernel.close)
	}
	wg.Wait()
	for _, n := range c.order {
		n.proxy.close()
	}
}

func (c *Cluster) node(name string) (*node, error) {
	n := c.nodes[name]
	if n == nil {
		return nil, &plane.NotFoundError{Kind: "node", Name: name, Lab: c.topo.Lab}
	}
	return n, nil
}

// SetNodeLink takes a node's link to the cluster network down or up.
// Flows that fail on the way to or from that node then say so
// (plane.ReasonNodeLinkDown).
// Equivalent to: ip -n nplab-<lab>-<node> link set eth0 down
func (c *Cluster) SetNodeLink(name string, up bool) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	if err := n.link.SetUp(up); err != nil {
		return fmt.Errorf("node %q: set link up=%v: %w", name, up, planeErr(err))
	}
	n.down.Store(!up)
	return nil
}

// SetImpairment gives a node's link delay, jitter and loss (netem) and a
// rate limit (tbf), in each direction; the zero Impairment heals it. Where
// the kernel lacks netem the error wraps plane.ErrNotSupported (and
// netsim.ErrNotSupported) and says so.
// Equivalent to: tc -n nplab-<lab>-<node> qdisc replace dev eth0 root netem delay <d> <jitter> loss <p>% (and tbf rate <r>bit)
func (c *Cluster) SetImpairment(name string, im plane.Impairment) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	if err := n.link.SetImpairment(netsim.Impairment{Delay: im.Delay, Jitter: im.Jitter, LossPercent: im.LossPercent}); err != nil {
		return fmt.Errorf("node %q: %s: %w", name, im, planeErr(err))
	}
	if err := n.link.SetRate(im.RateBitsPerSec); err != nil {
		return fmt.Errorf("node %q: %s: %w", name, im, planeErr(err))
	}
	return nil
}

// SyncServices makes every node's proxy serve exactly ports (the full
// desired state) and every ClusterIP a local address of every node. It is
// cheap to call often: unchanged listeners and flows are kept.
func (c *Cluster) SyncServices(ports []plane.ServicePort) {
	c.settle()
	want := map[netip.Addr]bool{}
	for _, sp := range ports {
		if sp.ClusterIP.IsValid() {
			want[sp.ClusterIP] = true
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	var add, del []netip.Addr
	for a := range want {
		if !c.clusterIPs[a] {
			add = append(add, a)
		}
	}
	for a := range c.clusterIPs {
		if !want[a] {
			del = append(del, a)
		}
	}
	for _, a := range add {
		c.clusterIPs[a] = true
	}
	for _, a := range del {
		delete(c.clusterIPs, a)
	}
	c.mu.Unlock()
	sortAddrs(add)
	var wg sync.WaitGroup
	for _, n := range c.order {
		wg.Go(func() {
			// ClusterIPs live on lo, as on IPVS's kube-ipvs0 dummy.
			for _, a := range add {
				if err := n.host.AddAddr("lo", netip.PrefixFrom(a, 32)); err != nil {
					n.proxy.warn("ClusterIP %s: %v", a, err)
				}
			}
			n.proxy.sync(ports)
			for _, a := range del {
				if err := n.host.DelAddr("lo", netip.PrefixFrom(a, 32)); err != nil {
					n.proxy.warn("ClusterIP %s: %v", a, err)
				}
			}
		})
	}
	wg.Wait()
}

func sortAddrs(as []netip.Addr) {
	sort.Slice(as, func(i, j int) bool { return as[i].Less(as[j]) })
}

// specsOf reads a pod's containers through the image catalog.
func specsOf(p *corev1.Pod) ([]apps.Spec, []string) {
	var specs []apps.Spec
	var notices []string
	for _, ctr := range p.Spec.Containers {
		s, n := apps.FromContainer(ctr)
		specs = append(specs, s)
		notices = append(notices, n...)
	}
	return specs, notices
}
