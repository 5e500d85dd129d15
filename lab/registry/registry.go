package registry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nplab/nplab/lab/ipalloc"
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
	// Now is the clock for creationTimestamp; nil means time.Now.
	Now func() time.Time
	// ErrorValues chooses how complex values (structs, maps, slices) are
	// printed inside field errors. The zero value, GoSyntaxValues, is what
	// the spec quotes (map[string]string{"app":"x"}); JSONValues is what
	// apimachinery >= v1.28 prints ({"app":"x"}).
	ErrorValues ValueStyle
}

// Registry is the emulated kube-apiserver storage for Services, Pods and
// Deployments: defaulting, allocation, validation, in Kubernetes' order and
// with its error text. Errors are *k8s.io/apimachinery/pkg/api/errors.StatusError
// exactly as kube-apiserver would return them. Returned objects are copies.
// A Registry is safe for concurrent use.
type Registry struct {
	mu    sync.Mutex
	cfg   Config
	now   func() time.Time
	rng   *rand.Rand
	ports *portalloc.Allocator
	ips   *ipalloc.Allocator
	rv    uint64

	services    map[string]*corev1.Service
	pods        map[string]*corev1.Pod
	deployments map[string]*appsv1.Deployment

	// changes are the Pods and Services written since TakeChanges.
	changes changeLog
	storage Storage // nil: in memory only (storage.go)
}

// Group resources and kinds as kube-apiserver names them in errors.
var (
	servicesResource    = schema.GroupResource{Resource: "services"}
	podsResource        = schema.GroupResource{Resource: "pods"}
	deploymentsResource = schema.GroupResource{Group: "apps", Resource: "deployments"}
	serviceKind         = schema.GroupKind{Kind: "Service"}
	podKind             = schema.GroupKind{Kind: "Pod"}
	deploymentKind      = schema.GroupKind{Group: "apps", Kind: "Deployment"}
)

// New builds an empty control plane with the one Service every cluster has:
// default/kubernetes on the first address of the service CIDR (10.96.0.1 by
// default), see EnsureKubernetesService. User Services never get that
// address, and a user cannot create another "kubernetes".
func New(cfg Config) (*Registry, error) {
	if cfg.NodePortRange.Size == 0 {
		cfg.NodePortRange = portalloc.DefaultRange
	}
	if cfg.NodePortRange.Base < 0 || cfg.NodePortRange.Size < 0 || cfg.NodePortRange.Base+cfg.NodePortRange.Size-1 > 65535 {
		return nil, fmt.Errorf("invalid node port range %d+%d", cfg.NodePortRange.Base, cfg.NodePortRange.Size)
	}
	if !cfg.ServiceCIDR.IsValid() {
		cfg.ServiceCIDR = ipalloc.DefaultCIDR
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seed := cfg.Rand
	if seed == nil {
		seed = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	// Each allocator gets its own stream derived from the seed, so results
	// stay deterministic under an injected Rand.
	portRng := rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
	ipRng := rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
	ips, err := ipalloc.New(cfg.ServiceCIDR, ipRng)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:         cfg,
		now:         cfg.Now,
		rng:         rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64())),
		ports:       portalloc.New(cfg.NodePortRange, portRng),
		ips:         ips,
		services:    map[string]*corev1.Service{},
		pods:        map[string]*corev1.Pod{},
		deployments: map[string]*appsv1.Deployment{},
	}
	if err := r.EnsureKubernetesService(); err != nil {
		return nil, err
	}
	return r, nil
}

// NodePortRange is the configured --service-node-port-range.
func (r *Registry) NodePortRange() portalloc.Range { return r.cfg.NodePortRange }

// ServiceCIDR is the configured --service-cluster-ip-range.
func (r *Registry) ServiceCIDR() netip.Prefix { return r.ips.CIDR() }

// NodePortsUsed is the number of nodePorts (and healthCheckNodePorts)
// currently allocated.
func (r *Registry) NodePortsUsed() int { return r.ports.Used() }

// NodePortAllocated reports whether port is allocated in the cluster bitmap.
func (r *Registry) NodePortAllocated(port int) bool { return r.ports.Has(port) }

// ClusterIPAllocated reports whether ip is allocated (10.96.0.1 always is).
func (r *Registry) ClusterIPAllocated(ip netip.Addr) bool { return r.ips.Has(ip) }

func objKey(namespace, name string) string { return namespace + "/" + name }

// nextRV returns the next resourceVersion (a cluster-wide counter, like etcd's revision).
func (r *Registry) nextRV() string {
	r.rv++
	return strconv.FormatUint(r.rv, 10)
}

// newUID returns a random version-4 UUID from the registry's Rand.
func (r *Registry) newUID() types.UID {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// generateName is names.SimpleNameGenerator: prefix + 5 random characters.
func (r *Registry) generateName(prefix string) string {
	const alphanums = "bcdfghjklmnpqrstvwxz2456789"
	const maxNameLength, randomLength = 63, 5
	if len(prefix) > maxNameLength-randomLength {
		prefix = prefix[:maxNameLength-randomLength]
	}
	b := make([]byte, randomLength)
	for i := range b {
		b[i] = alphanums[r.rng.IntN(len(alphanums))]
	}
	return prefix + string(b)
}

// beginCreateMeta is the "init metadata as early as possible" step of the
// generic store's Create: default namespace, generated name, cleared system
// fields (they are set on success by finishCreateMeta).
func (r *Registry) beginCreateMeta(m *metav1.ObjectMeta) {
	if m.Namespace == "" {
		m.Namespace = metav1.NamespaceDefault
	}
	if m.Name == "" && m.GenerateName != "" {
		m.Name = r.generateName(m.GenerateName)
	}
	m.UID = ""
	m.ResourceVersion = ""
	m.CreationTimestamp = metav1.Time{}
	m.DeletionTimestamp = nil
	m.DeletionGracePeriodSeconds = nil
	m.Generation = 0
}

func (r *Registry) finishCreateMeta(m *metav1.ObjectMeta) {
	m.UID = r.newUID()
	m.CreationTimestamp = metav1.NewTime(r.now().Truncate(time.Second))
	m.ResourceVersion = r.nextRV()
}

// beginUpdateMeta is rest.BeforeUpdate's metadata part: system fields the
// client left out come from the stored object.
func beginUpdateMeta(m, old *metav1.ObjectMeta) {
	if m.Namespace == "" {
		m.Namespace = metav1.NamespaceDefault
	}
	if m.UID == "" {
		m.UID = old.UID
	}
	m.CreationTimestamp = old.CreationTimestamp
	m.DeletionTimestamp = old.DeletionTimestamp
	m.DeletionGracePeriodSeconds = old.DeletionGracePeriodSeconds
	m.Generation = old.Generation
	m.ResourceVersion = old.ResourceVersion
}

// checkRV is the optimistic-concurrency check of an update: a client that
// sends a resourceVersion must send the current one.
func checkRV(gr schema.GroupResource, name, sent, current string) error {
	if sent != "" && sent != current {
		return apierrors.NewConflict(gr, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	return nil
}

// alreadyExists is the storage layer's answer to a create of an existing
// key; like the generic store it prefixes "object is being deleted: " when
// the existing object has a deletionTimestamp.
func alreadyExists(gr schema.GroupResource, name string, existing *metav1.ObjectMeta) error {
	err := apierrors.NewAlreadyExists(gr, name)
	if existing.DeletionTimestamp != nil {
		err.ErrStatus.Message = "object is being deleted: " + err.ErrStatus.Message
	}
	return err
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ListServices returns every Service, sorted by namespace/name.
func (r *Registry) ListServices() []*corev1.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*corev1.Service, 0, len(r.services))
	for _, k := range sortedKeys(r.services) {
		out = append(out, r.services[k].DeepCopy())
	}
	return out
}

// GetService returns a copy of a Service.
func (r *Registry) GetService(namespace, name string) (*corev1.Service, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.services[objKey(nsOrDefault(namespace), name)]
	if !ok {
		return nil, false
	}
	return s.DeepCopy(), true
}

// ListPods returns every Pod, sorted by namespace/name.
func (r *Registry) ListPods() []*corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(r.pods))
	for _, k := range sortedKeys(r.pods) {
		out = append(out, r.pods[k].DeepCopy())
	}
	return out
}

// GetPod returns a copy of a Pod.
func (r *Registry) GetPod(namespace, name string) (*corev1.Pod, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pods[objKey(nsOrDefault(namespace), name)]
	if !ok {
		return nil, false
	}
	return p.DeepCopy(), true
}

// ListDeployments returns every Deployment, sorted by namespace/name.
func (r *Registry) ListDeployments() []*appsv1.Deployment {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*appsv1.Deployment, 0, len(r.deployments))
	for _, k := range sortedKeys(r.deployments) {
		out = append(out, r.deployments[k].DeepCopy())
	}
	return out
}

// GetDeployment returns a copy of a Deployment.
func (r *Registry) GetDeployment(namespace, name string) (*appsv1.Deployment, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.deployments[objKey(nsOrDefault(namespace), name)]
	if !ok {
		return nil, false
	}
	return d.DeepCopy(), true
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return metav1.NamespaceDefault
	}
	return ns
}

// unknownStatus is how kube-apiserver reports a plain (non-status) error
// from storage: 500, reason Unknown, the error text as message.
func unknownStatus(msg string) metav1.Status {
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Code:     500,
		Reason:   metav1.StatusReasonUnknown,
		Message:  msg,
	}
}
