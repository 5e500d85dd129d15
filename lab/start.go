package lab

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/nodes"
)

// RunOptions configures the data plane of a lab started with Start.
type RunOptions struct {
	// ProxyMode is how every node's proxy picks an endpoint ("" = random,
	// as kube-proxy's iptables mode; "roundrobin" as IPVS's rr).
	ProxyMode plane.ProxyMode
	// ProbeScale multiplies readiness probe times and --delay-shutdown;
	// 0 means real time. Tests use a small value.
	ProbeScale float64
}

// Running is a lab with its data plane: nodes, pods and the client as real
// network namespaces, and a proxy on every node. Its Lab is the control
// plane; the methods below are the faults and the traffic a student uses.
type Running struct {
	*Lab
	cluster *nodes.Cluster
	once    sync.Once
	err     error
}

// Start builds a lab whose pods run for real (root, Linux). On error
// nothing of the lab is left behind. Close removes everything it created.
func Start(ctx context.Context, cfg Config, opts RunOptions) (*Running, error) {
	if cfg.DataPlane != nil {
		return nil, fmt.Errorf("lab %q: Start builds its own data plane; Config.DataPlane must be nil", cfg.Name)
	}
	dp := &clusterPlane{}
	cfg.DataPlane = dp
	l, err := New(cfg)
	if err != nil {
		return nil, err
	}
	r := &Running{Lab: l}
	dp.lab = l
	q := &callQueue{}
	c, err := nodes.New(ctx, l.Topology(), plane.Options{ProxyMode: opts.ProxyMode, ProbeScale: opts.ProbeScale}, nodeControl{q})
	if err != nil {
		l.Close()
		return nil, err
	}
	dp.c = c
	r.cluster = c
	q.start(r)
	return r, nil
}

// Close stops the control plane and removes every namespace and link the
// lab created. It is safe to call more than once.
func (r *Running) Close() error {
	r.once.Do(func() {
		r.Lab.Close()
		r.err = r.cluster.Close()
	})
	return r.err
}

// Send sends one request through the lab's network (a curl or nc run in a
// host: "client", a node or a pod).
func (r *Running) Send(ctx context.Context, req plane.Request) (plane.Reply, error) {
	return r.cluster.Send(ctx, req)
}

// Command is the shell command a student can type for the same request.
func (r *Running) Command(req plane.Request) string { return r.cluster.Command(req) }

// SetPodUnready forces a pod's readiness false (or lets it go back).
func (r *Running) SetPodUnready(pod string, unready bool) error {
	return r.cluster.SetPodUnready(pod, unready)
}

// StopApp stops a pod's servers; its probes then fail.
func (r *Running) StopApp(pod string) error { return r.cluster.SetAppRunning(pod, false) }

// SetNodeLink takes a node's link to the cluster network down or up.
func (r *Running) SetNodeLink(node string, up bool) error {
	return r.cluster.SetNodeLink(node, up)
}

// Cluster is the data plane, for callers that need more than the methods
// above (tests, benchmarks).
func (r *Running) Cluster() *nodes.Cluster { return r.cluster }

// nodeControl turns what the node agents report into control-plane state
// (readiness, pod gone) and into events on the lab's stream. The lab calls
// back into the data plane from these (SetPodReady and PodStopped sync
// services), which a plane.Control must not, so they run in order on one
// goroutine of their own. (A minimal adapter to nodes' plane.Control; the
// lab's own rewrite replaces it.)
type nodeControl struct{ q *callQueue }

func (n nodeControl) PodStarted(pod, node, message string) {
	n.q.push(func(r *Running) {
		r.Record(Event{Time: time.Now(), Type: EventNotice, Object: "pod/" + pod, Message: "started on " + node + ": " + message})
	})
}
func (n nodeControl) PodReady(pod string, ready bool) {
	n.q.push(func(r *Running) { _ = r.SetPodReady(pod, ready) })
}
func (n nodeControl) PodStopped(pod string) { n.q.push(func(r *Running) { _ = r.PodStopped(pod) }) }
func (n nodeControl) PodNotice(pod, message string) {
	n.q.push(func(r *Running) {
		r.Record(Event{Time: time.Now(), Type: EventNotice, Object: "pod/" + pod, Message: message})
	})
}
func (n nodeControl) Warning(node, pod, message string) {
	obj := "node/" + node
	if pod != "" {
		obj = "pod/" + pod
	}
	n.q.push(func(r *Running) { r.Record(Event{Time: time.Now(), Type: EventWarning, Object: obj, Message: message}) })
}
func (n nodeControl) Flow(f plane.Flow) {
	n.q.push(func(r *Running) {
		r.Record(Event{Time: time.Now(), Type: EventFlow, Object: "service/" + serviceName(f.Service), Message: FlowString(&f)})
	})
}
func (n nodeControl) Listening(node string, ls []plane.Listener) {}

// callQueue runs calls in order on one goroutine, never blocking push.
type callQueue struct {
	mu      sync.Mutex
	r       *Running
	calls   []func(*Running)
	running bool
}

func (q *callQueue) push(f func(*Running)) {
	q.mu.Lock()
	q.calls = append(q.calls, f)
	if q.running || q.r == nil {
		q.mu.Unlock()
		return
	}
	q.running = true
	q.mu.Unlock()
	go q.drain()
}

func (q *callQueue) start(r *Running) {
	q.mu.Lock()
	q.r = r
	q.running = true
	q.mu.Unlock()
	go q.drain()
}

func (q *callQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.calls) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		f := q.calls[0]
		q.calls = q.calls[1:]
		r := q.r
		q.mu.Unlock()
		f(r)
	}
}

// serviceName strips the namespace from "default/web".
func serviceName(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[i+1:]
		}
	}
	return s
}

// FlowString is one line for a forwarded connection:
// "TCP 172.18.0.100:41234 → node-1 172.18.0.2:30080 → pod web-x (node-2) 10.244.2.2:8080: ok, 120 B in, 310 B out, 2ms".
func FlowString(f *plane.Flow) string {
	s := fmt.Sprintf("%s %s → %s %s", f.Protocol, f.Client, f.EntryNode, f.Frontend)
	if f.Pod != "" {
		s += fmt.Sprintf(" → pod %s (%s) %s", f.Pod, f.PodNode, f.Backend)
	}
	s += ": " + string(f.Result)
	if f.Result == plane.FlowOK {
		s += fmt.Sprintf(", %d B in, %d B out, %s", f.BytesIn, f.BytesOut, f.Duration.Round(100_000))
		if f.SourceSeen.IsValid() {
			s += ", pod saw " + f.SourceSeen.String()
		}
	}
	return s
}

// clusterPlane adapts nodes.Cluster to DataPlane. StopPod runs in its own
// goroutine: a pod may take its --delay-shutdown to stop, and the lab must
// not wait for it (it hears back through EventPodStopped).
type clusterPlane struct {
	lab *Lab
	c   *nodes.Cluster
}

func (p *clusterPlane) StartPod(ctx context.Context, node string, pod *corev1.Pod, ip netip.Addr) error {
	return p.c.StartPod(ctx, node, pod, ip)
}

func (p *clusterPlane) StopPod(name string) error {
	p.c.StopPod(name)
	return nil
}

func (p *clusterPlane) SyncServices(ports []plane.ServicePort) { p.c.SyncServices(ports) }

// Clean removes what a killed lab left behind: the namespaces and links its
// record under /run/nplab lists, and nothing else. A lab that is still
// running is refused (errors.Is(err, ErrLabRunning)).
func Clean(name string) error { return nodes.Clean(name) }

// CleanAll cleans every killed lab this machine has a record of and returns
// their names; running labs are skipped and named in the error.
func CleanAll() ([]string, error) { return nodes.CleanAll() }

// ErrLabRunning is what Clean and CleanAll report for a lab still running.
var ErrLabRunning = nodes.ErrLabRunning
