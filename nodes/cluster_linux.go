package nodes

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// Host names in the lab's network.
const (
	BridgeHost = "net"    // the namespace holding the cluster bridge
	BridgeDev  = "br0"    // the bridge
	ClientHost = "client" // the outside "laptop"
)

// Config is how to build a Cluster.
type Config struct {
	Topology Topology
	// ProxyMode is how every node's proxy picks endpoints; "" is random.
	ProxyMode ProxyMode
	// OnEvent receives every event, from agent goroutines, in order per
	// node. Events queue without bound while it runs, so it may call back
	// into the Cluster (StartPod, SyncServices, StopPod...), but not Close,
	// which waits for every queued event. Nil drops events.
	OnEvent func(Event)
	// ProbeScale multiplies the kubelet's and the apps' times: readiness
	// probes' initialDelaySeconds, periodSeconds and timeoutSeconds, and
	// netexec's --delay-shutdown. 0 means 1 (real time); tests use 0.05
	// so a 10 s period takes half a second.
	ProbeScale float64
}

// Cluster is a running lab cluster: the network, one agent per node (pods,
// probes, proxy) and the outside client.
type Cluster struct {
	cfg    Config
	netw   netsim.Network
	nodes  map[string]*node
	order  []*node
	client netsim.Host
	seed   uint64

	mu         sync.Mutex
	closed     bool
	starting   sync.WaitGroup // StartPod calls in flight; Close waits for them
	pods       map[string]*pod
	veths      map[string]bool
	clusterIPs map[netip.Addr]bool
}

// node is one node agent.
type node struct {
	spec   NodeSpec
	host   netsim.Host
	link   netsim.Link
	proxy  *proxy
	events *emitter
}

// NewCluster builds the network of cfg.Topology and starts an agent per
// node:
//
//   - host "net" with bridge br0; host "node-N" with eth0 = node IP on the
//     bridge, ip_forward=1 and a route to every other node's pod range via
//     that node; host "client" with eth0 on the bridge and no route to pod
//     ranges.
//
// On error it removes whatever it built.
func NewCluster(ctx context.Context, cfg Config) (*Cluster, error) {
	t := cfg.Topology
	if err := validateTopology(t); err != nil {
		return nil, err
	}
	if cfg.ProbeScale <= 0 {
		cfg.ProbeScale = 1
	}
	if cfg.ProxyMode == "" {
		cfg.ProxyMode = ProxyRandom
	}
	if cfg.ProxyMode != ProxyRandom && cfg.ProxyMode != ProxyRoundRobin {
		return nil, fmt.Errorf("lab %q: unknown proxy mode %q (want %q or %q)", t.Lab, cfg.ProxyMode, ProxyRandom, ProxyRoundRobin)
	}
	netw, err := netsim.New(t.Lab)
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", t.Lab, err)
	}
	c := &Cluster{
		cfg: cfg, netw: netw, nodes: map[string]*node{}, seed: rand.Uint64(),
		pods: map[string]*pod{}, veths: map[string]bool{}, clusterIPs: map[netip.Addr]bool{},
	}
	if err := c.build(ctx); err != nil {
		c.stopAgents()
		if cerr := netw.Close(); cerr != nil {
			err = fmt.Errorf("%w (and removing it: %v)", err, cerr)
		}
		return nil, fmt.Errorf("lab %q: %w", t.Lab, err)
	}
	return c, nil
}

func validateTopology(t Topology) error {
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
		if seen[n.Name] || n.Name == ClientHost || n.Name == BridgeHost || strings.HasPrefix(n.Name, "pod-") {
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

func (c *Cluster) build(ctx context.Context) error {
	t := c.cfg.Topology
	br, err := c.netw.AddHost(BridgeHost)
	if err != nil {
		return err
	}
	if err := c.netw.AddBridge(br, BridgeDev); err != nil {
		return err
	}
	bits := t.ClusterNet.Bits()
	var podCIDRs []netip.Prefix
	for _, ns := range t.Nodes {
		podCIDRs = append(podCIDRs, ns.PodCIDR.Masked())
	}
	for i, ns := range t.Nodes {
		h, err := c.netw.AddHost(ns.Name)
		if err != nil {
			return err
		}
		l, err := c.netw.AddLink(netsim.LinkSpec{Name: ns.Name,
			A: netsim.LinkEnd{Host: h, Dev: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(ns.IP, bits)}},
			B: netsim.LinkEnd{Host: br, Dev: bridgePort(ns.Name, i), Bridge: BridgeDev},
		})
		if err != nil {
			return err
		}
		if err := h.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
			return fmt.Errorf("node %q: %w", ns.Name, err)
		}
		for _, other := range t.Nodes {
			if other.Name == ns.Name {
				continue
			}
			if err := h.AddRoute(netsim.Route{Dst: other.PodCIDR.Masked(), Via: other.IP}); err != nil {
				return fmt.Errorf("node %q: route to %s's pods: %w", ns.Name, other.Name, err)
			}
		}
		n := &node{spec: ns, host: h, link: l, events: newEmitter(c.cfg.OnEvent)}
		n.proxy = newProxy(proxyEnv{
			node: ns.Name, host: h, nodeIP: ns.IP, podCIDR: ns.PodCIDR, podCIDRs: podCIDRs,
			isPodIP: c.isPodIP, isNodeIP: c.isNodeIP, listens: c.endpointListens, serviceCIDR: t.ServiceCIDR,
			mode: c.cfg.ProxyMode, emit: n.events.emit, seed: c.seed + uint64(i)*104729,
		})
		c.nodes[ns.Name] = n
		c.order = append(c.order, n)
	}
	cl, err := c.netw.AddHost(ClientHost)
	if err != nil {
		return err
	}
	if _, err := c.netw.AddLink(netsim.LinkSpec{Name: ClientHost,
		A: netsim.LinkEnd{Host: cl, Dev: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(t.Client, bits)}},
		B: netsim.LinkEnd{Host: br, Dev: ClientHost, Bridge: BridgeDev},
	}); err != nil {
		return err
	}
	c.client = cl
	return ctx.Err()
}

// bridgePort names a node's port on the bridge: the node's name when it
// fits in an interface name, else "n<index>".
func bridgePort(node string, i int) string {
	if len(node) <= netsim.MaxDevName && node != BridgeDev && node != ClientHost {
		return node
	}
	return fmt.Sprintf("n%d", i+1)
}

func (c *Cluster) isPodIP(a netip.Addr) bool {
	for _, n := range c.cfg.Topology.Nodes {
		if n.PodCIDR.Contains(a) {
			return true
		}
	}
	return false
}

func (c *Cluster) isNodeIP(a netip.Addr) bool {
	for _, n := range c.cfg.Topology.Nodes {
		if n.IP == a {
			return true
		}
	}
	return false
}

// endpointListens reports whether e's pod runs an app listening on e's
// port for protocol, as the image catalog says (nginx listens on 80 only,
// whatever containerPort says). An endpoint whose pod this cluster does
// not run (yet, or any more) counts as listening.
func (c *Cluster) endpointListens(e Endpoint, protocol string) bool {
	c.mu.Lock()
	p := c.pods[e.Pod]
	c.mu.Unlock()
	if p == nil || p.ip != e.Addr.Addr() {
		return true
	}
	for _, s := range p.specs {
		if s.Listens(protocol, e.Addr.Port()) {
			return true
		}
	}
	return false
}

// Topology returns the cluster's plan.
func (c *Cluster) Topology() Topology { return c.cfg.Topology }

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
	// A StartPod in flight sees closed when it is about to publish its
	// pod and tears it down itself; wait for those, so no app or prober
	// outlives the lab.
	c.starting.Wait()
	c.mu.Lock()
	pods := c.pods
	c.pods = map[string]*pod{}
	c.mu.Unlock()
	for _, p := range pods {
		p.stopRunning()
	}
	c.stopAgents()
	return c.netw.Close()
}

func (c *Cluster) stopAgents() {
	for _, n := range c.order {
		n.proxy.close()
	}
	for _, n := range c.order {
		n.events.close()
	}
}

// SetNodeLink takes a node's link to the cluster network down or up.
// Equivalent to: ip -n nplab-<lab>-<node> link set eth0 down
func (c *Cluster) SetNodeLink(name string, up bool) error {
	n := c.nodes[name]
	if n == nil {
		return fmt.Errorf("node %q not found in lab %q", name, c.cfg.Topology.Lab)
	}
	if err := n.link.SetUp(up); err != nil {
		return fmt.Errorf("node %q: set link up=%v: %w", name, up, err)
	}
	state := "down"
	if up {
		state = "up"
	}
	n.events.emit(Event{Time: time.Now(), Kind: EventNodeLink, Node: name, Message: fmt.Sprintf("link of %s is %s", name, state)})
	return nil
}

// SyncServices makes every node's proxy serve exactly ports (the full
// desired state) and every ClusterIP a local address of every node. It is
// cheap to call often: unchanged listeners and flows are kept.
func (c *Cluster) SyncServices(ports []ServicePort) {
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
					n.proxy.errorEvent("ClusterIP %s: %v", a, err)
				}
			}
			n.proxy.sync(ports)
			for _, a := range del {
				if err := n.host.DelAddr("lo", netip.PrefixFrom(a, 32)); err != nil {
					n.proxy.errorEvent("ClusterIP %s: %v", a, err)
				}
			}
		})
	}
	wg.Wait()
}

func sortAddrs(as []netip.Addr) {
	sort.Slice(as, func(i, j int) bool { return as[i].Less(as[j]) })
}

// Clean removes what a killed lab left behind (its namespaces and links),
// and nothing else.
// A running lab is refused (errors.Is(err, ErrLabRunning)).
func Clean(lab string) error { return netsim.Clean(lab) }

// CleanAll cleans every killed lab this machine has a record of and returns
// their names; running labs are skipped and named in the error.
func CleanAll() ([]string, error) { return netsim.CleanAll() }

// ErrLabRunning is what Clean and CleanAll report for a lab still running.
var ErrLabRunning = netsim.ErrLabRunning

// emitter calls OnEvent from one goroutine, in order. emit never blocks:
// events wait in an unbounded queue, so OnEvent may call back into the
// Cluster (StartPod, SyncServices, which emit on this same emitter) without
// deadlocking. Only Close must not be called from OnEvent: it waits for
// the emitter to drain.
type emitter struct {
	mu     sync.Mutex
	closed bool
	queue  []Event
	wake   chan struct{} // one token: the queue has events, or closed
	done   chan struct{}
}

func newEmitter(fn func(Event)) *emitter {
	e := &emitter{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for range e.wake {
			for {
				e.mu.Lock()
				batch := e.queue
				e.queue = nil
				closed := e.closed
				e.mu.Unlock()
				if len(batch) == 0 {
					if closed {
						return
					}
					break
				}
				for _, ev := range batch {
					if fn != nil {
						fn(ev)
					}
				}
			}
		}
	}()
	return e
}

func (e *emitter) emit(ev Event) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.queue = append(e.queue, ev)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// close delivers what is queued, then stops the emitter; later events are
// dropped.
func (e *emitter) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	<-e.done
}

// shortHash is 8 hex digits of FNV-1a of s.
func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// podHostName is the netsim host of a pod: "pod-<name>", shortened with a
// hash when the name is long so `ip netns list` stays readable.
func podHostName(pod string) string {
	const max = 48
	if len(pod) <= max {
		return "pod-" + pod
	}
	return "pod-" + strings.TrimRight(pod[:max-9], "-.") + "-" + shortHash(pod)
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
