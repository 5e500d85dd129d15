package apiserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nplab/nplab/lab"
)

// watchEvent is one line of a watch stream (metav1.WatchEvent).
type watchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// watch streams ?watch=true: the lab's event stream wakes it, and each
// wake-up lists the resource again and sends what was added, modified or
// deleted since the last list (objects compared as JSON), so every
// resource — the controllers' endpoints and slices included — is watched
// the same way. With resourceVersion unset or "0" the current objects come
// first as ADDED, as on a real server; with the resourceVersion of a list
// (the lab's event Seq) the stream first catches up on the objects the lab
// reported on since — ADDED if they are new since, MODIFIED with their
// present state, DELETED if gone — since nplab keeps no history of objects.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, res *resource, lsel labels.Selector, fsel map[string]string) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, errNoFlush)
		return
	}
	q := r.URL.Query()
	timeout := 30 * time.Minute
	if v, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && v > 0 {
		timeout = time.Duration(v) * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	table := wantsTable(r)
	// Subscribe and take the first list before the client sees 200: what
	// it changes once the watch is open is then a change to that list
	// (a pod its scale creates is ADDED, never part of the catch-up).
	lw := s.lab.Watch()
	defer func() { lw.Stop() }()
	enc := json.NewEncoder(w)
	send := func(typ string, o runtime.Object) bool {
		var obj any = o
		if table {
			t := s.table(res, []runtime.Object{o}, "")
			t.ColumnDefinitions = nil // sent once, with the list
			obj = t
		} else {
			s.setTypeMeta(res, o)
		}
		if err := enc.Encode(watchEvent{Type: typ, Object: obj}); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	snapshot := func() map[string]runtime.Object {
		m := map[string]runtime.Object{}
		for _, o := range selected(res.list(s), lsel, fsel) {
			m[metaOf(o).GetName()] = o
		}
		return m
	}
	key := func(o runtime.Object) []byte { b, _ := json.Marshal(o); return b }
	last := snapshot()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	if q.Get("sendInitialEvents") == "true" {
		// A watch-list (client-go's reflector, kubectl delete and wait):
		// the objects, then the bookmark that says they are all sent.
		for _, o := range sortedObjs(last) {
			if !send("ADDED", o) {
				return
			}
		}
		b := res.newObj()
		s.setTypeMeta(res, b)
		metaOf(b).SetResourceVersion(s.listRV())
		metaOf(b).SetAnnotations(map[string]string{"k8s.io/initial-events-end": "true"})
		if err := enc.Encode(watchEvent{Type: "BOOKMARK", Object: b}); err != nil {
			return
		}
		fl.Flush()
	} else if rv := q.Get("resourceVersion"); rv == "" || rv == "0" {
		for _, o := range sortedObjs(last) {
			if !send("ADDED", o) {
				return
			}
		}
	} else if seq, err := strconv.ParseUint(rv, 10, 64); err == nil {
		// Catch up from a list's resourceVersion (the lab's event Seq):
		// objects the lab reported on since are sent again, and those
		// gone since as DELETED, so `kubectl delete` (which waits for the
		// object to go) does not miss a deletion between its list and this
		// watch.
		for _, c := range s.changedSince(res, seq) {
			name := c.name
			if o, ok := last[name]; ok {
				typ := "MODIFIED"
				if c.new {
					typ = "ADDED"
				}
				if !send(typ, o) {
					return
				}
				continue
			}
			if !lsel.Empty() {
				continue
			}
			if n, ok := fsel["metadata.name"]; ok && n != name {
				continue
			}
			gone := res.newObj()
			metaOf(gone).SetName(name)
			metaOf(gone).SetNamespace(lab.Namespace)
			if !send("DELETED", gone) {
				return
			}
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-deadline.C:
			return
		case _, ok := <-lw.Events:
			if !ok {
				if lw.Err() == lab.ErrLabClosed {
					return
				}
				lw = s.lab.Watch()
				continue
			}
			// Take every event already queued: one list per burst.
			for drained := false; !drained; {
				select {
				case _, ok := <-lw.Events:
					if !ok {
						drained = true
					}
				default:
					drained = true
				}
			}
		case <-tick.C:
		}
		now := snapshot()
		for _, o := range sortedObjs(now) {
			name := metaOf(o).GetName()
			old, had := last[name]
			switch {
			case !had:
				if !send("ADDED", o) {
					return
				}
			case !bytes.Equal(key(old), key(o)):
				if !send("MODIFIED", o) {
					return
				}
			}
		}
		for _, o := range sortedObjs(last) {
			if _, still := now[metaOf(o).GetName()]; !still {
				if !send("DELETED", o) {
					return
				}
			}
		}
		last = now
	}
}

// prefixes are the lab event objects ("pod/x") of each resource.
var prefixes = map[string]string{"pods": "pod/", "services": "service/", "deployments": "deployment.apps/", "endpoints": "endpoints/"}

// change is one object of a resource the lab reported on after a seq;
// new when its first report came after that seq and the lab's event
// history reaches back to it (the object did not exist then).
type change struct {
	name string
	new  bool
}

// changedSince lists the objects of res the lab has reported on after
// event seq, sorted by name.
func (s *Server) changedSince(res *resource, seq uint64) []change {
	prefix, ok := prefixes[res.name]
	if !ok {
		return nil
	}
	events := s.lab.Events()
	covers := len(events) > 0 && events[0].Seq <= seq+1
	seen := map[string]bool{} // reported on at or before seq
	changed := map[string]bool{}
	for _, e := range events {
		name, ok := strings.CutPrefix(e.Object, prefix)
		if !ok {
			continue
		}
		if e.Seq <= seq {
			seen[name] = true
		} else {
			changed[name] = true
		}
	}
	var names []string
	for n := range changed {
		names = append(names, n)
	}
	sortStrings(names)
	out := make([]change, len(names))
	for i, n := range names {
		out[i] = change{name: n, new: covers && !seen[n]}
	}
	return out
}

func sortedObjs(m map[string]runtime.Object) []runtime.Object {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sortStrings(names)
	out := make([]runtime.Object, len(names))
	for i, n := range names {
		out[i] = m[n]
	}
	return out
}
