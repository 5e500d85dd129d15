package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/manifest"
	"github.com/nplab/nplab/lab/registry"
)

// Action is what applying or deleting did to an object.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Deleted    Action = "deleted"
)

// Result is the outcome for one object of Apply or DeleteFile, or one
// manifest error (then Object may be "").
type Result struct {
	// Object is kubectl's name: "service/frontend-service", "pod/backend",
	// "deployment.apps/web".
	Object string
	Kind   string // "Service", "Pod", "Deployment"
	Name   string
	// File, Document (0-based) and Line say where the object came from.
	File     string
	Document int
	Line     int
	// Action is set when Err is nil.
	Action Action
	// Err is the API server's *apierrors.StatusError, a *manifest.Error, or
	// a lab error (unknown node).
	Err error
	// Verb is kubectl's verb for the failed request ("creating",
	// "patching", "deleting"), used to print Err.
	Verb string
}

// String is what kubectl prints for the object: "service/web created",
// `pod "backend" deleted`, or the error as kubectl prints it alone.
func (r Result) String() string {
	if r.Err != nil {
		return kubectl.FormatError(r.Err, r.Verb, r.File)
	}
	if r.Action == Deleted {
		return fmt.Sprintf("%s %q deleted", strings.SplitN(r.Object, "/", 2)[0], r.Name)
	}
	return r.Object + " " + string(r.Action)
}

// Sourced is the Result's error with its verb and file, for
// kubectl.FormatErrors.
func (r Result) Sourced() kubectl.Sourced {
	return kubectl.Sourced{Err: r.Err, Verb: r.Verb, File: r.File}
}

// entry is a decoded object or a decoding error, in file order.
type entry struct {
	obj *manifest.Object
	err *manifest.Error
}

func decodeInOrder(file string, data []byte) []entry {
	objs, errs := manifest.Decode(file, data)
	var out []entry
	for i := range objs {
		out = append(out, entry{obj: &objs[i]})
	}
	for _, e := range errs {
		var me *manifest.Error
		if errors.As(e, &me) {
			out = append(out, entry{err: me})
		}
	}
	key := func(e entry) (int, int) {
		if e.obj != nil {
			return e.obj.Document, e.obj.Item
		}
		return e.err.Document, e.err.Item
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, ii := key(out[i])
		dj, ij := key(out[j])
		if di != dj {
			return di < dj
		}
		return ii < ij
	})
	return out
}

func errResult(e *manifest.Error) Result {
	r := Result{Kind: e.ObjectKind, Name: e.Name, File: e.File, Document: e.Document, Line: e.Line, Err: e}
	if e.ObjectKind != "" && e.Name != "" {
		r.Object = manifest.ResourceOf(e.ObjectKind) + "/" + e.Name
	}
	return r
}

// File is one manifest file for ApplyFiles.
type File struct {
	Name string
	Data []byte
}

// Apply applies a manifest file as `kubectl apply -f file` would; see
// ApplyFiles.
func (l *Lab) Apply(file string, data []byte) []Result {
	return l.ApplyFiles(File{Name: file, Data: data})
}

// ApplyFiles is one `kubectl apply -f f1 -f f2 ...`: kubectl reads and
// decodes every file first (its GetObjects visitor), so the errors it finds
// itself — YAML syntax, apiVersion/kind missing, unknown kinds — come
// first, for all files; then each object is sent in file order and is
// created, or merged into the live object ("configured", or "unchanged"
// when the merge changes nothing). A rejected object (by the API server,
// an unknown field or wrong type included) does not stop the others. The
// same object twice is created twice, and the second fails with
// AlreadyExists, as `kubectl create -f` reports it.
func (l *Lab) ApplyFiles(files ...File) []Result {
	var results []Result
	var sent []entry
	var fileOf []int // index in files of each sent entry
	l.mu.Lock()
	for fi, f := range files {
		for _, e := range decodeInOrder(f.Name, f.Data) {
			if e.err != nil && e.err.Kind != manifest.ErrDecode {
				r := errResult(e.err)
				l.reject(r)
				results = append(results, r)
				continue
			}
			sent = append(sent, e)
			fileOf = append(fileOf, fi)
		}
	}
	seen := map[string]bool{}
	l.batching = true
	for i, e := range sent {
		if e.err != nil {
			// Rejected by the API server's decoder, as it arrives.
			r := errResult(e.err)
			r.Verb = "creating"
			if l.exists(e.err.ObjectKind, e.err.Name) {
				r.Verb = "patching"
			}
			l.reject(r)
			results = append(results, r)
			continue
		}
		o := e.obj
		r := Result{Object: o.Ref(), Kind: o.Kind, Name: o.Name, File: o.File, Document: o.Document, Line: o.Line}
		if o.Name == "" {
			r.Object = ""
		}
		l.hold()
		// The same object twice in one file is created twice (the
		// issue's required case, see the package doc); across files it
		// is the usual create-then-update.
		again := fmt.Sprintf("%d/%s", fileOf[i], o.Ref())
		r.Action, r.Verb, r.Err = l.applyObject(o, seen[again])
		seen[again] = true
		if r.Err != nil {
			l.release(rejection(r))
		} else {
			l.release(Event{Type: EventApplied, Object: r.Object, Message: r.String()})
		}
		l.afterChange()
		results = append(results, r)
	}
	l.batching = false
	l.flushPorts()
	l.mu.Unlock()
	l.drain()
	return results
}

// exists reports whether the object is stored; l.mu is held.
func (l *Lab) exists(kind, name string) bool {
	if name == "" {
		return false
	}
	var ok bool
	switch kind {
	case "Service":
		_, ok = l.reg.PeekService(Namespace, name)
	case "Pod":
		_, ok = l.reg.PeekPod(Namespace, name)
	case "Deployment":
		_, ok = l.reg.GetDeployment(Namespace, name)
	}
	return ok
}

func notFoundNamespace(ns string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
}

// applyObject creates or updates one object; l.mu is held.
func (l *Lab) applyObject(o *manifest.Object, again bool) (Action, string, error) {
	if o.Name == "" {
		// kubectl's applyOneObject, before it asks the server anything.
		if m, err := meta.Accessor(o.Object); err == nil && m.GetGenerateName() != "" {
			return "", "", fmt.Errorf("from %s: cannot use generate name with apply", m.GetGenerateName())
		}
	}
	if o.Namespace != "" && o.Namespace != Namespace {
		return "", "creating", notFoundNamespace(o.Namespace)
	}
	js, _ := json.Marshal(o.Object)
	applied := string(js)
	key := o.Ref()

	_, exists := l.live(o.Kind, o.Name)
	// The cluster's own default/kubernetes is not the user's to apply:
	// nplab creates (and so refuses) it rather than patching it. kubectl
	// apply would patch it, and the API server would put it back.
	system := o.Kind == "Service" && o.Name == registry.KubernetesServiceName && l.lastApplied[key] == ""
	if !exists || again || system {
		var err error
		switch obj := o.Object.(type) {
		case *corev1.Service:
			err = l.createService(obj.DeepCopy())
		case *corev1.Pod:
			err = l.createPod(obj.DeepCopy())
		case *appsv1.Deployment:
			err = l.createDeployment(obj.DeepCopy())
		}
		if err != nil {
			return "", "creating", err
		}
		l.lastApplied[key] = applied
		l.persistApplied(key)
		return Created, "", nil
	}
	// kubectl apply: the three-way merge of the last applied manifest,
	// this one and the live object. "unchanged" means the merge changed
	// nothing (kubectl's patch against live is {}).
	changed, err := l.applyUpdate(o, []byte(l.lastApplied[key]), js)
	if err != nil {
		return "", "patching", err
	}
	l.lastApplied[key] = applied
	l.persistApplied(key)
	if !changed {
		return Unchanged, "", nil
	}
	return Configured, "", nil
}

// live returns the stored object of a kind ("Service", "Pod",
// "Deployment") and name, read only, and whether it exists; l.mu is held.
func (l *Lab) live(kind, name string) (any, bool) {
	switch kind {
	case "Service":
		if o, ok := l.reg.PeekService(Namespace, name); ok {
			return o, true
		}
	case "Pod":
		if o, ok := l.reg.PeekPod(Namespace, name); ok {
			return o, true
		}
	case "Deployment":
		if o, ok := l.reg.GetDeployment(Namespace, name); ok {
			return o, true
		}
	}
	return nil, false
}

// applyUpdate merges and updates an existing object; l.mu is held. It
// reports whether the stored object changed.
func (l *Lab) applyUpdate(o *manifest.Object, original, modified []byte) (bool, error) {
	live, _ := l.live(o.Kind, o.Name)
	liveJS, err := json.Marshal(live)
	if err != nil {
		return false, err
	}
	merged, err := applyMerge(original, modified, liveJS)
	if err != nil {
		return false, err
	}
	switch o.Kind {
	case "Service":
		svc := &corev1.Service{}
		if err := json.Unmarshal(merged, svc); err != nil {
			return false, err
		}
		return l.updateService(svc)
	case "Pod":
		pod := &corev1.Pod{}
		if err := json.Unmarshal(merged, pod); err != nil {
			return false, err
		}
		return l.updatePod(pod)
	default:
		d := &appsv1.Deployment{}
		if err := json.Unmarshal(merged, d); err != nil {
			return false, err
		}
		return l.updateDeployment(d)
	}
}

// stamp sets what the API server would on create.
func (l *Lab) stamp(m *metav1.ObjectMeta) {
	m.Namespace = Namespace
	if m.CreationTimestamp.IsZero() {
		m.CreationTimestamp = metav1.NewTime(l.now())
	}
}

// createService creates svc and reports what was allocated; l.mu is held.
func (l *Lab) createService(svc *corev1.Service) error {
	l.stamp(&svc.ObjectMeta)
	warn := newUnemulated(svc, nil)
	out, err := l.reg.CreateService(svc)
	if err != nil {
		return err
	}
	ref := "service/" + out.Name
	l.warnUnemulated(ref, warn)
	if ip := out.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		l.alloc(ref, "ClusterIP", ip, "", false)
	}
	for _, np := range nodePorts(out) {
		port, detail, _ := strings.Cut(np, " ")
		l.alloc(ref, "NodePort", port, detail, false)
	}
	return nil
}

// nodePorts lists a Service's nodePorts as "30080 (TCP port 80)", one per
// distinct number (entries sharing a number are listed together).
func nodePorts(svc *corev1.Service) []string {
	byPort := map[int32][]string{}
	var order []int32
	for _, p := range svc.Spec.Ports {
		if p.NodePort == 0 {
			continue
		}
		if _, ok := byPort[p.NodePort]; !ok {
			order = append(order, p.NodePort)
		}
		byPort[p.NodePort] = append(byPort[p.NodePort], fmt.Sprintf("%s port %d", p.Protocol, p.Port))
	}
	var out []string
	for _, np := range order {
		out = append(out, fmt.Sprintf("%d (%s)", np, strings.Join(byPort[np], ", ")))
	}
	return out
}

func nodePortSet(svc *corev1.Service) map[int32]bool {
	m := map[int32]bool{}
	if svc == nil {
		return m
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			m[p.NodePort] = true
		}
	}
	return m
}

func (l *Lab) updateService(svc *corev1.Service) (bool, error) {
	old, ok := l.reg.GetService(Namespace, svc.Name)
	if !ok {
		return false, apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, svc.Name)
	}
	svc.Namespace = Namespace
	svc.UID = old.UID
	svc.ResourceVersion = old.ResourceVersion
	svc.CreationTimestamp = old.CreationTimestamp
	warn := newUnemulated(svc, old)
	out, err := l.reg.UpdateService(svc)
	if err != nil {
		return false, err
	}
	l.warnUnemulated("service/"+out.Name, warn)
	l.reportServiceChange(old, out)
	return out.ResourceVersion != old.ResourceVersion, nil
}

// reportServiceChange emits the allocations and releases between old and new.
func (l *Lab) reportServiceChange(old, new *corev1.Service) {
	var ref string
	switch {
	case old != nil:
		ref = "service/" + old.Name
	case new != nil:
		ref = "service/" + new.Name
	default:
		return
	}
	oldIP, newIP := "", ""
	if old != nil {
		oldIP = old.Spec.ClusterIP
	}
	if new != nil {
		newIP = new.Spec.ClusterIP
	}
	if oldIP != newIP {
		if oldIP != "" && oldIP != corev1.ClusterIPNone {
			l.alloc(ref, "ClusterIP", oldIP, "", true)
		}
		if newIP != "" && newIP != corev1.ClusterIPNone {
			l.alloc(ref, "ClusterIP", newIP, "", false)
		}
	}
	was, is := nodePortSet(old), nodePortSet(new)
	var released, allocated []int
	for p := range was {
		if !is[p] {
			released = append(released, int(p))
		}
	}
	for p := range is {
		if !was[p] {
			allocated = append(allocated, int(p))
		}
	}
	sort.Ints(released)
	sort.Ints(allocated)
	for _, p := range released {
		l.alloc(ref, "NodePort", fmt.Sprint(p), "", true)
	}
	for _, p := range allocated {
		l.alloc(ref, "NodePort", fmt.Sprint(p), "", false)
	}
}

// Delete deletes one object as `kubectl delete KIND NAME` would. kind is a
// kind or kubectl resource name ("service", "svc", "pod", "po",
// "deployment", "deploy"); namespace "" means default. Deleting a
// Deployment deletes its pods.
func (l *Lab) Delete(kind, namespace, name string) error {
	return l.delete(kind, namespace, name, nil)
}

func (l *Lab) delete(kind, namespace, name string, grace *int64) error {
	l.mu.Lock()
	k, err := canonicalKind(kind)
	if err == nil {
		err = l.deleteObject(k, namespace, name, grace)
	}
	l.afterChange()
	l.mu.Unlock()
	l.drain()
	return err
}

func canonicalKind(kind string) (string, error) {
	switch strings.ToLower(kind) {
	case "service", "services", "svc":
		return "Service", nil
	case "pod", "pods", "po":
		return "Pod", nil
	case "deployment", "deployments", "deploy", "deployment.apps":
		return "Deployment", nil
	}
	return "", fmt.Errorf("the server doesn't have a resource type %q", kind)
}

// deleteObject deletes and reports, a pod with the grace period asked
// for (nil: its own); l.mu is held.
func (l *Lab) deleteObject(kind, namespace, name string, grace *int64) error {
	if namespace != "" && namespace != Namespace {
		return notFoundNamespace(namespace)
	}
	ref := manifest.ResourceOf(kind) + "/" + name
	switch kind {
	case "Service":
		old, _ := l.reg.GetService(Namespace, name)
		if err := l.reg.DeleteService(Namespace, name); err != nil {
			return err
		}
		l.emit(EventDeleted, ref, "service %q deleted", name)
		l.reportServiceChange(old, nil)
		if name == registry.KubernetesServiceName {
			// kube-apiserver's bootstrap controller recreates it.
			if err := l.reg.EnsureKubernetesService(); err != nil {
				l.emit(EventFailed, ref, "recreating the kubernetes service: %v", err)
			} else if k, ok := l.reg.GetService(Namespace, name); ok {
				l.alloc(ref, "ClusterIP", k.Spec.ClusterIP, "", false)
			}
		}
	case "Pod":
		p, ok := l.reg.GetPod(Namespace, name)
		if !ok {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
		}
		l.emit(EventDeleted, ref, "pod %q deleted", name)
		if err := l.deletePod(name, grace); err != nil {
			return err
		}
		// The ReplicaSet controller replaces a deleted pod (a terminating
		// pod no longer counts toward replicas): its Deployment is queued.
		if owner := ownerDeploymentName(p); owner != "" {
			if _, ok := l.reg.GetDeployment(Namespace, owner); ok {
				l.enqueueDeployment(owner)
			}
		}
	case "Deployment":
		d, ok := l.reg.GetDeployment(Namespace, name)
		if !ok {
			return apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, name)
		}
		if err := l.reg.DeleteDeployment(Namespace, name); err != nil {
			return err
		}
		l.emit(EventDeleted, ref, "deployment.apps %q deleted", name)
		for _, p := range l.ownedPods(d) {
			if p.DeletionTimestamp == nil {
				if err := l.deletePod(p.Name, nil); err != nil {
					l.emit(EventFailed, ref, "deleting pod %q: %v", p.Name, err)
				}
			}
		}
	}
	delete(l.lastApplied, ref)
	l.persistApplied(ref)
	return nil
}

// DeleteFile deletes the objects of a manifest file as `kubectl delete -f
// file` would, going on past errors.
func (l *Lab) DeleteFile(file string, data []byte) []Result {
	var results []Result
	l.mu.Lock()
	l.batching = true
	for _, e := range decodeInOrder(file, data) {
		if e.err != nil && e.err.Kind == manifest.ErrDecode && e.err.Name != "" {
			// kubectl delete sends only the name: a field the server
			// could not decode does not matter.
			e = entry{obj: &manifest.Object{Kind: e.err.ObjectKind, Name: e.err.Name, File: e.err.File, Document: e.err.Document, Item: e.err.Item, Line: e.err.Line}}
		}
		if e.err != nil {
			results = append(results, errResult(e.err))
			continue
		}
		o := e.obj
		r := Result{Object: o.Ref(), Kind: o.Kind, Name: o.Name, File: file, Document: o.Document, Line: o.Line, Action: Deleted}
		if err := l.deleteObject(o.Kind, o.Namespace, o.Name, nil); err != nil {
			r.Action, r.Err, r.Verb = "", err, "deleting"
			l.reject(r)
		}
		l.afterChange()
		results = append(results, r)
	}
	l.batching = false
	l.flushPorts()
	l.mu.Unlock()
	l.drain()
	return results
}

// rejection is the Rejected event for r.
func rejection(r Result) Event {
	return Event{Type: EventRejected, Object: r.Object, Message: r.String(),
		Rejection: &Rejection{Err: r.Err, Text: r.String(), File: r.File, Line: r.Line}}
}

// reject emits the Rejected event for r; l.mu is held.
func (l *Lab) reject(r Result) { l.emitEvent(rejection(r)) }

// alloc emits a ClusterIP or NodePort event ("nodePort 30080 (TCP port 80)
// allocated"); l.mu is held.
func (l *Lab) alloc(ref, kind, value, detail string, released bool) {
	t, word, verb := EventClusterIP, "clusterIP", "allocated"
	if kind == "NodePort" {
		t, word = EventNodePort, "nodePort"
	}
	if released {
		verb = "released"
	}
	_, name, _ := strings.Cut(ref, "/")
	msg := word + " " + value + " " + verb
	if detail != "" {
		msg = word + " " + value + " " + detail + " " + verb
	}
	l.emitEvent(Event{Type: t, Object: ref, Message: msg,
		Alloc: &Allocation{Service: name, Kind: kind, Value: value, Released: released}})
}
