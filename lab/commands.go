package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nplab/nplab/lab/plane"
)

// Send runs one request from a host of the lab ("client", a node or a
// pod): curl for TCP, nc for UDP and SCTP. The reply carries the flow it
// made through a node, when there was one.
//
// A request to a node whose link is down (or from a node, or a pod on a
// node, whose link is down) reaches no node, so no node can report it:
// the lab does, as the Flow of that attempt — the client's result, with
// plane.ReasonNodeLinkDown and the node named in Detail — on the event
// stream and in the reply. (The same request typed by hand, with nplab
// exec, leaves no trace: nothing in the lab sees it.)
func (l *Lab) Send(ctx context.Context, req plane.Request) (plane.Reply, error) {
	if l.dp == nil {
		return plane.Reply{}, ErrNoDataPlane
	}
	start := time.Now()
	rep, err := l.dp.Send(ctx, req)
	if err == nil && rep.Flow == nil && rep.Result != plane.FlowOK {
		if f, ok := l.unseenFlow(req, rep, start); ok {
			control{l}.Flow(f) // the stream and the State, as the data plane's flows
			rep.Flow = &f
		}
	}
	return rep, err
}

// unseenFlow is the flow of a request that no node saw because a link on
// its way was down: the source's node's, or the target node's. It needs a
// node as its target (a flow is an attempt through a node).
func (l *Lab) unseenFlow(req plane.Request, rep plane.Reply, start time.Time) (plane.Flow, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	entry, ok := l.topo.NodeByIP(req.Target.Addr())
	if !ok {
		return plane.Flow{}, false
	}
	src, srcNode := l.topo.Client, req.From
	if n, ok := l.topo.Node(req.From); ok {
		src = n.IP
	} else if p, ok := l.reg.PeekPod(Namespace, req.From); ok {
		srcNode = p.Spec.NodeName
		src, _ = netip.ParseAddr(p.Status.PodIP)
	}
	down := ""
	if rt := l.nodeRT[srcNode]; rt != nil && rt.linkDown {
		down = srcNode
	} else if rt := l.nodeRT[entry.Name]; rt != nil && rt.linkDown {
		down = entry.Name
	}
	if down == "" {
		return plane.Flow{}, false
	}
	proto := strings.ToUpper(req.Protocol)
	if proto == "" {
		proto = "TCP"
	}
	client := rep.Local
	if !client.IsValid() && src.IsValid() {
		client = netip.AddrPortFrom(src, 0) // the connect failed: no source port
	}
	f := plane.Flow{Protocol: proto, Client: client, EntryNode: entry.Name, Frontend: req.Target,
		Result: rep.Result, Reason: plane.ReasonNodeLinkDown, Detail: down + "'s link is down",
		Start: start, Duration: time.Since(start)}
	for _, name := range l.state.ServiceNames() {
		for _, p := range l.state.Services[name].Ports {
			if p.NodePort != 0 && uint16(p.NodePort) == req.Target.Port() && string(p.Protocol) == proto {
				f.Service, f.PortName = Namespace+"/"+name, p.Name
			}
		}
	}
	return f, true
}

// Command is the shell command a student can type for the same request
// ("nplab exec client -- curl -sS http://172.18.0.2:30080/hostname").
func (l *Lab) Command(req plane.Request) string {
	if l.dp == nil {
		return ""
	}
	return l.dp.Command(req)
}

// TrafficSpec is a burst of requests.
type TrafficSpec struct {
	// From is the host that sends: "client" (the default), a node or a pod.
	From     string
	Protocol string // "TCP" (default), "UDP", "SCTP"
	// Targets are tried in turn (node-1:30080, node-2:30080, ...).
	Targets []netip.AddrPort
	// Message is the HTTP path or the netexec command; "" means hostname.
	Message string
	// Count is how many requests in all; 0 means 10.
	Count int
	// Rate is requests per second; 0 means as fast as Concurrency allows.
	Rate float64
	// Concurrency is how many requests are in flight at once; 0 means 4.
	Concurrency int
	// Timeout bounds each request; 0 means plane.DefaultSendTimeout.
	Timeout time.Duration
	// OnReply, when set, is called with each answered request's target and
	// reply, one call at a time, for a front end that counts more than
	// TrafficResult does (the terminal UI counts the attempts that have no
	// flow by the node it sent them to).
	OnReply func(target netip.AddrPort, rep plane.Reply)
}

// TrafficResult counts a burst's outcomes.
type TrafficResult struct {
	Sent int
	// PerPod counts the requests that reached each pod (from their flows).
	PerPod map[string]int
	// PerResult counts what the clients saw.
	PerResult map[plane.FlowResult]int
	// PerNode counts the requests by the node they entered.
	PerNode map[string]int
}

// Traffic sends a bounded burst of requests and counts where they went and
// how they ended. It stops early, with what it has counted, when ctx ends.
func (l *Lab) Traffic(ctx context.Context, spec TrafficSpec) (TrafficResult, error) {
	res := TrafficResult{PerPod: map[string]int{}, PerResult: map[plane.FlowResult]int{}, PerNode: map[string]int{}}
	if l.dp == nil {
		return res, ErrNoDataPlane
	}
	if len(spec.Targets) == 0 {
		return res, fmt.Errorf("traffic: no target")
	}
	if spec.From == "" {
		spec.From = plane.ClientHost
	}
	if spec.Protocol == "" {
		spec.Protocol = "TCP"
	}
	msg := spec.Message
	if msg == "" {
		msg = "hostname"
		if spec.Protocol == "TCP" {
			msg = "/hostname"
		}
	}
	if spec.Count <= 0 {
		spec.Count = 10
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = 4
	}
	var tick <-chan time.Time
	if spec.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / spec.Rate))
		defer t.Stop()
		tick = t.C
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, spec.Concurrency)
		errs error
	)
	for i := 0; i < spec.Count; i++ {
		if tick != nil && i > 0 {
			select {
			case <-tick:
			case <-ctx.Done():
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		target := spec.Targets[i%len(spec.Targets)]
		wg.Go(func() {
			defer func() { <-sem }()
			rep, err := l.Send(ctx, plane.Request{From: spec.From, Protocol: spec.Protocol, Target: target, Message: msg, Timeout: spec.Timeout})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if errs == nil {
					errs = err
				}
				return
			}
			res.Sent++
			res.PerResult[rep.Result]++
			if f := rep.Flow; f != nil {
				res.PerNode[f.EntryNode]++
				if f.Pod != "" && rep.Result == plane.FlowOK {
					res.PerPod[f.Pod]++
				}
			}
			if spec.OnReply != nil {
				spec.OnReply(target, rep)
			}
		})
	}
	wg.Wait()
	return res, errs
}

// FaultKind names a fault.
type FaultKind string

// The faults a student can inject.
const (
	FaultDeletePod   FaultKind = "delete-pod"   // kubectl delete pod
	FaultPodUnready  FaultKind = "pod-unready"  // its readiness probe fails from now on
	FaultPodReady    FaultKind = "pod-ready"    // its readiness probe is honest again
	FaultStopApp     FaultKind = "stop-app"     // its app stops serving (the process dies)
	FaultStartApp    FaultKind = "start-app"    // its app serves again
	FaultLinkDown    FaultKind = "link-down"    // ip link set eth0 down on the node
	FaultLinkUp      FaultKind = "link-up"      // and up again
	FaultImpair      FaultKind = "impair"       // delay, jitter, loss, rate on the node's link
	FaultClearImpair FaultKind = "clear-impair" // a healthy link again
)

// Fault is one fault: a kind and its target (Pod or Node).
type Fault struct {
	Kind       FaultKind
	Pod        string
	Node       string
	Impairment plane.Impairment // FaultImpair
}

// Object is kubectl's name of the fault's target.
func (f Fault) Object() string {
	if f.Pod != "" {
		return "pod/" + f.Pod
	}
	return "node/" + f.Node
}

func (f Fault) String() string {
	switch f.Kind {
	case FaultDeletePod:
		return "pod " + f.Pod + " deleted"
	case FaultPodUnready:
		return "pod " + f.Pod + " made unready (its readiness probe fails)"
	case FaultPodReady:
		return "pod " + f.Pod + " no longer forced unready"
	case FaultStopApp:
		return "pod " + f.Pod + ": app stopped"
	case FaultStartApp:
		return "pod " + f.Pod + ": app started"
	case FaultLinkDown:
		return "node " + f.Node + ": link down"
	case FaultLinkUp:
		return "node " + f.Node + ": link up"
	case FaultImpair:
		return "node " + f.Node + ": link impaired: " + f.Impairment.String()
	case FaultClearImpair:
		return "node " + f.Node + ": link impairment removed"
	}
	return string(f.Kind) + " " + f.Object()
}

// Inject injects a fault. A pod or node the lab does not have is an error
// naming it, and so is an impairment tc would refuse (a negative delay or
// jitter, a loss outside 0-100%); faults other than a pod's deletion and readiness need a data
// plane (ErrNoDataPlane); an impairment the kernel cannot do wraps
// plane.ErrNotSupported, with the reason.
func (l *Lab) Inject(f Fault) error {
	switch f.Kind {
	case FaultDeletePod, FaultPodUnready, FaultPodReady, FaultStopApp, FaultStartApp:
		if !l.hasPod(f.Pod) {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, f.Pod)
		}
	case FaultLinkDown, FaultLinkUp, FaultImpair, FaultClearImpair:
		if _, ok := l.topo.Node(f.Node); !ok {
			return &plane.NotFoundError{Kind: "node", Name: f.Node, Lab: l.name}
		}
		if f.Kind == FaultImpair {
			if err := checkImpairment(f.Impairment); err != nil {
				return fmt.Errorf("impair node %s: %w", f.Node, err)
			}
		}
	default:
		return fmt.Errorf("unknown fault %q", f.Kind)
	}
	if f.Kind == FaultDeletePod {
		if err := l.Delete("pod", "", f.Pod); err != nil {
			return err
		}
		l.recordFault(f, nil)
		return nil
	}
	if l.dp == nil && f.Kind != FaultPodUnready && f.Kind != FaultPodReady {
		return ErrNoDataPlane
	}
	var err error
	switch f.Kind {
	case FaultPodUnready, FaultPodReady:
		unready := f.Kind == FaultPodUnready
		if l.dp != nil {
			err = l.dp.SetPodUnready(f.Pod, unready)
		} else {
			err = l.setPodReady(f.Pod, !unready, false)
		}
		if err == nil {
			l.recordFault(f, func() { l.forcedUnready[f.Pod] = unready })
		}
	case FaultStopApp, FaultStartApp:
		running := f.Kind == FaultStartApp
		if err = l.dp.SetAppRunning(f.Pod, running); err == nil {
			l.recordFault(f, func() { l.appStopped[f.Pod] = !running })
		}
	case FaultLinkDown, FaultLinkUp:
		up := f.Kind == FaultLinkUp
		if err = l.dp.SetNodeLink(f.Node, up); err == nil {
			l.recordFault(f, func() { l.nodeRT[f.Node].linkDown = !up })
		}
	case FaultImpair, FaultClearImpair:
		im := f.Impairment
		if f.Kind == FaultClearImpair {
			im = plane.Impairment{}
		}
		if err = l.dp.SetImpairment(f.Node, im); err == nil {
			l.recordFault(f, func() { l.nodeRT[f.Node].impairment = im })
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f, err)
	}
	return nil
}

// checkImpairment refuses what tc refuses, before anything reaches the
// data plane (a scenario's decoder checks the same for its YAML; this is
// for Go callers): negative times, a loss outside 0-100%.
func checkImpairment(im plane.Impairment) error {
	switch {
	case im.Delay < 0:
		return fmt.Errorf("delay %s: must not be negative", im.Delay)
	case im.Jitter < 0:
		return fmt.Errorf("jitter %s: must not be negative", im.Jitter)
	case !(im.LossPercent >= 0 && im.LossPercent <= 100): // NaN too
		return fmt.Errorf("loss %g%%: must be from 0%% to 100%%", im.LossPercent)
	}
	return nil
}

// recordFault changes the lab's record of the faults (under l.mu) and emits
// the Fault event with the target's new state.
func (l *Lab) recordFault(f Fault, change func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if change != nil {
		change()
	}
	l.emitEvent(Event{Type: EventFault, Object: f.Object(), Message: f.String(), Fault: &f})
}

func (l *Lab) hasPod(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.reg.GetPod(Namespace, name)
	return ok
}

// ApplyObjects applies Kubernetes objects (a *corev1.Service, *corev1.Pod
// or *appsv1.Deployment, say) as `kubectl apply` would apply them from a
// file: the same defaulting, validation, three-way merge and errors. Their
// apiVersion and kind may be left empty. The results name the file
// "<objects>".
func (l *Lab) ApplyObjects(objs ...runtime.Object) []Result {
	var docs []string
	for _, o := range objs {
		o = o.DeepCopyObject()
		if gvk := o.GetObjectKind().GroupVersionKind(); gvk.Kind == "" {
			switch o.(type) {
			case *corev1.Service:
				o.GetObjectKind().SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Service"))
			case *corev1.Pod:
				o.GetObjectKind().SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
			case *appsv1.Deployment:
				o.GetObjectKind().SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
			}
		}
		b, err := json.Marshal(o)
		if err != nil {
			return []Result{{File: "<objects>", Err: fmt.Errorf("encoding %T: %w", o, err)}}
		}
		docs = append(docs, string(b))
	}
	return l.Apply("<objects>", []byte(strings.Join(docs, "\n---\n")))
}
