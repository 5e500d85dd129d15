package lab

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/lab/portalloc"
	"github.com/nplab/nplab/lab/registry"
)

// DefaultManifest is the default lab: a 3-replica agnhost netexec Deployment
// "web" and a NodePort Service "web" answering TCP and UDP on 30080.
//
//go:embed testdata/default.yaml
var DefaultManifest []byte

// Namespace is where a lab's objects live.
const Namespace = "default"

// Config configures a Lab. The zero value (plus a name) is a valid 3-node lab.
type Config struct {
	// Name names the lab (namespaces are nplab-<name>-<host>).
	Name string
	// Nodes is the number of nodes; 0 means 3.
	Nodes int
	// NodePortRange is --service-node-port-range; "" means 30000-32767.
	NodePortRange string
	// ServiceCIDR is --service-cluster-ip-range; "" means 10.96.0.0/12.
	ServiceCIDR string
	// Rand drives every random choice (nodePorts, clusterIPs, pod name
	// suffixes); nil means randomly seeded. With a seeded Rand and a fixed
	// Now a lab is reproducible.
	Rand *rand.Rand
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// DataPlane builds the data plane that runs the pods and the proxies.
	// With New, nil means none: pods are Ready as soon as they are
	// scheduled. With Start, nil means the registered driver's (package
	// lab/dataplane: real network namespaces).
	DataPlane plane.Factory
	// ProxyMode is how every node's proxy picks an endpoint ("" = random,
	// as kube-proxy's iptables mode; "roundrobin" as IPVS's rr).
	ProxyMode plane.ProxyMode
	// ProbeScale multiplies readiness probe times and --delay-shutdown;
	// 0 means real time. Tests use a small value.
	ProbeScale float64

	// StateDir, when set, makes the lab persistent: every object is kept
	// on disk there, as etcd keeps a cluster's (store.go). Without Resume
	// what was stored there before is deleted.
	StateDir string
	// Resume brings back the lab stored in StateDir: the same objects,
	// nodePorts, clusterIPs and pod IPs, with its nodes and ranges (Nodes,
	// NodePortRange and ServiceCIDR may be left zero; set and different,
	// they are an error). Nothing stored is an error wrapping
	// ErrNothingToResume.
	Resume bool
}

// Lab is one lab: the emulated API server (package registry) and the
// controllers on top of it (Deployments, scheduler, pod IPs, endpoints),
// over a data plane when it has one, with one ordered event stream and a
// State that is the fold of it. It is safe for concurrent use; the
// Deployment controller runs in a worker of its own (see WaitIdle).
type Lab struct {
	mu        sync.Mutex
	name      string
	topo      plane.Topology
	proxyMode plane.ProxyMode // as configured ("" is random)
	reg       *registry.Registry
	rand      *rand.Rand
	now       func() time.Time

	dp  plane.DataPlane // nil: no data plane
	dpq *dpQueue        // nil without a data plane

	ctx    context.Context
	cancel context.CancelFunc
	closed bool

	// lastApplied is the manifest JSON of each object as last applied
	// ("service/web" → JSON), to tell "configured" from "unchanged".
	lastApplied map[string]string
	// podIPs maps a pod name to its IP; ipOwner the reverse.
	podIPs  map[string]netip.Addr
	ipOwner map[netip.Addr]string
	// stillStopping: pods the API server deleted at once (a grace period
	// of 0) whose kubelet has not yet reported them stopped, per name in
	// the order deleted, with the address each keeps until then (invalid
	// for one that had none of its own).
	stillStopping map[string][]netip.Addr
	// endpoints and slices per Service name; portsBySvc is what the data
	// plane got last, per Service (afterChange updates the changed ones);
	// index finds the Services and pods a change touches.
	endpoints map[string]*corev1.Endpoints
	slices    map[string][]discoveryv1.EndpointSlice
	hasSynced bool
	// portsDirty: the ports changed since the last SyncServices queued;
	// batching: afterChange leaves queueing it to the batch's end
	// (flushPorts).
	portsDirty, batching bool
	portsBySvc           map[string][]plane.ServicePort
	index                selectorIndex
	pending              pendingChanges
	// endpointBuilds counts the Services whose endpoints afterChange
	// recomputed (a test checks a change touches only what it should).
	endpointBuilds int

	// The faults in force and what each node's proxy listens on.
	nodeRT        map[string]*nodeRuntime
	forcedUnready map[string]bool
	appStopped    map[string]bool

	// The event stream: seq numbers it, state is its fold, events the
	// recent history.
	seq      uint64
	state    State
	events   []Event
	holding  bool
	held     []Event
	watchers map[*Watcher]struct{}

	// ctrl is the controller worker's queue and the scheduler's cache
	// (controller.go).
	ctrl controllers

	persist *persister // nil: not persistent (store.go)
}

// New builds a lab. Without Config.DataPlane it is the control plane alone:
// no root, no namespaces. A bad NodePortRange or ServiceCIDR is an error
// naming the flag.
func New(cfg Config) (*Lab, error) {
	return build(context.Background(), cfg)
}

func build(ctx context.Context, cfg Config) (*Lab, error) {
	st, sv, err := openState(&cfg) // store.go: a resumed lab's shape fills cfg
	if err != nil {
		return nil, err
	}
	built := false
	defer func() {
		if !built && st != nil {
			st.Close()
		}
	}()
	n := cfg.Nodes
	if n == 0 {
		n = 3
	}
	if n < 0 || n > plane.MaxNodes {
		return nil, fmt.Errorf("lab %q: %d nodes: a lab has 1 to %d nodes", cfg.Name, n, plane.MaxNodes)
	}
	rangeStr := cfg.NodePortRange
	if rangeStr == "" {
		rangeStr = plane.DefaultNodePortRange
	}
	pr, err := portalloc.ParseRange(rangeStr)
	if err != nil {
		return nil, fmt.Errorf("invalid argument %q for \"--service-node-port-range\" flag: %w", cfg.NodePortRange, err)
	}
	if pr.Size == 0 {
		return nil, fmt.Errorf("invalid argument %q for \"--service-node-port-range\" flag: the range is empty", cfg.NodePortRange)
	}
	if _, err := plane.ParseProxyMode(string(cfg.ProxyMode)); err != nil {
		return nil, fmt.Errorf("invalid argument %q for \"--proxy-mode\" flag: %w", cfg.ProxyMode, err)
	}
	topo := plane.DefaultTopology(cfg.Name, n)
	if cfg.ServiceCIDR != "" {
		p, err := netip.ParsePrefix(cfg.ServiceCIDR)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--service-cluster-ip-range\" flag: %w", cfg.ServiceCIDR, err)
		}
		topo.ServiceCIDR = p.Masked()
	}
	rng := cfg.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	// The registry gets its own generator, derived from ours, so the two
	// never share one unsynchronised source.
	reg, err := registry.New(registry.Config{
		NodePortRange: pr,
		ServiceCIDR:   topo.ServiceCIDR,
		Rand:          rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
		Now:           now,
	})
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", cfg.Name, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Lab{
		name: cfg.Name, topo: topo, reg: reg, rand: rng, now: now,
		proxyMode: cfg.ProxyMode,
		ctx:       lctx, cancel: cancel,
		lastApplied:   map[string]string{},
		podIPs:        map[string]netip.Addr{},
		ipOwner:       map[netip.Addr]string{},
		stillStopping: map[string][]netip.Addr{},
		endpoints:     map[string]*corev1.Endpoints{},
		slices:        map[string][]discoveryv1.EndpointSlice{},
		nodeRT:        map[string]*nodeRuntime{},
		forcedUnready: map[string]bool{},
		appStopped:    map[string]bool{},
		watchers:      map[*Watcher]struct{}{},
	}
	for _, n := range topo.Nodes {
		l.nodeRT[n.Name] = &nodeRuntime{}
	}
	l.state = l.initialState()
	if cfg.DataPlane != nil {
		dp, err := cfg.DataPlane(ctx, l.Topology(), plane.Options{ProxyMode: cfg.ProxyMode, ProbeScale: cfg.ProbeScale}, control{l})
		if err != nil {
			cancel()
			return nil, err
		}
		l.dp = dp
		l.dpq = newDPQueue()
		go l.dpq.run(dp)
	}
	l.startControllers()
	if st != nil {
		if err := l.persistTo(st, sv, cfg); err != nil {
			l.Close()
			return nil, err
		}
	}
	built = true
	return l, nil
}

// Close stops the controller worker and waits for it (a sync in progress
// finishes first), ends every watcher (their Err is ErrLabClosed), then
// stops the data plane, which removes every namespace and link the lab
// created. It is safe to call more than once, but not from inside a data
// plane's call.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for w := range l.watchers {
		w.end(ErrLabClosed)
	}
	l.mu.Unlock()
	l.cancel()
	l.stopControllers()
	// The store keeps the lab as it ran, not its teardown (store.go).
	serr := l.closeState()
	if l.dp == nil {
		return serr
	}
	l.dpq.close()
	<-l.dpq.exited
	if err := l.dp.Close(); err != nil {
		return err
	}
	return serr
}

// HasDataPlane reports whether the lab's pods really run (Start, or New
// with Config.DataPlane).
func (l *Lab) HasDataPlane() bool { return l.dp != nil }

// Name is the lab's name.
func (l *Lab) Name() string { return l.name }

// ProxyMode is how the lab's proxies pick an endpoint: plane.ProxyRandom
// (kube-proxy's iptables and nftables modes) or plane.ProxyRoundRobin.
func (l *Lab) ProxyMode() plane.ProxyMode {
	if l.proxyMode == "" {
		return plane.ProxyRandom
	}
	return l.proxyMode
}

// Topology is the lab's planned network: nodes, addresses, pod CIDRs.
func (l *Lab) Topology() plane.Topology {
	t := l.topo
	t.Nodes = append([]plane.NodeSpec(nil), l.topo.Nodes...)
	return t
}

// Nodes returns the lab's nodes.
func (l *Lab) Nodes() []plane.NodeSpec { return append([]plane.NodeSpec(nil), l.topo.Nodes...) }

// NodePortRange is the --service-node-port-range in force.
func (l *Lab) NodePortRange() portalloc.Range { return l.reg.NodePortRange() }

// Services returns copies of the Services, sorted by name.
func (l *Lab) Services() []*corev1.Service {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reg.ListServices()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Pods returns copies of the Pods, sorted by name.
func (l *Lab) Pods() []*corev1.Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.listPods()
}

func (l *Lab) listPods() []*corev1.Pod {
	out := l.reg.ListPods()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Deployments returns copies of the Deployments, sorted by name.
func (l *Lab) Deployments() []*appsv1.Deployment {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reg.ListDeployments()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Endpoints returns copies of the Endpoints objects, one per Service with a
// selector, sorted by name.
func (l *Lab) Endpoints() []*corev1.Endpoints {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*corev1.Endpoints, 0, len(l.endpoints))
	for _, e := range l.endpoints {
		out = append(out, e.DeepCopy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// EndpointSlices returns copies of the EndpointSlices of Service name (nil
// when it has none), as `kubectl describe service` reads them.
func (l *Lab) EndpointSlices(name string) []discoveryv1.EndpointSlice {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []discoveryv1.EndpointSlice
	for _, s := range l.slices[name] {
		out = append(out, *s.DeepCopy())
	}
	return out
}

// ServicePorts returns what the data plane was (or would be) given: every
// port of every Service with its endpoints.
func (l *Lab) ServicePorts() []plane.ServicePort {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.servicePorts()
}

// Now is the lab's clock.
func (l *Lab) Now() time.Time { return l.now() }

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
