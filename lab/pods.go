package lab

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"

	"github.com/nplab/nplab/lab/plane"
)

// UnknownNodeError is returned for a pod whose spec.nodeName is not a node
// of the lab. (A real API server accepts such a pod and it stays Pending
// forever; nplab says why instead.)
type UnknownNodeError struct {
	Pod, Node string
	Nodes     []string
}

func (e *UnknownNodeError) Error() string {
	return fmt.Sprintf("pod %q: spec.nodeName %q is not a node of this lab (nodes: %s)", e.Pod, e.Node, strings.Join(e.Nodes, ", "))
}

func (l *Lab) nodeNames() []string {
	var out []string
	for _, n := range l.topo.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func (l *Lab) nodeIndex(name string) int {
	for i, n := range l.topo.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// MaxPods is the kubelet's default maxPods: a node takes at most this many
// pods, and the scheduler's NodeResourcesFit filter says "Too many pods"
// for a node that has them.
const MaxPods = 110

// UnschedulableError is the scheduler's FitError: no node can take the pod.
// The pod stays Pending with no node; its FailedScheduling event carries
// this message.
type UnschedulableError struct {
	Nodes int
	// PortsTaken of the nodes had a hostPort the pod asks for in use (the
	// NodePorts filter); the others were full (Too many pods). Zero: all
	// were full.
	PortsTaken int
}

func (e *UnschedulableError) Error() string {
	// framework.FitError plus the DefaultPreemption plugin's diagnosis, as
	// a real scheduler's FailedScheduling event reads: the reasons counted
	// and sorted as strings.
	var reasons []string
	if full := e.Nodes - e.PortsTaken; full > 0 {
		reasons = append(reasons, fmt.Sprintf("%d Too many pods", full))
	}
	if e.PortsTaken > 0 {
		reasons = append(reasons, fmt.Sprintf("%d node(s) didn't have free ports for the requested pod ports", e.PortsTaken))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("0/%d nodes are available: %s. preemption: 0/%d nodes are available: %d No preemption victims found for incoming pod.",
		e.Nodes, strings.Join(reasons, ", "), e.Nodes, e.Nodes)
}

// hostPortKey is one host port a pod asks for (the NodePorts filter's
// HostPortInfo entry); hostIP "" is 0.0.0.0.
type hostPortKey struct {
	protocol corev1.Protocol
	hostIP   string
	port     int32
}

// hostPortsOf lists the host ports a pod's containers ask for: their
// hostPorts (a hostNetwork pod's containerPorts, defaulted into hostPort).
func hostPortsOf(p *corev1.Pod) []hostPortKey {
	var out []hostPortKey
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.HostPort <= 0 {
				continue
			}
			ip := cp.HostIP
			if ip == "0.0.0.0" {
				ip = ""
			}
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			out = append(out, hostPortKey{proto, ip, cp.HostPort})
		}
	}
	return out
}

// portsConflict is HostPortInfo.CheckConflict: the same protocol and
// port, on the same hostIP or either one 0.0.0.0.
func portsConflict(a, b hostPortKey) bool {
	return a.protocol == b.protocol && a.port == b.port && (a.hostIP == b.hostIP || a.hostIP == "" || b.hostIP == "")
}

// pickNodeForPorts is pickNode with the NodePorts filter: nodes where a
// bound pod (terminating ones included) holds one of want are out. It
// costs O(pods), only for pods that ask for host ports.
func (l *Lab) pickNodeForPorts(want []hostPortKey) (int, error) {
	taken := make([]bool, len(l.topo.Nodes))
	for _, p := range l.reg.ListPods() {
		i, ok := l.ctrl.podNode[p.Name]
		if !ok || taken[i] {
			continue
		}
		for _, have := range hostPortsOf(p) {
			for _, w := range want {
				if portsConflict(have, w) {
					taken[i] = true
				}
			}
		}
	}
	best, nTaken := -1, 0
	for i, n := range l.ctrl.nodePods {
		if taken[i] {
			nTaken++
			continue
		}
		if n >= MaxPods {
			continue
		}
		if best < 0 || n < l.ctrl.nodePods[best] {
			best = i
		}
	}
	if best < 0 {
		return -1, &UnschedulableError{Nodes: len(l.topo.Nodes), PortsTaken: nTaken}
	}
	return best, nil
}

// schedule picks a node: spec.nodeName if set, else, among the nodes with
// fewer than MaxPods pods, the one with the fewest pods, ties to the lowest
// index (kube-scheduler's spreading, made deterministic). Every pod bound to
// a node counts, terminating ones included, as in the scheduler's NodeInfo;
// the counts come from the scheduler's cache (see pickNode), so scheduling
// a pod costs O(nodes), not O(pods).
func (l *Lab) schedule(pod *corev1.Pod) (int, error) {
	if pod.Spec.NodeName != "" {
		i := l.nodeIndex(pod.Spec.NodeName)
		if i < 0 {
			return -1, &UnknownNodeError{Pod: pod.Name, Node: pod.Spec.NodeName, Nodes: l.nodeNames()}
		}
		return i, nil
	}
	if want := hostPortsOf(pod); len(want) > 0 {
		return l.pickNodeForPorts(want)
	}
	return l.pickNode()
}

// allocateIP gives the lowest free address from .2 up in the node's pod CIDR
// (.1 is the node's side of the pod links).
func (l *Lab) allocateIP(node int, pod string) (netip.Addr, error) {
	cidr := l.topo.Nodes[node].PodCIDR
	a := cidr.Addr().Next().Next()
	for ; cidr.Contains(a); a = a.Next() {
		if !a.Next().IsValid() || !cidr.Contains(a.Next()) {
			break // keep the broadcast address free
		}
		if _, used := l.ipOwner[a]; !used {
			l.ipOwner[a] = pod
			l.podIPs[pod] = a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod %q: no free address left in %s (node %s)", pod, cidr, l.topo.Nodes[node].Name)
}

func (l *Lab) releaseIP(pod string) {
	delete(l.forcedUnready, pod)
	delete(l.appStopped, pod)
	if a, ok := l.podIPs[pod]; ok {
		if l.ipOwner[a] == pod { // a hostNetwork pod owns no address
			delete(l.ipOwner, a)
		}
		delete(l.podIPs, pod)
	}
}

// createPod creates a pod in the API server (defaults, validation, name
// taken), then schedules and starts it. l.mu is held. A pod whose
// spec.nodeName is not a lab node is an *UnknownNodeError and is not kept;
// a pod no node can take stays Pending without a node.
func (l *Lab) createPod(pod *corev1.Pod) error {
	l.stamp(&pod.ObjectMeta)
	pod.Status = corev1.PodStatus{}
	var warn []string
	if metav1.GetControllerOf(pod) == nil {
		warn = newUnemulated(pod, nil) // a Deployment's template was checked
	}
	out, err := l.reg.CreatePod(pod)
	if err != nil {
		return err
	}
	l.warnUnemulated("pod/"+out.Name, warn)
	node, err := l.schedule(out)
	var unknown *UnknownNodeError
	if errors.As(err, &unknown) {
		// A real cluster would keep it Pending forever; nplab says why.
		_ = l.reg.DeletePod(Namespace, out.Name)
		return err
	}
	if err != nil {
		msg := err.Error()
		now := metav1.NewTime(l.now())
		_, _ = l.reg.UpdatePodStatus(Namespace, out.Name, func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse, LastTransitionTime: now,
				Reason: corev1.PodReasonUnschedulable, Message: msg,
			}}
		})
		l.emit(EventFailedScheduling, "pod/"+out.Name, "%s", msg)
		l.addPending(out.Name)
		return nil
	}
	l.bind(out.Name, node)
	return nil
}

// bind is the scheduler's binding plus the kubelet's start: the pod gets
// its node and an IP, Running (and Ready without a data plane), in one
// update of the pod (the API server's per-pod work dominates a sync of many
// pods). l.mu is held.
func (l *Lab) bind(name string, node int) {
	nodeName := l.topo.Nodes[node].Name
	ref := "pod/" + name
	var ip netip.Addr
	var err error
	if pod, ok := l.reg.GetPod(Namespace, name); ok && pod.Spec.HostNetwork {
		// hostNetwork: the pod's IP is its node's; IPAM gives it none.
		ip = l.topo.Nodes[node].IP
		l.podIPs[name] = ip
	} else {
		ip, err = l.allocateIP(node, name)
	}
	if err != nil {
		// Bound, but without an address: the pod exists, Pending, as a
		// real one would.
		if _, berr := l.reg.UpdatePodStatus(Namespace, name, func(p *corev1.Pod) {
			p.Spec.NodeName = nodeName
		}); berr != nil {
			l.emit(EventFailed, ref, "binding the pod to %s: %v", nodeName, berr)
			return
		}
		l.podBound(name, node)
		l.emit(EventFailed, ref, "%v", err)
		return
	}
	now := metav1.NewTime(l.now())
	ready := l.dp == nil
	out, err := l.reg.UpdatePodStatus(Namespace, name, func(p *corev1.Pod) {
		p.Spec.NodeName = nodeName
		p.Status.Phase = corev1.PodRunning
		p.Status.HostIP = l.topo.Nodes[node].IP.String()
		p.Status.HostIPs = []corev1.HostIP{{IP: p.Status.HostIP}}
		p.Status.PodIP = ip.String()
		p.Status.PodIPs = []corev1.PodIP{{IP: ip.String()}}
		p.Status.StartTime = &now
		// With a kubelet, init containers run first: the pod is
		// Pending, Init:0/N, until the data plane reports them done.
		initializing := !ready && len(p.Spec.InitContainers) > 0
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: condStatus(!initializing), LastTransitionTime: now},
			{Type: corev1.PodReady, Status: condStatus(ready), LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: condStatus(ready), LastTransitionTime: now},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		p.Status.InitContainerStatuses = nil
		for _, c := range p.Spec.InitContainers {
			s := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: !initializing, Started: ptr(false)}
			if initializing {
				s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
			} else {
				s.State.Terminated = &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: now, FinishedAt: now}
			}
			p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, s)
		}
		p.Status.ContainerStatuses = nil
		for _, c := range p.Spec.Containers {
			s := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: ready, Started: ptr(!initializing)}
			if initializing {
				s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
			} else {
				s.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
			}
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, s)
		}
		if initializing {
			p.Status.Phase = corev1.PodPending
		}
	})
	if err != nil {
		l.releaseIP(name)
		l.emit(EventFailed, ref, "binding the pod to %s: %v", nodeName, err)
		return
	}
	l.podBound(name, node)
	l.emit(EventScheduled, ref, "Successfully assigned %s/%s to %s, IP %s", Namespace, out.Name, nodeName, ip)
	if ready {
		l.emit(EventPodReady, ref, "pod is ready (no data plane: ready once scheduled)")
	} else {
		p := out.DeepCopy()
		l.enqueue(func(dp plane.DataPlane) {
			if err := dp.StartPod(l.ctx, nodeName, p, ip); err != nil {
				l.record(Event{Type: EventFailed, Object: ref, Message: fmt.Sprintf("starting pod on %s: %v", nodeName, err)})
			}
		})
	}
}

func condStatus(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

func ptr[T any](v T) *T { return &v }

// updatePod applies a changed Pod manifest, keeping what the scheduler and
// the kubelet set (node, status), as kubectl apply's patch would.
func (l *Lab) updatePod(pod *corev1.Pod) (bool, error) {
	old, ok := l.reg.GetPod(Namespace, pod.Name)
	if !ok {
		return false, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, pod.Name)
	}
	pod.Namespace = Namespace
	pod.UID = old.UID
	pod.ResourceVersion = old.ResourceVersion
	pod.CreationTimestamp = old.CreationTimestamp
	pod.OwnerReferences = old.OwnerReferences
	if pod.Spec.NodeName == "" {
		pod.Spec.NodeName = old.Spec.NodeName
	}
	pod.Status = old.Status
	warn := newUnemulated(pod, old)
	out, err := l.reg.UpdatePod(pod)
	if err != nil {
		return false, err
	}
	l.warnUnemulated("pod/"+out.Name, warn)
	return out.ResourceVersion != old.ResourceVersion, nil
}

// deletePod deletes a pod as the API server does (the pod strategy's
// CheckGracefulDelete, then rest.BeforeDelete). grace is the request's
// gracePeriodSeconds, nil for the pod's terminationGracePeriodSeconds
// (default 30); a negative one counts as 1, and a pod that has ended
// (Succeeded, Failed) gets 0.
//
// The pod leaves the API at once without a data plane, when it never got
// a node or an IP, or when the grace period is 0 (kubectl delete --force
// --grace-period=0): a started pod's kubelet then still stops it in the
// background, for its own terminationGracePeriodSeconds as the kubelet
// falls back to, and its address stays taken until it has. Otherwise the
// pod is Terminating (deletionTimestamp = now + grace) until the data
// plane reports it stopped. Deleting a Terminating pod again may only
// shorten its grace period (to 0: it leaves the API at once). l.mu is
// held.
func (l *Lab) deletePod(name string, grace *int64) error {
	ref := "pod/" + name
	p, ok := l.reg.GetPod(Namespace, name)
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
	}
	own := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil {
		own = *g
	}
	period := own
	if grace != nil {
		period = max(*grace, 1)
		if *grace == 0 {
			period = 0
		}
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		period = 0
	}
	_, started := l.podIPs[name]
	if l.dp == nil || !started {
		// No kubelet to wait for: the API server deletes it at once.
		if err := l.reg.DeletePod(Namespace, name); err != nil {
			return err
		}
		l.releaseIP(name)
		l.podGone(name)
		l.emit(EventPodDeleted, ref, "pod deleted")
		l.schedulePending()
		return nil
	}
	if p.DeletionTimestamp != nil {
		// Terminating already: only a shorter grace period changes it.
		cur := int64(0)
		if g := p.DeletionGracePeriodSeconds; g != nil {
			cur = *g
		}
		if grace == nil || period >= cur {
			return nil
		}
		if period > 0 {
			if _, err := l.reg.UpdatePodStatus(Namespace, name, func(p *corev1.Pod) {
				ts := metav1.NewTime(p.DeletionTimestamp.Add(time.Duration(period-cur) * time.Second))
				p.DeletionTimestamp = &ts
				p.DeletionGracePeriodSeconds = &period
			}); err != nil {
				return err
			}
			l.emit(EventPodTerminating, ref, "pod is terminating; its grace period is now %ds", period)
			l.enqueue(func(dp plane.DataPlane) { dp.StopPod(name, time.Duration(period)*time.Second) })
			return nil
		}
		// Grace period 0: out of the API now; the stop under way goes on.
		return l.deleteStopping(name, "")
	}
	if period == 0 {
		l.enqueue(func(dp plane.DataPlane) { dp.StopPod(name, time.Duration(own)*time.Second) })
		return l.deleteStopping(name, fmt.Sprintf("; its containers get their grace period (%ds) in the background", own))
	}
	if _, err := l.reg.UpdatePodStatus(Namespace, name, func(p *corev1.Pod) {
		ts := metav1.NewTime(l.now().Add(time.Duration(period) * time.Second))
		p.DeletionTimestamp = &ts
		p.DeletionGracePeriodSeconds = &period
	}); err != nil {
		return err
	}
	l.emit(EventPodTerminating, ref, "pod is terminating (grace period %ds); waiting for the data plane to stop it", period)
	l.enqueue(func(dp plane.DataPlane) { dp.StopPod(name, time.Duration(period)*time.Second) })
	return nil
}

// deleteStopping removes from the API a pod whose kubelet still stops
// it: its name is free at once, its address stays taken until the data
// plane reports it stopped (podStopped). l.mu is held.
func (l *Lab) deleteStopping(name, more string) error {
	if err := l.reg.DeletePod(Namespace, name); err != nil {
		return err
	}
	a, ok := l.podIPs[name]
	if !ok || l.ipOwner[a] != name {
		a = netip.Addr{} // a hostNetwork pod's address is its node's
	}
	l.releaseIP(name)
	if a.IsValid() {
		l.ipOwner[a] = name
	}
	l.stillStopping[name] = append(l.stillStopping[name], a)
	l.podGone(name)
	l.emit(EventPodDeleted, "pod/"+name, "pod deleted at once (grace period 0)%s", more)
	l.schedulePending()
	return nil
}

// setPodReady sets a pod's readiness (its readiness probe, reported by the
// data plane, or a fault without one) and updates the endpoints: at once
// for a fault, on the controller worker for a data plane's report
// (endpointsSoon). It does not wait for the data plane.
func (l *Lab) setPodReady(name string, ready, report bool) error {
	l.mu.Lock()
	var changed bool
	_, err := l.reg.UpdatePodStatus(Namespace, name, func(p *corev1.Pod) {
		now := metav1.NewTime(l.now())
		for i := range p.Status.Conditions {
			c := &p.Status.Conditions[i]
			if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
				if c.Status != condStatus(ready) {
					changed = true
					c.Status = condStatus(ready)
					c.LastTransitionTime = now
				}
			}
		}
		for i := range p.Status.ContainerStatuses {
			c := &p.Status.ContainerStatuses[i]
			c.Ready = ready && c.State.Running != nil
		}
	})
	if err == nil && changed {
		if ready {
			l.emit(EventPodReady, "pod/"+name, "pod is ready")
		} else {
			l.emit(EventPodUnready, "pod/"+name, "pod is not ready")
		}
		// A rollout waits on its pods' readiness.
		if p, ok := l.reg.PeekPod(Namespace, name); ok {
			if owner := ownerDeploymentName(p); owner != "" {
				l.enqueueDeployment(owner)
			}
		}
		if report {
			l.endpointsSoon() // the worker runs afterChange (controller.go)
		} else {
			l.afterChange()
		}
	}
	l.mu.Unlock()
	return err
}

// podStopped is how the data plane reports that a terminating pod is gone;
// the lab removes it and frees its IP. It does not wait for the data plane.
func (l *Lab) podStopped(name string) error {
	l.mu.Lock()
	if held := l.stillStopping[name]; len(held) > 0 {
		// Deleted from the API at once, earlier: its address is free now.
		// (The data plane stops pods of one name in order.)
		if a := held[0]; a.IsValid() && l.ipOwner[a] == name {
			delete(l.ipOwner, a)
		}
		if len(held) == 1 {
			delete(l.stillStopping, name)
		} else {
			l.stillStopping[name] = held[1:]
		}
		l.mu.Unlock()
		return nil
	}
	owner := ""
	if p, ok := l.reg.PeekPod(Namespace, name); ok {
		owner = ownerDeploymentName(p)
	}
	err := l.reg.DeletePod(Namespace, name)
	if err == nil {
		if owner != "" {
			l.enqueueDeployment(owner) // Recreate waits for its old pods to go
		}
		l.releaseIP(name)
		l.podGone(name)
		l.emit(EventPodDeleted, "pod/"+name, "pod deleted")
		l.schedulePending()
		l.afterChange()
	}
	l.mu.Unlock()
	return err
}

// ComputeHash is the pod-template-hash of a Deployment's template: the FNV-32a
// hash of the template, rendered with SafeEncodeString, as Kubernetes'
// controller.ComputeHash does. Kubernetes hashes a spew dump of the
// defaulted template; nplab hashes its JSON, so the value has the same shape
// but is not the one a cluster would compute.
func ComputeHash(t *corev1.PodTemplateSpec) string {
	h := fnv.New32a()
	b, _ := json.Marshal(t)
	h.Write(b)
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// suffixAlphabet is utilrand's alphabet (no vowels, no confusable digits).
const suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// randSuffix is utilrand.String(n) drawn from the lab's Rand, so pod names
// are reproducible.
func (l *Lab) randSuffix(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = suffixAlphabet[l.rand.IntN(len(suffixAlphabet))]
	}
	return string(b)
}

func (l *Lab) createDeployment(d *appsv1.Deployment) error {
	l.stamp(&d.ObjectMeta)
	warn := newUnemulated(d, nil)
	out, err := l.reg.CreateDeployment(d)
	if err != nil {
		return err
	}
	l.warnUnemulated("deployment.apps/"+out.Name, warn)
	l.enqueueDeployment(out.Name)
	return nil
}

func (l *Lab) updateDeployment(d *appsv1.Deployment) (bool, error) {
	old, ok := l.reg.GetDeployment(Namespace, d.Name)
	if !ok {
		return false, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, d.Name)
	}
	d.Namespace = Namespace
	d.UID = old.UID
	d.ResourceVersion = old.ResourceVersion
	d.CreationTimestamp = old.CreationTimestamp
	d.Status = old.Status
	warn := newUnemulated(d, old)
	out, err := l.reg.UpdateDeployment(d)
	if err != nil {
		return false, err
	}
	l.warnUnemulated("deployment.apps/"+out.Name, warn)
	l.enqueueDeployment(out.Name)
	return out.ResourceVersion != old.ResourceVersion, nil
}

// Scale sets a Deployment's replicas, as `kubectl scale deployment NAME
// --replicas=N`. Like Apply it returns once the API server has the new
// replicas; the controllers create or delete the pods afterwards (see
// WaitIdle).
func (l *Lab) Scale(deployment string, replicas int) error {
	l.mu.Lock()
	err := l.scale(deployment, replicas)
	l.afterChange()
	l.mu.Unlock()
	l.drain()
	return err
}

func (l *Lab) scale(name string, replicas int) error {
	if replicas < 0 {
		return fmt.Errorf("deployment.apps/%s: the replicas count must not be negative (got %d)", name, replicas)
	}
	if replicas > math.MaxInt32 { // spec.replicas is an int32: it would wrap
		return fmt.Errorf("deployment.apps/%s: the replicas count must be at most %d (got %d)", name, math.MaxInt32, replicas)
	}
	d, ok := l.reg.GetDeployment(Namespace, name)
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, name)
	}
	was := int32(1)
	if d.Spec.Replicas != nil {
		was = *d.Spec.Replicas
	}
	d.Spec.Replicas = ptr(int32(replicas))
	out, err := l.reg.UpdateDeployment(d)
	if err != nil {
		return err
	}
	l.emit(EventScaled, "deployment.apps/"+name, "scaled from %d to %d replicas", was, replicas)
	l.enqueueDeployment(out.Name)
	return nil
}

// sortForScaleDown orders pods the way the ReplicaSet controller picks
// victims, simplified: not ready before ready, then newest first.
func sortForScaleDown(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		ri, rj := podReady(pods[i]), podReady(pods[j])
		if ri != rj {
			return !ri
		}
		ti, tj := pods[i].CreationTimestamp.Time, pods[j].CreationTimestamp.Time
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return pods[i].Name > pods[j].Name
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podFromTemplate is the ReplicaSet controller's pod: named
// <deployment>-<hash>-<5 random chars>, the template's labels plus
// pod-template-hash, owned by ReplicaSet <deployment>-<hash>.
func (l *Lab) podFromTemplate(d *appsv1.Deployment, hash string) *corev1.Pod {
	t := d.Spec.Template.DeepCopy()
	rs := d.Name + "-" + hash
	name := rs + "-" + l.randSuffix(5)
	for {
		if _, taken := l.reg.GetPod(Namespace, name); !taken {
			break
		}
		name = rs + "-" + l.randSuffix(5)
	}
	lbls := labels.Set{}
	for k, v := range t.Labels {
		lbls[k] = v
	}
	lbls[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   Namespace,
			Labels:      lbls,
			Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: replicaSetUID(d, hash),
				Controller: ptr(true), BlockOwnerDeletion: ptr(true),
			}},
		},
		Spec: t.Spec,
	}
}

// replicaSetUID is a stable UID for the ReplicaSet nplab does not store:
// derived from the Deployment's UID and the template hash, in UUID form.
func replicaSetUID(d *appsv1.Deployment, hash string) types.UID {
	sum := sha256.Sum256([]byte(string(d.UID) + "/" + hash))
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16]))
}
