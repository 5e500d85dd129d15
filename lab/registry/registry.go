package registry

import (
	"errors"
	"math/rand/v2"
	"net/netip"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/portalloc"
)

// Config configures the emulated API server.
type Config struct {
	// NodePortRange is --service-node-port-range; zero means 30000-32767.
	NodePortRange portalloc.Range
	// ServiceCIDR is --service-cluster-ip-range; invalid means 10.96.0.0/12.
	ServiceCIDR netip.Prefix
	// Rand drives random allocation; nil means randomly seeded.
	Rand *rand.Rand
}

// Registry is the emulated kube-apiserver storage for Services, Pods and
// Deployments: defaulting, allocation, validation, in Kubernetes' order and
// with its error text. Errors are *k8s.io/apimachinery/pkg/api/errors.StatusError
// exactly as kube-apiserver would return them. Returned objects are copies.
type Registry struct{}

func New(cfg Config) (*Registry, error) { return &Registry{}, nil }

func (r *Registry) NodePortRange() portalloc.Range { return portalloc.Range{} }
func (r *Registry) ServiceCIDR() netip.Prefix      { return netip.Prefix{} }

func (r *Registry) CreateService(svc *corev1.Service) (*corev1.Service, error) {
	return nil, errors.New("TODO")
}
func (r *Registry) UpdateService(svc *corev1.Service) (*corev1.Service, error) {
	return nil, errors.New("TODO")
}
func (r *Registry) DeleteService(namespace, name string) error { return errors.New("TODO") }
func (r *Registry) GetService(namespace, name string) (*corev1.Service, bool) {
	return nil, false
}
func (r *Registry) ListServices() []*corev1.Service { return nil }

func (r *Registry) CreatePod(pod *corev1.Pod) (*corev1.Pod, error) { return nil, errors.New("TODO") }
func (r *Registry) UpdatePod(pod *corev1.Pod) (*corev1.Pod, error) { return nil, errors.New("TODO") }
func (r *Registry) UpdatePodStatus(namespace, name string, mutate func(*corev1.Pod)) (*corev1.Pod, error) {
	return nil, errors.New("TODO")
}
func (r *Registry) DeletePod(namespace, name string) error            { return errors.New("TODO") }
func (r *Registry) GetPod(namespace, name string) (*corev1.Pod, bool) { return nil, false }
func (r *Registry) ListPods() []*corev1.Pod                           { return nil }

func (r *Registry) CreateDeployment(d *appsv1.Deployment) (*appsv1.Deployment, error) {
	return nil, errors.New("TODO")
}
func (r *Registry) UpdateDeployment(d *appsv1.Deployment) (*appsv1.Deployment, error) {
	return nil, errors.New("TODO")
}
func (r *Registry) DeleteDeployment(namespace, name string) error { return errors.New("TODO") }
func (r *Registry) GetDeployment(namespace, name string) (*appsv1.Deployment, bool) {
	return nil, false
}
func (r *Registry) ListDeployments() []*appsv1.Deployment { return nil }
