package registry

import (
	corev1 "k8s.io/api/core/v1"
)

// Changes are the objects written since the last TakeChanges: created,
// updated (only when the stored object changed) or deleted, by key
// ("namespace/name", each once). A dry run writes nothing and so is not a
// change. The lab's controllers read them, as an informer's event
// handlers would, to work on what changed instead of on everything.
type Changes struct {
	Pods        []string
	Services    []string
	Deployments []string
}

// changeLog is the set of keys written since the last TakeChanges. It is
// guarded by Registry.mu.
type changeLog struct {
	pods, services, deployments map[string]struct{}
}

// changed records a write of a "Pod", "Service" or "Deployment"; r.mu is
// held. Every stored write goes through it: the place to hook anything
// that must see every change.
func (r *Registry) changed(kind, key string) {
	m := &r.changes.services
	switch kind {
	case "Pod":
		m = &r.changes.pods
	case "Deployment":
		m = &r.changes.deployments
	}
	if *m == nil {
		*m = map[string]struct{}{}
	}
	(*m)[key] = struct{}{}
}

// TakeChanges returns the objects written since the last call (in no
// particular order) and starts a new set.
func (r *Registry) TakeChanges() Changes {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c Changes
	for k := range r.changes.pods {
		c.Pods = append(c.Pods, k)
	}
	for k := range r.changes.services {
		c.Services = append(c.Services, k)
	}
	for k := range r.changes.deployments {
		c.Deployments = append(c.Deployments, k)
	}
	clear(r.changes.pods)
	clear(r.changes.services)
	clear(r.changes.deployments)
	return c
}

// PeekPod returns the stored Pod itself, not a copy: the caller must not
// modify it. The registry never changes a stored object in place (every
// write stores a new one), so it stays valid, as of the moment of the
// call, after later writes. For controllers that read many objects per
// change; GetPod is the safe copy.
func (r *Registry) PeekPod(namespace, name string) (*corev1.Pod, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pods[objKey(nsOrDefault(namespace), name)]
	return p, ok
}

// PeekService is PeekPod for a Service: the stored object, read only.
func (r *Registry) PeekService(namespace, name string) (*corev1.Service, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.services[objKey(nsOrDefault(namespace), name)]
	return s, ok
}
