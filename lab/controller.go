package lab

import (
	"context"
	"errors"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// BurstReplicas is kube-controller-manager's burstReplicas: one sync of a
// ReplicaSet creates at most this many pods, and deletes at most this many.
// A Deployment further from its replicas than that is synced again, after
// the other Deployments waiting in the queue.
const BurstReplicas = 500

// slowStartInitialBatchSize is controller.SlowStartInitialBatchSize.
const slowStartInitialBatchSize = 1

// ErrClosed is what WaitIdle returns when the lab was closed with controller
// work still queued.
var ErrClosed = errors.New("lab closed with controller work left in its queue")

// controllers is the state of the lab's controller worker (the
// ReplicaSet/Deployment controller's work queue) and of the scheduler's
// cache. Every field is guarded by Lab.mu, except the channels, which are
// set once in startControllers.
type controllers struct {
	// queue is the work queue: Deployment names, first in first out, each
	// at most once (queued).
	queue  []string
	queued map[string]bool
	// busy counts syncs running (their data plane calls included).
	busy int
	// paused: the worker starts no sync (SyncOnce still does).
	paused bool
	// idle is closed while the queue is empty and no sync runs; isIdle
	// says whether it is.
	idle   chan struct{}
	isIdle bool

	// endpoints: a data plane report (a pod's status or readiness) is
	// waiting for the endpoints controllers (endpointsSoon).
	endpoints bool

	wake chan struct{} // a token: the queue may have work
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the worker has returned

	// The scheduler's cache: pods bound to each node (terminating ones
	// included, until they are gone), each bound pod's node, and the pods
	// no node could take, oldest first. A pending entry whose seq is no
	// longer pendingSeq[name] was deleted and is skipped.
	nodePods   []int
	podNode    map[string]int
	pending    []pendingPod
	pendingSeq map[string]uint64
	seq        uint64
}

type pendingPod struct {
	name string
	seq  uint64
}

// startControllers sets up the controller state and starts the worker; New
// calls it once.
func (l *Lab) startControllers() {
	c := &l.ctrl
	c.queued = map[string]bool{}
	c.idle = make(chan struct{})
	close(c.idle)
	c.isIdle = true
	c.wake = make(chan struct{}, 1)
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	c.nodePods = make([]int, len(l.topo.Nodes))
	c.podNode = map[string]int{}
	c.pendingSeq = map[string]uint64{}
	go l.runControllers()
}

// stopControllers stops the worker and waits for it to return: a sync in
// progress finishes (its data plane calls included), then nothing more
// runs. Close calls it, without l.mu; it may be called more than once.
func (l *Lab) stopControllers() {
	select {
	case <-l.ctrl.stop:
	default:
		close(l.ctrl.stop)
	}
	<-l.ctrl.done
}

// runControllers is the worker goroutine: it takes Deployments off the
// queue and syncs them, one at a time, until Close.
func (l *Lab) runControllers() {
	defer close(l.ctrl.done)
	for {
		select {
		case <-l.ctrl.stop:
			return
		case <-l.ctrl.wake:
		}
		for {
			select {
			case <-l.ctrl.stop:
				return
			default:
			}
			ran := l.syncEndpoints()
			if !l.syncNext(false) && !ran {
				break
			}
		}
	}
}

// enqueueDeployment queues a Deployment for its controller, as the
// informer's event handlers do (a Deployment already waiting is not queued
// twice). It returns at once; the worker does the work. l.mu is held.
func (l *Lab) enqueueDeployment(name string) {
	c := &l.ctrl
	if c.queued[name] {
		return
	}
	c.queued[name] = true
	c.queue = append(c.queue, name)
	if c.isIdle {
		c.idle = make(chan struct{})
		c.isIdle = false
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// endpointsSoon has the worker run the endpoints controllers (afterChange)
// for what the data plane reported, instead of the reporting call: as the
// endpoints controller's work queue does, the reports that arrive while a
// pass runs are taken together by the next one. A 500-pod Deployment
// behind one Service so costs a few passes over its 500 endpoints as its
// pods become ready, not one pass per pod (quadratic: the profile of a
// 100-node lab's start showed a third of its CPU there). l.mu is held.
func (l *Lab) endpointsSoon() {
	c := &l.ctrl
	if c.endpoints {
		return
	}
	c.endpoints = true
	if c.isIdle {
		c.idle = make(chan struct{})
		c.isIdle = false
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// syncEndpoints runs the endpoints controllers when endpointsSoon asked
// for it, paused or not (a pause holds the Deployments only), then the
// data plane calls they queued. It reports whether it ran.
func (l *Lab) syncEndpoints() bool {
	c := &l.ctrl
	l.mu.Lock()
	if !c.endpoints {
		l.mu.Unlock()
		return false
	}
	c.endpoints = false
	c.busy++
	l.finishPass()
	return true
}

// finishPass ends a controller pass: the endpoints controllers for its
// changes under l.mu, then, outside it, the data plane calls they queued,
// and the pass is no longer busy. l.mu is held on entry and released on
// return.
func (l *Lab) finishPass() {
	l.afterChange()
	l.mu.Unlock()
	l.drain()
	l.mu.Lock()
	l.ctrl.busy--
	l.checkIdle()
	l.mu.Unlock()
}

// checkIdle closes the idle channel when the queue is empty, no sync runs
// and no data plane report waits. l.mu is held.
func (l *Lab) checkIdle() {
	c := &l.ctrl
	if !c.isIdle && len(c.queue) == 0 && c.busy == 0 && !c.endpoints {
		close(c.idle)
		c.isIdle = true
	}
}

// syncNext takes the first Deployment off the queue and syncs it: under
// l.mu the sync itself and the endpoints controllers, then, outside it, the
// data plane calls the sync queued. It reports false when there was nothing
// to do (or the worker is paused and byHand is false).
func (l *Lab) syncNext(byHand bool) bool {
	c := &l.ctrl
	l.mu.Lock()
	if len(c.queue) == 0 || (c.paused && !byHand) {
		l.mu.Unlock()
		return false
	}
	name := c.queue[0]
	c.queue[0] = ""
	c.queue = c.queue[1:]
	delete(c.queued, name)
	c.busy++
	if l.syncDeployment(name) {
		l.enqueueDeployment(name) // work left: again, after the others
	}
	l.finishPass()
	return true
}

// WaitIdle waits until the controllers have nothing left to do — the
// queue is empty and no sync is running — and returns nil, or returns
// ctx.Err() when ctx ends first, or ErrClosed when the lab is closed with
// work still queued.
//
// Apply, Scale and Delete return as soon as the API server has stored the
// change; the Deployments' pods come afterwards, from the controller
// worker, as on a real cluster. WaitIdle is `kubectl rollout status`
// without the readiness part: after it, every Deployment has its pods
// (Running, or Pending where no node has room), and the data plane has
// been given everything so far (pods started and stopped, every node's
// proxy synced). Readiness reported later by a data plane is not waited
// for. While the controllers are paused (PauseControllers) only a sync run
// by SyncOnce makes progress.
func (l *Lab) WaitIdle(ctx context.Context) error {
	l.mu.Lock()
	idle := l.ctrl.idle
	l.mu.Unlock()
	select {
	case <-idle:
		l.drain()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.ctrl.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.ctrl.isIdle {
			return nil
		}
		return ErrClosed
	}
}

// PauseControllers stops the controller worker from starting another sync
// until ResumeControllers (a sync already running finishes). Changes still
// queue their Deployments; SyncOnce runs them by hand. `nplab validate`
// pauses the controllers before it applies anything, so that what it
// prints is one sync per Deployment, whatever the machine's speed.
func (l *Lab) PauseControllers() {
	l.mu.Lock()
	l.ctrl.paused = true
	l.mu.Unlock()
}

// ResumeControllers lets the controller worker run again.
func (l *Lab) ResumeControllers() {
	l.mu.Lock()
	l.ctrl.paused = false
	select {
	case l.ctrl.wake <- struct{}{}:
	default:
	}
	l.mu.Unlock()
}

// SyncOnce runs, in the caller's goroutine, one sync of each Deployment in
// the controller queue when it is called (as many syncs as the queue then
// holds, in queue order), and returns how many it ran. A Deployment with
// work left after its sync (more than BurstReplicas pods to create or
// delete) goes back to the end of the queue. With the controllers paused
// and nothing else changing the lab, that is exactly one sync per queued
// Deployment: what `kubectl get pods` shows right after `kubectl apply` on
// a real cluster.
func (l *Lab) SyncOnce() int {
	l.mu.Lock()
	n := len(l.ctrl.queue)
	l.mu.Unlock()
	ran := 0
	for ran < n && l.syncNext(true) {
		ran++
	}
	return ran
}

// syncDeployment is one sync of the Deployment and ReplicaSet controllers
// together (nplab stores no ReplicaSets): the pods of the current template
// are brought towards spec.replicas, and pods of an older template are
// replaced as spec.strategy says. With RollingUpdate (the default) a
// rollout keeps at most replicas+maxSurge pods and at least
// replicas-maxUnavailable ready ones, as the Deployment controller's
// reconcileNewReplicaSet and reconcileOldReplicaSets do (unready old pods
// go first); with Recreate the old pods go first and the new ones come
// once they are gone. As the ReplicaSet controller's manageReplicas, one
// sync creates at most BurstReplicas pods, in slow-start batches (1, 2, 4,
// ...; a batch with a failure ends the sync), and deletes at most
// BurstReplicas pods. It reports whether work is left for another sync
// (a pod's readiness or end queues the Deployment again, as the informers
// do). A failed creation is a Failed event and is not retried on its own
// (kube retries with a growing backoff): the next change to the
// Deployment or to its pods retries. l.mu is held; it costs O(pods).
func (l *Lab) syncDeployment(name string) (more bool) {
	d, ok := l.reg.GetDeployment(Namespace, name)
	if !ok {
		return false // deleted since it was queued
	}
	l.deploymentsChanged(name) // its status, once the sync's changes are in
	ref := "deployment.apps/" + d.Name
	hash := ComputeHash(&d.Spec.Template)
	want := 1
	if d.Spec.Replicas != nil {
		want = int(*d.Spec.Replicas)
	}
	var current, old []*corev1.Pod
	oldTerminating := false
	for _, p := range l.ownedPods(d) {
		if p.DeletionTimestamp != nil {
			oldTerminating = oldTerminating || p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash
			continue
		}
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			current = append(current, p)
		} else {
			old = append(old, p)
		}
	}
	recreate := d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType
	budget := BurstReplicas
	del := func(pods []*corev1.Pod) {
		n := min(len(pods), budget)
		budget -= n
		more = more || len(pods) > n
		for _, p := range pods[:n] {
			if err := l.deletePod(p.Name, nil); err != nil {
				l.emit(EventFailed, ref, "deleting pod %q: %v", p.Name, err)
			}
		}
	}

	// How many new pods this sync may add.
	up := want - len(current)
	switch {
	case recreate && (len(old) > 0 || oldTerminating):
		up = 0 // the old pods go, and are gone, first
	case !recreate && len(old) > 0:
		surge, _ := rollingParams(d, want)
		up = min(up, want+surge-len(current)-len(old))
	}
	if up > 0 {
		n := min(up, BurstReplicas)
		more = up > n
		if _, err := slowStartBatch(n, slowStartInitialBatchSize, func() error {
			return l.createPod(l.podFromTemplate(d, hash))
		}); err != nil {
			l.emit(EventFailed, ref, "creating pod: %v", err)
			more = false
		}
	}
	if extra := len(current) - want; extra > 0 {
		sortForScaleDown(current)
		del(current[:extra])
	}
	if len(old) == 0 {
		return more
	}
	if recreate {
		del(old)
		return more
	}
	// RollingUpdate: old pods go while enough pods stay ready. (The pods
	// just created are not ready yet, unless a lab without a kubelet made
	// them Running and Ready at once: count them as they are now.)
	_, unavail := rollingParams(d, want)
	minAvailable := want - unavail
	readyNew := 0
	for _, p := range l.ownedPods(d) {
		if p.DeletionTimestamp == nil && p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash && podReady(p) {
			readyNew++
		}
	}
	// All pods, less the minimum available, less the new ones not ready.
	maxScaledDown := len(old) + readyNew - minAvailable
	if maxScaledDown <= 0 {
		return more
	}
	sortForScaleDown(old) // the unready first: they serve nobody
	var unready, ready []*corev1.Pod
	for _, p := range old {
		if podReady(p) {
			ready = append(ready, p)
		} else {
			unready = append(unready, p)
		}
	}
	n := min(len(unready), maxScaledDown)
	del(unready[:n])
	maxScaledDown -= n
	if k := min(readyNew+len(ready)-minAvailable, len(ready), maxScaledDown); k > 0 {
		del(ready[:k])
		n += k
	}
	// Old pods went: the next sync may scale the new ones up (the
	// informers' update of the old ReplicaSet queues it on a cluster).
	return more || n > 0
}

// rollingParams are a RollingUpdate's maxSurge and maxUnavailable for want
// replicas (25% each by default; surge rounded up, unavailable down; both
// 0 makes unavailable 1), as deploymentutil.ResolveFenceposts.
func rollingParams(d *appsv1.Deployment, want int) (surge, unavail int) {
	ms, mu := intstr.FromString("25%"), intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			ms = *ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			mu = *ru.MaxUnavailable
		}
	}
	s, err1 := intstr.GetScaledValueFromIntOrPercent(&ms, want, true)
	u, err2 := intstr.GetScaledValueFromIntOrPercent(&mu, want, false)
	if err1 != nil || err2 != nil {
		return 1, 0
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return s, u
}

// slowStartBatch calls fn count times in batches of initial, 2×initial,
// 4×initial, ... (the last one what is left), as the ReplicaSet
// controller's slowStartBatch does: every call of a batch is made (kube
// makes them in parallel, nplab one after another), and a batch with a
// failure ends it, returning the successes so far and the first error.
// One bad template thus costs one failed call, not count of them.
func slowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining, successes := count, 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		var first error
		failed := 0
		for range batch {
			if err := fn(); err != nil {
				failed++
				if first == nil {
					first = err
				}
			}
		}
		successes += batch - failed
		if first != nil {
			return successes, first
		}
		remaining -= batch
	}
	return successes, nil
}

// ownedPods are the pods of a Deployment's ReplicaSets, by name, as
// stored: read only. l.mu is held; it costs O(the Deployment's pods), from
// the index (takeChanges), not a pass over every pod.
func (l *Lab) ownedPods(d *appsv1.Deployment) []*corev1.Pod {
	l.takeChanges()
	set := l.index.byOwner[d.Name]
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]*corev1.Pod, 0, len(names))
	for _, name := range names {
		if p, ok := l.reg.PeekPod(Namespace, name); ok {
			out = append(out, p)
		}
	}
	return out
}

// ownerDeploymentName is the name of the Deployment whose ReplicaSet
// (<deployment>-<pod-template-hash>) controls p, or "".
func ownerDeploymentName(p *corev1.Pod) string {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return ""
	}
	return strings.TrimSuffix(ref.Name, "-"+p.Labels[appsv1.DefaultDeploymentUniqueLabelKey])
}

// pickNode is the scheduler's choice for a pod without spec.nodeName:
// among the nodes with fewer than MaxPods pods, the one with the fewest,
// ties to the lowest index. O(nodes), from the scheduler's cache.
func (l *Lab) pickNode() (int, error) {
	best := -1
	for i, n := range l.ctrl.nodePods {
		if n >= MaxPods {
			continue
		}
		if best < 0 || n < l.ctrl.nodePods[best] {
			best = i
		}
	}
	if best < 0 {
		return -1, &UnschedulableError{Nodes: len(l.topo.Nodes)}
	}
	return best, nil
}

// podBound records in the scheduler's cache that pod name is on node.
// l.mu is held.
func (l *Lab) podBound(name string, node int) {
	if _, ok := l.ctrl.podNode[name]; ok {
		return
	}
	l.ctrl.podNode[name] = node
	l.ctrl.nodePods[node]++
}

// addPending queues a pod no node could take, for schedulePending. l.mu is
// held.
func (l *Lab) addPending(name string) {
	c := &l.ctrl
	c.seq++
	c.pendingSeq[name] = c.seq
	c.pending = append(c.pending, pendingPod{name: name, seq: c.seq})
}

// podGone removes a pod that left the API server from the scheduler's
// cache: its node has room again, and a pending pod is no longer pending.
// l.mu is held.
func (l *Lab) podGone(name string) {
	c := &l.ctrl
	if node, ok := c.podNode[name]; ok {
		c.nodePods[node]--
		delete(c.podNode, name)
	}
	delete(c.pendingSeq, name)
}

// schedulePending is the scheduler's retry after a pod left a node: pods
// still Pending without a node get one, in the order they were created
// (kube-scheduler's queue is ordered by priority, then by when the pod
// entered it), while any fits. It stops at the first pod that does not
// fit, so each call costs O(nodes) plus the pods it binds. l.mu is held.
func (l *Lab) schedulePending() {
	c := &l.ctrl
	for len(c.pending) > 0 {
		e := c.pending[0]
		if c.pendingSeq[e.name] != e.seq { // deleted since
			c.pending[0] = pendingPod{}
			c.pending = c.pending[1:]
			continue
		}
		node := -1
		var err error
		if p, ok := l.reg.GetPod(Namespace, e.name); ok {
			node, err = l.schedule(p)
		} else {
			node, err = l.pickNode()
		}
		if err != nil {
			return
		}
		c.pending[0] = pendingPod{}
		c.pending = c.pending[1:]
		delete(c.pendingSeq, e.name)
		l.bind(e.name, node)
	}
}
