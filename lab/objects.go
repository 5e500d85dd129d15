package lab

import (
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nplab/nplab/lab/manifest"
)

// This file is the lab's typed object API, for front ends that speak the
// Kubernetes REST verbs (package lab/apiserver, which real kubectl talks
// to): Create, Update, DeleteObject and Get of a *corev1.Service,
// *corev1.Pod or *appsv1.Deployment. They go through the same registry
// calls as Apply — defaulting, allocation, validation, the same
// *apierrors.StatusError — and make the same events (Applied with
// kubectl's line, Rejected with its error, allocations, endpoints), so a
// watcher or the terminal UI cannot tell a kubectl request from an Apply.

// WriteOptions are the query options of a write request.
type WriteOptions struct {
	// DryRun is ?dryRun=All: the request is defaulted, allocated and
	// validated and the result returned, but nothing is stored and nothing
	// stays allocated. No event is emitted.
	DryRun bool
	// GracePeriodSeconds is a delete's gracePeriodSeconds (kubectl delete
	// --grace-period, --now, --force): how long a pod's containers get
	// after SIGTERM; nil for the pod's terminationGracePeriodSeconds, 0
	// to remove it from the API at once (its kubelet still stops it, in
	// the background). Other kinds are deleted at once whatever it is.
	GracePeriodSeconds *int64
}

// kindOf names a typed object's kind; an object nplab does not store is a
// 405-style error.
func kindOf(obj runtime.Object) (string, error) {
	switch obj.(type) {
	case *corev1.Service:
		return "Service", nil
	case *corev1.Pod:
		return "Pod", nil
	case *appsv1.Deployment:
		return "Deployment", nil
	}
	return "", apierrors.NewMethodNotSupported(schema.GroupResource{}, fmt.Sprintf("create %T", obj))
}

func objectMeta(obj runtime.Object) *metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Service:
		return &o.ObjectMeta
	case *corev1.Pod:
		return &o.ObjectMeta
	case *appsv1.Deployment:
		return &o.ObjectMeta
	}
	return &metav1.ObjectMeta{}
}

// Create is POST of a Service, Pod or Deployment (`kubectl create`,
// `kubectl apply` of a new object): what Apply does for a new object, and
// it returns the stored object (with its clusterIP, nodePorts, UID).
// A namespace other than default is kubectl's `namespaces "x" not found`.
func (l *Lab) Create(obj runtime.Object, opts WriteOptions) (runtime.Object, error) {
	kind, err := kindOf(obj)
	if err != nil {
		return nil, err
	}
	obj = obj.DeepCopyObject()
	m := objectMeta(obj)
	if m.Namespace != "" && m.Namespace != Namespace {
		return nil, notFoundNamespace(m.Namespace)
	}
	if opts.DryRun {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.stamp(m)
		switch o := obj.(type) {
		case *corev1.Service:
			return l.reg.DryRunCreateService(o)
		case *corev1.Pod:
			return l.reg.DryRunCreatePod(o)
		case *appsv1.Deployment:
			return l.reg.DryRunCreateDeployment(o)
		}
	}
	l.mu.Lock()
	l.hold()
	switch o := obj.(type) {
	case *corev1.Service:
		err = l.createService(o)
	case *corev1.Pod:
		err = l.createPod(o)
	case *appsv1.Deployment:
		err = l.createDeployment(o)
	}
	name := m.Name
	ref := manifest.ResourceOf(kind) + "/" + name
	r := Result{Object: ref, Kind: kind, Name: name, Action: Created, Err: err, Verb: "creating"}
	if err != nil {
		l.release(rejection(r))
	} else {
		l.release(Event{Type: EventApplied, Object: ref, Message: r.String()})
	}
	l.afterChange()
	var out runtime.Object
	if err == nil {
		out, err = l.get(kind, name)
	}
	l.mu.Unlock()
	l.drain()
	return out, err
}

// Update is PUT of a whole Service, Pod or Deployment (`kubectl replace`,
// `kubectl edit`, and every patch once merged): the registry's update
// path, with its optimistic concurrency (a stale resourceVersion is a 409
// Conflict), allocation and validation. It returns the stored object.
func (l *Lab) Update(obj runtime.Object, opts WriteOptions) (runtime.Object, error) {
	kind, err := kindOf(obj)
	if err != nil {
		return nil, err
	}
	obj = obj.DeepCopyObject()
	m := objectMeta(obj)
	if m.Namespace != "" && m.Namespace != Namespace {
		return nil, notFoundNamespace(m.Namespace)
	}
	l.mu.Lock()
	liveObj, err := l.get(kind, m.Name)
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	live := objectMeta(liveObj)
	if m.ResourceVersion != "" && m.ResourceVersion != live.ResourceVersion {
		l.mu.Unlock()
		gr := schema.GroupResource{Resource: strings.ToLower(kind) + "s"}
		if kind == "Deployment" {
			gr.Group = "apps"
		}
		return nil, apierrors.NewConflict(gr, m.Name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	if opts.DryRun {
		defer l.mu.Unlock()
		m.Namespace = Namespace
		m.ResourceVersion = ""
		switch o := obj.(type) {
		case *corev1.Service:
			return l.reg.DryRunUpdateService(o)
		case *corev1.Pod:
			if o.Spec.NodeName == "" {
				o.Spec.NodeName = liveObj.(*corev1.Pod).Spec.NodeName
			}
			return l.reg.DryRunUpdatePod(o)
		case *appsv1.Deployment:
			return l.reg.DryRunUpdateDeployment(o)
		}
	}
	l.hold()
	var changed bool
	switch o := obj.(type) {
	case *corev1.Service:
		changed, err = l.updateService(o)
	case *corev1.Pod:
		changed, err = l.updatePod(o)
	case *appsv1.Deployment:
		changed, err = l.updateDeployment(o)
	}
	ref := manifest.ResourceOf(kind) + "/" + m.Name
	r := Result{Object: ref, Kind: kind, Name: m.Name, Action: Configured, Err: err, Verb: "patching"}
	if !changed {
		r.Action = Unchanged
	}
	if err != nil {
		l.release(rejection(r))
	} else {
		l.release(Event{Type: EventApplied, Object: ref, Message: r.String()})
	}
	l.afterChange()
	var out runtime.Object
	if err == nil {
		out, err = l.get(kind, m.Name)
	}
	l.mu.Unlock()
	l.drain()
	return out, err
}

// Get returns a copy of a stored Service, Pod or Deployment (kind as
// Delete takes it: "service", "svc", "Pod", ...), or the API server's
// NotFound.
func (l *Lab) Get(kind, name string) (runtime.Object, error) {
	k, err := canonicalKind(kind)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.get(k, name)
}

// get is Get with a canonical kind; l.mu is held.
func (l *Lab) get(kind, name string) (runtime.Object, error) {
	switch kind {
	case "Service":
		if o, ok := l.reg.GetService(Namespace, name); ok {
			return o, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, name)
	case "Pod":
		if o, ok := l.reg.GetPod(Namespace, name); ok {
			return o, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
	default:
		if o, ok := l.reg.GetDeployment(Namespace, name); ok {
			return o, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, name)
	}
}

// DeleteObject is DELETE of one object: Delete, or with opts.DryRun only
// the check that it exists.
func (l *Lab) DeleteObject(kind, namespace, name string, opts WriteOptions) error {
	if !opts.DryRun {
		return l.delete(kind, namespace, name, opts.GracePeriodSeconds)
	}
	if namespace != "" && namespace != Namespace {
		return notFoundNamespace(namespace)
	}
	_, err := l.Get(kind, name)
	return err
}
