package registry

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// CreateService is POST /api/v1/namespaces/{ns}/services, in kube-apiserver's
// order (spec §2.0): v1 defaults → allocation (clusterIP, nodePorts,
// healthCheckNodePort; the first allocation error is returned at once) →
// clear status → full validation → store (AlreadyExists last). A failure
// after allocation releases everything this request reserved.
func (r *Registry) CreateService(in *corev1.Service) (*corev1.Service, error) {
	return r.createService(in, false)
}

// DryRunCreateService is CreateService with ?dryRun=All: every step runs,
// the clusterIP and nodePorts are picked and returned, but what was
// reserved is released and nothing is stored, so a dry run allocates
// nothing (the upstream e2e "a server dry-run never allocates a nodePort").
func (r *Registry) DryRunCreateService(in *corev1.Service) (*corev1.Service, error) {
	return r.createService(in, true)
}

func (r *Registry) createService(in *corev1.Service, dryRun bool) (*corev1.Service, error) {
	if in == nil {
		return nil, apierrors.NewBadRequest("no Service given")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	svc := in.DeepCopy()
	r.beginCreateMeta(&svc.ObjectMeta)
	SetServiceDefaults(svc)
	normalizeClusterIPs(svc, nil)
	t, err := r.allocateCreate(svc)
	if err != nil {
		return nil, err
	}
	svc.Status = corev1.ServiceStatus{}
	if errs := r.validateService(svc); len(errs) > 0 {
		t.revert()
		return nil, apierrors.NewInvalid(serviceKind, svc.Name, errs)
	}
	k := objKey(svc.Namespace, svc.Name)
	if old, ok := r.services[k]; ok {
		t.revert()
		return nil, alreadyExists(servicesResource, svc.Name, &old.ObjectMeta)
	}
	if dryRun {
		t.revert()
		svc.UID = r.newUID()
		svc.CreationTimestamp = metav1.NewTime(r.now().Truncate(time.Second))
		return svc, nil
	}
	t.commit()
	r.finishCreateMeta(&svc.ObjectMeta)
	r.services[k] = svc
	r.changed("Service", k)
	r.persist(serviceKey(k), svc)
	return svc.DeepCopy(), nil
}

// UpdateService is PUT of a whole Service (spec §2.0 update path, §4):
// resourceVersion check → v1 defaults → fill in allocated values the client
// left out (a nodePort is matched by port name) → allocate/reserve new
// numbers → drop fields a type change made moot → validate → commit (old
// numbers released only now). A failed update changes nothing. An update
// that changes nothing keeps the resourceVersion.
func (r *Registry) UpdateService(in *corev1.Service) (*corev1.Service, error) {
	return r.updateService(in, false)
}

// DryRunUpdateService is UpdateService with ?dryRun=All: it returns what
// the update would store and changes nothing (new numbers are released).
func (r *Registry) DryRunUpdateService(in *corev1.Service) (*corev1.Service, error) {
	return r.updateService(in, true)
}

func (r *Registry) updateService(in *corev1.Service, dryRun bool) (*corev1.Service, error) {
	if in == nil {
		return nil, apierrors.NewBadRequest("no Service given")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	svc := in.DeepCopy()
	if svc.Namespace == "" {
		svc.Namespace = metav1.NamespaceDefault
	}
	k := objKey(svc.Namespace, svc.Name)
	old, ok := r.services[k]
	if !ok {
		return nil, apierrors.NewNotFound(servicesResource, svc.Name)
	}
	if err := checkRV(servicesResource, svc.Name, svc.ResourceVersion, old.ResourceVersion); err != nil {
		return nil, err
	}
	SetServiceDefaults(svc)
	patchAllocatedValues(svc, old)
	normalizeClusterIPs(svc, old)
	t, err := r.allocateUpdate(svc, old)
	if err != nil {
		return nil, err
	}
	beginUpdateMeta(&svc.ObjectMeta, &old.ObjectMeta)
	svc.Status = old.Status
	dropTypeDependentFields(svc, old)
	if errs := r.validateServiceUpdate(svc, old); len(errs) > 0 {
		t.revert()
		return nil, apierrors.NewInvalid(serviceKind, svc.Name, errs)
	}
	if dryRun {
		t.revert()
		return svc, nil
	}
	t.commit()
	if equality.Semantic.DeepEqual(svc, old) {
		return old.DeepCopy(), nil
	}
	svc.ResourceVersion = r.nextRV()
	r.services[k] = svc
	r.changed("Service", k)
	r.persist(serviceKey(k), svc)
	return svc.DeepCopy(), nil
}

// DeleteService removes a Service and releases its clusterIP, nodePorts and
// healthCheckNodePort synchronously: the numbers are reusable at once.
func (r *Registry) DeleteService(namespace, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := objKey(nsOrDefault(namespace), name)
	svc, ok := r.services[k]
	if !ok {
		return apierrors.NewNotFound(servicesResource, name)
	}
	delete(r.services, k)
	r.changed("Service", k)
	r.unpersist(serviceKey(k))
	r.releaseAll(svc)
	return nil
}

// KubernetesServiceName is the Service kube-apiserver's bootstrap controller
// keeps in namespace default.
const KubernetesServiceName = "kubernetes"

// EnsureKubernetesService creates default/kubernetes if it is missing, as
// kube-apiserver's bootstrap controller does at start and after a delete:
// ClusterIP on the first address of the service CIDR, port "https"
// 443/TCP → 6443, no selector (its endpoints are the API server's own
// address, which nplab does not have), labels component=apiserver and
// provider=kubernetes.
func (r *Registry) EnsureKubernetesService() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := objKey(metav1.NamespaceDefault, KubernetesServiceName)
	if _, ok := r.services[k]; ok {
		return nil
	}
	ip := r.ips.First()
	if err := r.ips.Allocate(ip); err != nil {
		return fmt.Errorf("reserving %v for the kubernetes service: %w", ip, err)
	}
	policy := corev1.IPFamilyPolicySingleStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      KubernetesServiceName,
			Namespace: metav1.NamespaceDefault,
			Labels:    map[string]string{"component": "apiserver", "provider": "kubernetes"},
		},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeClusterIP,
			ClusterIP:      ip.String(),
			ClusterIPs:     []string{ip.String()},
			IPFamilies:     []corev1.IPFamily{r.clusterFamily()},
			IPFamilyPolicy: &policy,
			Ports: []corev1.ServicePort{{
				Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(6443),
			}},
		},
	}
	SetServiceDefaults(svc)
	r.finishCreateMeta(&svc.ObjectMeta)
	r.services[k] = svc
	r.changed("Service", k)
	r.persist(serviceKey(k), svc)
	return nil
}
