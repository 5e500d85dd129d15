package lab

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nplab/nplab/lab/plane"
)

// control is the handle the data plane reports through: the lab gives it to
// the data plane's Factory and to no one else. Its methods take l.mu
// briefly and never wait for the data plane (what they cause for it is
// queued), so the data plane may call them with its own locks held.
type control struct{ l *Lab }

var _ plane.Control = control{}

func (c control) PodStarted(pod, node, message string) {
	if message == "" {
		message = "started on " + node
	}
	c.l.record(Event{Type: EventNotice, Object: "pod/" + pod, Message: message})
}

func (c control) PodReady(pod string, ready bool) { _ = c.l.setPodReady(pod, ready, true) }

func (c control) PodStopped(pod string) { _ = c.l.podStopped(pod) }

func (c control) PodStatus(pod string, st plane.PodStatus) { _ = c.l.podStatus(pod, st) }

func (c control) PodNotice(pod, message string) {
	c.l.record(Event{Type: EventNotice, Object: "pod/" + pod, Message: message})
}

func (c control) Warning(node, pod, message string) {
	obj := "node/" + node
	if pod != "" {
		obj = "pod/" + pod
	}
	c.l.record(Event{Type: EventWarning, Object: obj, Message: message})
}

func (c control) Flow(f plane.Flow) {
	obj := "node/" + f.EntryNode
	if f.HostPort {
		obj = "pod/" + f.Pod
	}
	if f.Service != "" {
		_, name, _ := strings.Cut(f.Service, "/")
		obj = "service/" + name
	}
	e := Event{Type: EventFlow, Object: obj, Message: FlowString(&f), Flow: &f}
	if !f.Start.IsZero() {
		e.Time = f.Start.Add(f.Duration)
	}
	c.l.record(e)
}

func (c control) Listening(node string, ls []plane.Listener) {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	rt := l.nodeRT[node]
	if rt == nil {
		return
	}
	rt.listeners = slices.Clone(ls)
	var parts []string
	for _, x := range ls {
		parts = append(parts, fmt.Sprintf("%s/%s", x.Addr, x.Protocol))
	}
	msg := "proxy listens on nothing"
	if len(parts) > 0 {
		msg = "proxy listens on " + strings.Join(parts, ", ")
	}
	l.emit(EventListening, "node/"+node, "%s", msg)
}

// record adds an event to the stream; it takes l.mu.
func (l *Lab) record(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emitEvent(e)
}
