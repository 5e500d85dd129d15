package nodes

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// What a recorder heard.
const (
	recPodStarted = "PodStarted"
	recPodReady   = "PodReady"
	recPodStopped = "PodStopped"
	recPodNotice  = "PodNotice"
	recWarning    = "Warning"
	recFlow       = "Flow"
	recListening  = "Listening"
	recPodStatus  = "PodStatus"
)

// record is one call to a recorder.
type record struct {
	Time      time.Time
	Kind      string
	Node      string
	Pod       string
	Message   string
	Ready     bool
	Flow      plane.Flow
	Listeners []plane.Listener
	Status    plane.PodStatus
}

// recorder is a plane.Control for tests: it records every call, safe for
// concurrent use, and never calls back.
type recorder struct {
	mu   sync.Mutex
	recs []record
}

var _ plane.Control = (*recorder)(nil)

func (r *recorder) add(rec record) {
	rec.Time = time.Now()
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

func (r *recorder) PodStarted(pod, node, message string) {
	r.add(record{Kind: recPodStarted, Pod: pod, Node: node, Message: message})
}
func (r *recorder) PodReady(pod string, ready bool) {
	r.add(record{Kind: recPodReady, Pod: pod, Ready: ready})
}
func (r *recorder) PodStopped(pod string) { r.add(record{Kind: recPodStopped, Pod: pod}) }
func (r *recorder) PodNotice(pod, message string) {
	r.add(record{Kind: recPodNotice, Pod: pod, Message: message})
}
func (r *recorder) Warning(node, pod, message string) {
	r.add(record{Kind: recWarning, Node: node, Pod: pod, Message: message})
}
func (r *recorder) Flow(f plane.Flow) {
	r.add(record{Kind: recFlow, Node: f.EntryNode, Pod: f.Pod, Flow: f})
}
func (r *recorder) Listening(node string, ls []plane.Listener) {
	r.add(record{Kind: recListening, Node: node, Listeners: slices.Clone(ls)})
}

func (r *recorder) PodStatus(pod string, st plane.PodStatus) {
	r.add(record{Kind: recPodStatus, Pod: pod, Status: st})
}

func (r *recorder) all() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// wait polls until a record matches or timeout passes.
func (r *recorder) wait(t testing.TB, timeout time.Duration, what string, match func(record) bool) record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, rec := range r.all() {
			if match(rec) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) has(match func(record) bool) bool {
	return slices.ContainsFunc(r.all(), match)
}

// flows returns the recorded flows that match.
func (r *recorder) flows(match func(plane.Flow) bool) []plane.Flow {
	var fs []plane.Flow
	for _, rec := range r.all() {
		if rec.Kind == recFlow && match(rec.Flow) {
			fs = append(fs, rec.Flow)
		}
	}
	return fs
}

// ready matches a PodReady(pod, ready) record.
func ready(pod string, ready bool) func(record) bool {
	return func(r record) bool { return r.Kind == recPodReady && r.Pod == pod && r.Ready == ready }
}
