package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
)

// BenchService is the Service BenchManifest creates and Bench measures.
const BenchService = "bench"

// BenchManifest is the lab `nplab bench` measures: one pod on node-1
// running nplab's bench server (plane.BenchImage) on port 5201, TCP and
// UDP, behind a NodePort Service "bench" (externalTrafficPolicy: Cluster,
// so a hop through another node is masqueraded as kube-proxy does).
var BenchManifest = []byte(`apiVersion: v1
kind: Pod
metadata:
  name: bench
  labels:
    app: bench
spec:
  nodeName: node-1
  containers:
  - name: loadgen
    image: ` + plane.BenchImage + `
    ports:
    - containerPort: 5201
      protocol: TCP
    - containerPort: 5201
      protocol: UDP
---
apiVersion: v1
kind: Service
metadata:
  name: ` + BenchService + `
spec:
  type: NodePort
  selector:
    app: bench
  ports:
  - name: tcp
    protocol: TCP
    port: 5201
    targetPort: 5201
  - name: udp
    protocol: UDP
    port: 5201
    targetPort: 5201
`)

// Bench measures every path from the outside client to the one ready
// endpoint of NodePort Service service (BenchManifest's "bench"): straight
// to the pod, through nplab's NodePort on the pod's node and on another
// node, through kernel DNAT rules, and (spec.Peers) through haproxy and
// socat. It waits, up to 30 seconds, for the endpoint to be ready. The lab
// needs at least two nodes, and a data plane that can bench (the Linux
// one); otherwise the error wraps plane.ErrNotSupported.
func (l *Lab) Bench(ctx context.Context, service string, spec plane.BenchSpec) ([]plane.BenchPath, error) {
	if l.dp == nil {
		return nil, ErrNoDataPlane
	}
	b, ok := l.dp.(plane.Bencher)
	if !ok {
		return nil, fmt.Errorf("lab %q: this data plane cannot bench: %w", l.name, plane.ErrNotSupported)
	}
	if len(l.topo.Nodes) < 2 {
		return nil, fmt.Errorf("lab %q: a bench needs two nodes (one for the hop), the lab has %d", l.name, len(l.topo.Nodes))
	}
	var target plane.BenchTarget
	ready, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var err error
		target, err = l.benchTarget(service)
		if err == nil {
			break
		}
		select {
		case <-ready.Done():
			return nil, fmt.Errorf("lab %q: bench: %w (%v)", l.name, err, ready.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return b.Bench(ctx, target, spec)
}

// errNotReady is why a bench target is not there yet.
var errNotReady = errors.New("waiting for the bench pod")

// benchTarget resolves service's TCP and UDP ports and its one ready
// endpoint.
func (l *Lab) benchTarget(service string) (plane.BenchTarget, error) {
	var t plane.BenchTarget
	found := false
	for _, sp := range l.ServicePorts() {
		if sp.Service != Namespace+"/"+service {
			continue
		}
		found = true
		if sp.NodePort == 0 {
			return t, fmt.Errorf("service %q: port %q has no nodePort (a bench needs type: NodePort)", service, sp.PortName)
		}
		var ep *plane.Endpoint
		for i, e := range sp.Endpoints {
			if e.Ready {
				ep = &sp.Endpoints[i]
				break
			}
		}
		if ep == nil {
			return t, fmt.Errorf("%w: service %q has no ready endpoint yet", errNotReady, service)
		}
		t.Pod, t.PodNode = ep.Pod, ep.Node
		switch sp.Protocol {
		case string(corev1.ProtocolTCP):
			t.TCP, t.TCPNodePort = ep.Addr, sp.NodePort
		case string(corev1.ProtocolUDP):
			t.UDP, t.UDPNodePort = ep.Addr, sp.NodePort
		}
	}
	if !found {
		return t, fmt.Errorf("%w: no service %q", errNotReady, service)
	}
	if !t.TCP.IsValid() || !t.UDP.IsValid() {
		return t, fmt.Errorf("service %q needs a TCP and a UDP port", service)
	}
	for _, n := range l.topo.Nodes {
		if n.Name != t.PodNode {
			t.HopNode = n.Name
			break
		}
	}
	return t, nil
}

// LabTiming is how long a lab of Nodes nodes and Pods pods took to come up
// and to go away.
type LabTiming struct {
	Nodes, Pods int
	// Up is from Start until the first request through a NodePort was
	// answered by a pod.
	Up time.Duration
	// Down is from Close until the kernel no longer lists any of the
	// lab's namespaces (a fresh `ip netns list`).
	Down time.Duration
}

// TimeLab builds a lab of cfg.Nodes nodes and a Deployment of
// podsPerNode pods per node (agnhost netexec, no readiness probe) behind a
// NodePort Service, and measures how long it takes to come up (until a
// request from the client through node-1's nodePort is answered) and to
// go away. It removes the lab on every path, error or not.
func TimeLab(ctx context.Context, cfg Config, podsPerNode int) (LabTiming, error) {
	n := cfg.Nodes
	if n == 0 {
		n = 3
	}
	res := LabTiming{Nodes: n, Pods: n * podsPerNode}
	if podsPerNode < 1 {
		return res, fmt.Errorf("lab %q: %d pods per node: a timed lab needs at least 1", cfg.Name, podsPerNode)
	}
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec", "--http-port=8080", "--udp-port=-1"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30080
`, res.Pods)
	start := time.Now()
	l, err := Start(ctx, cfg)
	if err != nil {
		return res, err
	}
	closed := false
	defer func() {
		if !closed {
			l.Close()
		}
	}()
	for _, r := range l.ApplyFiles(File{Name: "timed-lab.yaml", Data: []byte(manifest)}) {
		if r.Err != nil {
			return res, fmt.Errorf("lab %q: %s", cfg.Name, r.String())
		}
	}
	target := netip.AddrPortFrom(l.topo.Nodes[0].IP, 30080)
	// Send waits up to a second for the flow of a refused request (the
	// node's kernel may report one), so each attempt is bounded: 50 ms,
	// longer only after an attempt that timed out, in case a busy lab
	// answers slowly.
	attempt := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		rep, err := l.Send(actx, plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: target, Message: "/hostname", Timeout: attempt})
		cancel()
		if err == nil && rep.Result == plane.FlowOK {
			break
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("lab %q: no answer through %s: %v", cfg.Name, target, ctx.Err())
		}
		if err == nil && rep.Result == plane.FlowTimedOut {
			attempt = min(2*attempt, 2*time.Second)
		}
		time.Sleep(time.Millisecond)
	}
	res.Up = time.Since(start)

	start = time.Now()
	closed = true
	if err := l.Close(); err != nil {
		return res, err
	}
	if err := WaitRemoved(ctx, cfg.Name); err != nil {
		return res, err
	}
	res.Down = time.Since(start)
	return res, nil
}

// namespacesOf lists a lab's namespaces the kernel still has; package
// lab/dataplane registers it. Nil: WaitRemoved cannot tell, and returns.
var namespacesOf func(lab string) ([]string, error)

// RegisterNamespaces makes f the list of a lab's namespaces that
// WaitRemoved polls. Package lab/dataplane calls it.
func RegisterNamespaces(f func(lab string) ([]string, error)) {
	driverMu.Lock()
	defer driverMu.Unlock()
	namespacesOf = f
}

// WaitRemoved waits until the machine lists none of lab name's
// namespaces, or ctx ends.
// Equivalent to: while ip netns list | grep -q "^nplab-<name>-"; do sleep 0.001; done
func WaitRemoved(ctx context.Context, name string) error {
	driverMu.Lock()
	list := namespacesOf
	driverMu.Unlock()
	if list == nil {
		return nil
	}
	for {
		left, err := list(name)
		if err != nil {
			return fmt.Errorf("lab %q: listing its namespaces: %w", name, err)
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab %q: %d namespaces still listed (%s...): %w", name, len(left), left[0], ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}
