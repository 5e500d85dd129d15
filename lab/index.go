package lab

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// This file is the controllers' cache, as an informer's indexer is to a
// real controller: which pods carry which label, and which Service selects
// by which label, so that a change costs what it touches — the Services
// whose selector matches the changed pod, the pods a changed Service
// selects — and not a pass over every object (issue 12: 2,000 Services
// applied one by one were quadratic).

// labelPair is one label, key=value.
type labelPair struct{ key, value string }

// selectorIndex indexes pods by every label and managed Services (see
// managed) by one pair of their selector: the one with the smallest key.
// A pod a selector matches carries every pair of it, that one included,
// so looking a pod's labels up finds every Service that selects it. It
// holds the label and selector maps of the stored objects, which the
// registry never modifies. Guarded by Lab.mu.
type selectorIndex struct {
	podLabels map[string]map[string]string
	podsBy    map[labelPair]map[string]struct{}
	svcSel    map[string]map[string]string
	svcsBy    map[labelPair]map[string]struct{}
	// podOwner is the Deployment owning each pod that has one; byOwner
	// the reverse (ownedPods).
	podOwner map[string]string
	byOwner  map[string]map[string]struct{}
}

// pendingChanges are what changed since afterChange last ran, already
// folded into the index: the pods, and the Services whose endpoints to
// recompute (the changed ones, and those that select a changed pod).
type pendingChanges struct {
	pods, recompute map[string]struct{}
	// deployments whose status may have changed (deploymentstatus.go).
	deployments map[string]struct{}
}

func addTo(m map[labelPair]map[string]struct{}, p labelPair, name string) {
	s := m[p]
	if s == nil {
		s = map[string]struct{}{}
		m[p] = s
	}
	s[name] = struct{}{}
}

func removeFrom(m map[labelPair]map[string]struct{}, p labelPair, name string) {
	if s := m[p]; s != nil {
		delete(s, name)
		if len(s) == 0 {
			delete(m, p)
		}
	}
}

// setPod records pod name's labels (nil: gone) and owning Deployment
// ("": none), and returns the labels it had.
func (x *selectorIndex) setPod(name string, lbls map[string]string, owner string) (old map[string]string) {
	if x.podLabels == nil {
		x.podLabels = map[string]map[string]string{}
		x.podsBy = map[labelPair]map[string]struct{}{}
		x.podOwner = map[string]string{}
		x.byOwner = map[string]map[string]struct{}{}
	}
	if o, ok := x.podOwner[name]; ok {
		delete(x.byOwner[o], name)
		if len(x.byOwner[o]) == 0 {
			delete(x.byOwner, o)
		}
		delete(x.podOwner, name)
	}
	if owner != "" {
		x.podOwner[name] = owner
		if x.byOwner[owner] == nil {
			x.byOwner[owner] = map[string]struct{}{}
		}
		x.byOwner[owner][name] = struct{}{}
	}
	old = x.podLabels[name]
	for k, v := range old {
		removeFrom(x.podsBy, labelPair{k, v}, name)
	}
	delete(x.podLabels, name)
	if len(lbls) > 0 {
		x.podLabels[name] = lbls
		for k, v := range lbls {
			addTo(x.podsBy, labelPair{k, v}, name)
		}
	}
	return old
}

// keyPair is the pair of a selector a Service is indexed by.
func keyPair(sel map[string]string) labelPair {
	var p labelPair
	first := true
	for k, v := range sel {
		if first || k < p.key {
			p, first = labelPair{k, v}, false
		}
	}
	return p
}

// setService records the selector of Service name (nil: gone, or not
// managed by the endpoints controllers).
func (x *selectorIndex) setService(name string, sel map[string]string) {
	if x.svcSel == nil {
		x.svcSel = map[string]map[string]string{}
		x.svcsBy = map[labelPair]map[string]struct{}{}
	}
	if old, ok := x.svcSel[name]; ok {
		removeFrom(x.svcsBy, keyPair(old), name)
		delete(x.svcSel, name)
	}
	if len(sel) > 0 {
		x.svcSel[name] = sel
		addTo(x.svcsBy, keyPair(sel), name)
	}
}

// selects reports whether a (non-empty) selector matches labels: every
// pair is there, as labels.SelectorFromSet(sel).Matches.
func selects(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if w, ok := lbls[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// servicesSelecting adds to out the Services whose selector matches lbls.
func (x *selectorIndex) servicesSelecting(lbls map[string]string, out map[string]struct{}) {
	for k, v := range lbls {
		for name := range x.svcsBy[labelPair{k, v}] {
			if selects(x.svcSel[name], lbls) {
				out[name] = struct{}{}
			}
		}
	}
}

// podsSelected returns the names of the pods whose labels a non-empty
// selector matches, from the smallest posting list of its pairs.
func (x *selectorIndex) podsSelected(sel map[string]string) []string {
	var best map[string]struct{}
	first := true
	for k, v := range sel {
		s := x.podsBy[labelPair{k, v}]
		if first || len(s) < len(best) {
			best, first = s, false
		}
	}
	out := make([]string, 0, len(best))
	for name := range best {
		if selects(sel, x.podLabels[name]) {
			out = append(out, name)
		}
	}
	return out
}

// candidatePods are the stored pods svc's selector matches (selected
// filters them further), read only. l.mu is held.
func (l *Lab) candidatePods(svc *corev1.Service) []*corev1.Pod {
	names := l.index.podsSelected(svc.Spec.Selector)
	out := make([]*corev1.Pod, 0, len(names))
	for _, name := range names {
		if p, ok := l.reg.PeekPod(Namespace, name); ok {
			out = append(out, p)
		}
	}
	return out
}

// takeChanges folds the registry's change log (what was written since the
// last call) into the index and into l.pending, for afterChange. Anything
// that reads the index calls it first, so the index is never behind the
// registry. l.mu is held.
func (l *Lab) takeChanges() {
	ch := l.reg.TakeChanges()
	if len(ch.Pods)+len(ch.Services) == 0 {
		return
	}
	if l.pending.pods == nil {
		l.pending.pods = map[string]struct{}{}
		l.pending.recompute = map[string]struct{}{}
	}
	for _, name := range inNamespace(ch.Services) {
		l.pending.recompute[name] = struct{}{}
		var sel map[string]string
		if svc, ok := l.reg.PeekService(Namespace, name); ok && managed(svc) {
			sel = svc.Spec.Selector
		}
		l.index.setService(name, sel)
	}
	for _, name := range inNamespace(ch.Pods) {
		l.pending.pods[name] = struct{}{}
		var lbls map[string]string
		owner := ""
		if p, ok := l.reg.PeekPod(Namespace, name); ok {
			lbls, owner = p.Labels, ownerDeploymentName(p)
		}
		l.deploymentsChanged(l.index.podOwner[name], owner)
		old := l.index.setPod(name, lbls, owner)
		l.index.servicesSelecting(old, l.pending.recompute)
		l.index.servicesSelecting(lbls, l.pending.recompute)
	}
}

// inNamespace turns the registry's "namespace/name" keys into the names
// of the lab's namespace.
func inNamespace(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if ns, name, ok := strings.Cut(k, "/"); ok && ns == Namespace {
			out = append(out, name)
		}
	}
	return out
}

// takeSorted empties a set and returns its names, sorted.
func takeSorted(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	clear(set)
	sort.Strings(out)
	return out
}
