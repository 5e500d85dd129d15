package lab

import (
	"sync"
	"time"
)

// EventType says what an Event reports.
type EventType string

// The event types of the control plane. The data plane adds its own through
// Record (EventFlow, EventNotice, EventWarning, or any other string).
const (
	EventApplied          EventType = "Applied"          // created, configured or unchanged
	EventRejected         EventType = "Rejected"         // Message is kubectl's error text
	EventDeleted          EventType = "Deleted"          // an object was deleted on request
	EventScaled           EventType = "Scaled"           // a Deployment's replicas changed
	EventClusterIP        EventType = "ClusterIP"        // a clusterIP was allocated or released
	EventNodePort         EventType = "NodePort"         // a nodePort was allocated or released
	EventScheduled        EventType = "Scheduled"        // a pod got a node and an IP
	EventFailedScheduling EventType = "FailedScheduling" // no node can take the pod; it stays Pending
	EventPodReady         EventType = "PodReady"         // Ready became true
	EventPodUnready       EventType = "PodUnready"       // Ready became false
	EventPodTerminating   EventType = "PodTerminating"   // deletionTimestamp set, waiting for the data plane
	EventPodDeleted       EventType = "PodDeleted"       // the pod is gone
	EventEndpoints        EventType = "EndpointsChanged" // a Service's endpoints changed; Message has the new list
	EventFailed           EventType = "Failed"           // a controller could not do its work (e.g. unknown node)
	EventFlow             EventType = "Flow"             // data plane: a forwarded connection
	EventNotice           EventType = "Notice"           // data plane: something worth knowing
	EventWarning          EventType = "Warning"          // data plane: something went wrong
	EventDataPlaneStopped EventType = "DataPlaneStopped" // reserved for the data plane's shutdown
)

// Event is one thing that happened in the lab.
type Event struct {
	Time time.Time
	Type EventType
	// Object is kubectl's name of what the event is about: "service/web",
	// "pod/web-7d4b9c8f6d-x2k9p", "deployment.apps/web", "node/node-1".
	Object  string
	Message string
}

func (e Event) String() string {
	return e.Time.Format("15:04:05") + " " + string(e.Type) + " " + e.Object + ": " + e.Message
}

// subscriber is one Subscribe call: an unbounded queue drained into ch by its
// own goroutine, so a slow reader never blocks the lab and never loses an
// event.
type subscriber struct {
	ch    chan Event
	mu    sync.Mutex
	queue []Event
	wake  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (s *subscriber) push(e Event) {
	s.mu.Lock()
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) pump() {
	defer close(s.ch)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		e := s.queue[0]
		s.queue[0] = Event{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.ch <- e:
		case <-s.done:
			return
		}
	}
}

// Subscribe returns a channel that receives every event from now on, in
// order, and a cancel func that stops it and closes the channel. Events are
// queued without bound per subscriber (nothing is dropped, the lab never
// waits for a reader); a reader that stops reading should cancel.
func (l *Lab) Subscribe() (<-chan Event, func()) {
	s := &subscriber{
		ch:   make(chan Event, 64),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	l.mu.Lock()
	id := l.nextSub
	l.nextSub++
	l.subs[id] = s
	l.mu.Unlock()
	go s.pump()
	return s.ch, func() {
		l.mu.Lock()
		delete(l.subs, id)
		l.mu.Unlock()
		s.once.Do(func() { close(s.done) })
	}
}

// MaxHistory is how many events Events keeps: a lab that runs for hours
// with traffic would otherwise grow without bound (every flow is an event).
// Older events are dropped from the history; subscribers still get every
// event.
const MaxHistory = 10000

// Events returns a copy of the most recent events (at most MaxHistory),
// oldest first.
func (l *Lab) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// Record adds an event from outside the control plane (the data plane's
// flows and notices) to the stream. A zero Time is set to the lab's clock.
func (l *Lab) Record(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emitEvent(e)
}

// emit records an event; l.mu is held.
func (l *Lab) emit(t EventType, object, format string, args ...any) {
	l.emitEvent(Event{Type: t, Object: object, Message: sprintf(format, args...)})
}

func (l *Lab) emitEvent(e Event) {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	if l.holding {
		l.held = append(l.held, e)
		return
	}
	if len(l.events) >= MaxHistory {
		// Drop the oldest quarter at once so appends stay amortised O(1).
		n := copy(l.events, l.events[len(l.events)-MaxHistory*3/4:])
		clear(l.events[n:])
		l.events = l.events[:n]
	}
	l.events = append(l.events, e)
	for _, s := range l.subs {
		s.push(e)
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
