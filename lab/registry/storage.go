package registry

import (
	"errors"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Storage is where the registry writes what it stores, as kube-apiserver
// writes to etcd: Put after every create or update that changed an object
// (with its new resourceVersion), Delete after every delete. Keys are
// etcd's: /registry/services/specs/<ns>/<name>, /registry/pods/<ns>/<name>,
// /registry/deployments/<ns>/<name>. The registry calls it with its own
// lock held, in the order of the writes, so an implementation must be
// quick to return and must not call back into the registry.
type Storage interface {
	Put(key string, obj runtime.Object)
	Delete(key string)
}

// The etcd key prefixes kube-apiserver uses for the objects nplab stores.
const (
	ServicesPrefix    = "/registry/services/specs/"
	PodsPrefix        = "/registry/pods/"
	DeploymentsPrefix = "/registry/deployments/"
)

func serviceKey(k string) string    { return ServicesPrefix + k }
func podKey(k string) string        { return PodsPrefix + k }
func deploymentKey(k string) string { return DeploymentsPrefix + k }

// SetStorage makes s receive every later write (nil: none).
func (r *Registry) SetStorage(s Storage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.storage = s
}

// persist and unpersist hand one committed write to the storage; r.mu is
// held.
func (r *Registry) persist(key string, obj runtime.Object) {
	if r.storage != nil {
		r.storage.Put(key, obj.DeepCopyObject())
	}
}

func (r *Registry) unpersist(key string) {
	if r.storage != nil {
		r.storage.Delete(key)
	}
}

// Restore puts objects read back from storage into the registry exactly as
// they were stored — UID, resourceVersion, clusterIPs, nodePorts — without
// defaulting or validating them again, and repairs the allocators from
// them, as kube-apiserver's repair controllers rebuild the clusterIP and
// nodePort bitmaps from the Services in etcd when it starts: a Service
// created afterwards never gets a number a restored one holds. revision is
// the storage's revision; later resourceVersions are above it and above
// every restored one. A restored object replaces one of the same key (the
// kubernetes Service). Storage is not written to; the change log is, so
// the controllers see every restored object (TakeChanges).
//
// A number the repair cannot take — outside the configured range, or held
// by two Services — is reported in the returned error (one line per
// problem, each naming the Service and the field), as the repair
// controller's events report it; the Service is restored all the same.
func (r *Registry) Restore(svcs []*corev1.Service, pods []*corev1.Pod, deps []*appsv1.Deployment, revision int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	maxRV := uint64(0)
	if revision > 0 {
		maxRV = uint64(revision)
	}
	seeRV := func(rv string) {
		if n, err := strconv.ParseUint(rv, 10, 64); err == nil && n > maxRV {
			maxRV = n
		}
	}
	for _, in := range svcs {
		svc := in.DeepCopy()
		svc.Namespace = nsOrDefault(svc.Namespace)
		k := objKey(svc.Namespace, svc.Name)
		if old, ok := r.services[k]; ok {
			r.releaseAll(old)
		}
		for i, ip := range clusterAddrs(svc) {
			if err := r.ips.Allocate(ip); err != nil {
				errs = append(errs, fmt.Errorf("service %q: spec.clusterIPs[%d]: %v cannot be restored: %w", svc.Name, i, ip, err))
			}
		}
		for i, p := range svc.Spec.Ports {
			if p.NodePort == 0 || firstWithNodePort(svc, p.NodePort) != i {
				continue
			}
			if err := r.ports.Allocate(int(p.NodePort)); err != nil {
				errs = append(errs, fmt.Errorf("service %q: spec.ports[%d].nodePort: %d cannot be restored: %w", svc.Name, i, p.NodePort, err))
			}
		}
		if needsHealthCheck(svc) && svc.Spec.HealthCheckNodePort != 0 {
			if err := r.ports.Allocate(int(svc.Spec.HealthCheckNodePort)); err != nil {
				errs = append(errs, fmt.Errorf("service %q: spec.healthCheckNodePort: %d cannot be restored: %w", svc.Name, svc.Spec.HealthCheckNodePort, err))
			}
		}
		r.services[k] = svc
		r.changed("Service", k)
		seeRV(svc.ResourceVersion)
	}
	for _, in := range pods {
		p := in.DeepCopy()
		p.Namespace = nsOrDefault(p.Namespace)
		k := objKey(p.Namespace, p.Name)
		r.pods[k] = p
		r.changed("Pod", k)
		seeRV(p.ResourceVersion)
	}
	for _, in := range deps {
		d := in.DeepCopy()
		d.Namespace = nsOrDefault(d.Namespace)
		k := objKey(d.Namespace, d.Name)
		r.deployments[k] = d
		r.changed("Deployment", k)
		seeRV(d.ResourceVersion)
	}
	if maxRV > r.rv {
		r.rv = maxRV
	}
	return errors.Join(errs...)
}

// firstWithNodePort is the index of the first port of svc with nodePort np
// (ports may share one: TCP and UDP on 30080).
func firstWithNodePort(svc *corev1.Service, np int32) int {
	for i, p := range svc.Spec.Ports {
		if p.NodePort == np {
			return i
		}
	}
	return -1
}
