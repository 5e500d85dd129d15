package lab

import (
	"errors"
	"sync"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// EventType says what an Event reports.
type EventType string

// The event types. The control plane's come from the API server and the
// controllers; the data plane's (Flow, Notice, Warning, Listening) come in
// through the handle only it holds.
const (
	EventApplied          EventType = "Applied"          // created, configured or unchanged
	EventRejected         EventType = "Rejected"         // Message is kubectl's error text; Rejection has the error
	EventDeleted          EventType = "Deleted"          // an object was deleted on request
	EventScaled           EventType = "Scaled"           // a Deployment's replicas changed
	EventClusterIP        EventType = "ClusterIP"        // a clusterIP was allocated or released (Alloc)
	EventNodePort         EventType = "NodePort"         // a nodePort was allocated or released (Alloc)
	EventScheduled        EventType = "Scheduled"        // a pod got a node and an IP
	EventFailedScheduling EventType = "FailedScheduling" // no node can take the pod; it stays Pending
	EventPodReady         EventType = "PodReady"         // Ready became true
	EventPodUnready       EventType = "PodUnready"       // Ready became false
	EventPodTerminating   EventType = "PodTerminating"   // deletionTimestamp set, waiting for the data plane
	EventPodDeleted       EventType = "PodDeleted"       // the pod is gone
	EventEndpoints        EventType = "EndpointsChanged" // a Service's endpoints changed; Message has the new list
	EventFailed           EventType = "Failed"           // a controller could not do its work (e.g. unknown node)
	EventFault            EventType = "Fault"            // a fault was injected (Fault)
	EventUpdated          EventType = "Updated"          // an object's state changed with no other event saying so
	EventFlow             EventType = "Flow"             // data plane: one attempt through a node (Flow)
	EventListening        EventType = "Listening"        // data plane: a node's proxy sockets changed
	EventNotice           EventType = "Notice"           // data plane: something worth knowing
	EventWarning          EventType = "Warning"          // data plane: something went wrong
)

// Event is one thing that happened in the lab. Every event has a Seq one
// higher than the one before it, the lab's time, a type, the object it
// concerns and the line a person reads. The payload fields that apply are
// set:
//
//   - Pod, Service or Node is the state of the object named by Object
//     after the event (Service for "service/x" and "endpoints/x"); Removed
//     says that object is gone. Folding these into a [State] with
//     [State.Apply] is how a watcher keeps its snapshot current.
//   - Flow, Alloc, Fault and Rejection say what happened, typed.
type Event struct {
	Seq  uint64
	Time time.Time
	Type EventType
	// Object is kubectl's name of what the event is about: "service/web",
	// "pod/web-7d4b9c8f6d-x2k9p", "deployment.apps/web", "node/node-1".
	Object  string
	Message string

	Pod     *PodState
	Service *ServiceState
	Node    *NodeState
	Removed bool

	Flow      *plane.Flow
	Alloc     *Allocation
	Fault     *Fault
	Rejection *Rejection
}

func (e Event) String() string {
	return e.Time.Format("15:04:05") + " " + string(e.Type) + " " + e.Object + ": " + e.Message
}

// Allocation is a clusterIP or nodePort allocated or released.
type Allocation struct {
	Service  string // Service name
	Kind     string // "ClusterIP" or "NodePort"
	Value    string // "10.96.0.10", "30080"
	Released bool
}

// Rejection is an object the API server (or kubectl itself) refused.
type Rejection struct {
	// Err is the API server's *apierrors.StatusError, a *manifest.Error,
	// or a lab error; Text is exactly what kubectl prints for it.
	Err  error
	Text string
	File string
	Line int
}

// MaxHistory is how many events Events keeps: a lab that runs for hours
// with traffic would otherwise grow without bound (every flow is an event).
// Older events are dropped from the history.
const MaxHistory = 10000

// WatchBuffer is how many events a watcher may have unread before it falls
// behind.
const WatchBuffer = 4096

// ErrFellBehind is a Watcher's Err when it stopped reading for longer than
// its buffer allows: its channel was closed, and the watcher should call
// Watch again for a fresh snapshot.
var ErrFellBehind = errors.New("lab: watcher fell behind; Watch again for a new snapshot")

// ErrLabClosed is a Watcher's Err when the lab was closed.
var ErrLabClosed = errors.New("lab: closed")

// Watcher is one Watch: a snapshot and every event after it.
type Watcher struct {
	// State is the lab at the moment of the Watch: State.Seq is the last
	// event it includes, and the first event on Events is State.Seq+1.
	State State
	// Events delivers every later event, in order, with no gap and no
	// duplicate. It is closed by Stop, when the lab closes, or when the
	// watcher falls behind (see Err).
	Events <-chan Event

	ch   chan Event
	lab  *Lab
	mu   sync.Mutex
	err  error
	done bool
}

// Err says why Events was closed: nil after Stop, ErrFellBehind, or
// ErrLabClosed. It is nil while Events is open.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the watch and closes Events.
func (w *Watcher) Stop() {
	w.lab.mu.Lock()
	defer w.lab.mu.Unlock()
	w.end(nil)
}

// end closes the channel once; l.mu is held.
func (w *Watcher) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done, w.err = true, err
	delete(w.lab.watchers, w)
	close(w.ch)
}

// Watch returns a consistent snapshot of the lab and a channel of every
// event after it. It never blocks the lab: a watcher's buffer holds
// WatchBuffer events, and one that falls further behind has its channel
// closed with Err() == ErrFellBehind, and should Watch again.
func (l *Lab) Watch() *Watcher {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan Event, WatchBuffer)
	w := &Watcher{State: l.state.Clone(), Events: ch, ch: ch, lab: l}
	if l.closed {
		w.done, w.err = true, ErrLabClosed
		close(ch)
		return w
	}
	l.watchers[w] = struct{}{}
	return w
}

// State returns a snapshot of the lab (what Watch returns, without the
// events).
func (l *Lab) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.Clone()
}

// Events returns a copy of the most recent events (at most MaxHistory),
// oldest first.
func (l *Lab) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// emit records an event; l.mu is held.
func (l *Lab) emit(t EventType, object, format string, args ...any) {
	l.emitEvent(Event{Type: t, Object: object, Message: sprintf(format, args...)})
}

// emitEvent numbers an event, attaches the state of its object, folds it
// into the lab's state, keeps it in the history and hands it to every
// watcher. l.mu is held.
func (l *Lab) emitEvent(e Event) {
	if l.holding {
		l.held = append(l.held, e)
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	l.seq++
	e.Seq = l.seq
	if e.Flow == nil && e.Pod == nil && e.Service == nil && e.Node == nil && !e.Removed {
		l.attachState(&e)
	}
	l.state.Apply(e)
	if len(l.events) >= MaxHistory {
		// Drop the oldest quarter at once so appends stay amortised O(1).
		n := copy(l.events, l.events[len(l.events)-MaxHistory*3/4:])
		clear(l.events[n:])
		l.events = l.events[:n]
	}
	l.events = append(l.events, e)
	for w := range l.watchers {
		select {
		case w.ch <- e:
		default:
			w.end(ErrFellBehind)
		}
	}
}

// hold makes emit keep events back until release, so an object's "created"
// comes before what creating it caused (allocations, scheduling). l.mu is held.
func (l *Lab) hold() { l.holding = true }

// release emits first, then the events held back since hold.
func (l *Lab) release(first ...Event) {
	l.holding = false
	held := l.held
	l.held = nil
	for _, e := range append(first, held...) {
		l.emitEvent(e)
	}
}
