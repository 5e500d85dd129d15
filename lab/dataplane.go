package lab

import (
	"sync"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// dpQueue is the one queue between the control plane and the data plane,
// and it is bounded by the lab's objects, not by how fast things happen:
//
//   - pod operations (StartPod, StopPod) wait in order, at most one start
//     and one stop per pod in flight;
//   - SyncServices is level-triggered, so only the latest set of service
//     ports waits: a burst of changes costs one sync.
//
// One goroutine the Lab owns (started in New, ended by Close) runs them
// outside l.mu, in order, pod operations first. A public method that
// changed something waits for the queue to reach what it queued (drain),
// so `Apply` returns with its listeners in place; the data plane's own
// reports (through the Control handle) queue without waiting, since the
// data plane may hold its locks while it reports.
type dpQueue struct {
	mu   sync.Mutex
	cond *sync.Cond

	ops     []func(plane.DataPlane)
	ports   []plane.ServicePort
	hasSync bool

	queued, done uint64 // generations: drain waits until done >= queued
	closed       bool
	exited       chan struct{}
}

func newDPQueue() *dpQueue {
	q := &dpQueue{exited: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// run is the queue's goroutine.
func (q *dpQueue) run(dp plane.DataPlane) {
	defer close(q.exited)
	for {
		q.mu.Lock()
		for !q.closed && len(q.ops) == 0 && !q.hasSync {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		ops, ports, sync := q.ops, q.ports, q.hasSync
		q.ops, q.ports, q.hasSync = nil, nil, false
		gen := q.queued
		q.mu.Unlock()

		for _, op := range ops {
			op(dp)
		}
		if sync {
			dp.SyncServices(ports)
		}

		q.mu.Lock()
		q.done = gen
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

func (q *dpQueue) push(op func(plane.DataPlane)) {
	q.mu.Lock()
	if !q.closed {
		q.ops = append(q.ops, op)
		q.queued++
		q.cond.Broadcast()
	}
	q.mu.Unlock()
}

func (q *dpQueue) sync(ports []plane.ServicePort) {
	q.mu.Lock()
	if !q.closed {
		q.ports, q.hasSync = ports, true
		q.queued++
		q.cond.Broadcast()
	}
	q.mu.Unlock()
}

// wait returns when everything queued before it has run, or the queue
// closed.
func (q *dpQueue) wait() {
	q.mu.Lock()
	target := q.queued
	for !q.closed && q.done < target {
		q.cond.Wait()
	}
	q.mu.Unlock()
}

// close stops the goroutine after the operation it runs; what is still
// queued is dropped (the data plane's Close removes everything anyway).
func (q *dpQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// enqueue queues a pod operation for the data plane; l.mu is held.
func (l *Lab) enqueue(op func(plane.DataPlane)) {
	if l.dpq != nil {
		l.dpq.push(op)
	}
}

// queueSync queues the latest service ports; l.mu is held.
func (l *Lab) queueSync(ports []plane.ServicePort) {
	if l.dpq != nil {
		l.dpq.sync(ports)
	}
}

// drain waits, outside l.mu, until the data plane has run everything queued
// so far. Public methods call it before returning; the Control handle never
// does.
func (l *Lab) drain() {
	if l.dpq != nil {
		l.dpq.wait()
	}
	l.flushStore() // store.go: the call's writes are on disk
}

func secondsDuration(s int32) time.Duration { return time.Duration(s) * time.Second }
