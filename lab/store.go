package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/lab/registry"
	"github.com/nplab/nplab/lab/store"
)

// This file makes a lab persistent (Config.StateDir): every object the API
// server stores is written to a store on disk (package lab/store) under
// etcd's keys, and a lab built with Config.Resume comes back from it with
// the same objects — the same nodePorts, clusterIPs, pod names and pod
// IPs — as a cluster whose control plane restarted finds its objects in
// etcd.

// The keys nplab keeps beside the objects: the lab's shape (nodes, ranges,
// proxy mode) and kubectl's last-applied manifest of each object (kubectl
// keeps that in an annotation; nplab in a map).
const (
	configKey      = "/nplab/config"
	lastAppliedKey = "/nplab/last-applied/"
)

// ErrNothingToResume is wrapped by what New and Start return for
// Config.Resume when Config.StateDir holds no stored lab.
var ErrNothingToResume = errors.New("no stored lab to resume")

// storedConfig is the lab's shape as stored: a resumed lab must have the
// same nodes and ranges, or its nodePorts, clusterIPs and pod IPs would
// not fit.
type storedConfig struct {
	Name          string          `json:"name"`
	Nodes         int             `json:"nodes"`
	NodePortRange string          `json:"nodePortRange"`
	ServiceCIDR   string          `json:"serviceCIDR,omitempty"`
	ProxyMode     plane.ProxyMode `json:"proxyMode,omitempty"`
}

// persister is the registry's Storage for a persistent lab. A write is
// appended to the store's log at once, under the lab's lock (a write to
// the page cache: it survives the process being killed); a flusher
// goroutine fsyncs, outside every lock, for all the writes made since its
// last fsync (etcd's group commit); and a public call (Apply, Delete,
// Scale, ...) returns only once the writes it made are on disk (wait, from
// drain). The controllers' and the data plane's writes are on disk one
// fsync later.
type persister struct {
	l  *Lab
	st *store.Store

	mu      sync.Mutex
	cond    *sync.Cond
	failed  bool   // a write failed; warned once until one succeeds
	written uint64 // writes made
	synced  uint64 // writes the flusher has fsynced (or tried to)
	stopped bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newPersister(l *Lab, st *store.Store) *persister {
	p := &persister{l: l, st: st, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.flush()
	return p
}

// wrote counts a write and wakes the flusher.
func (p *persister) wrote() {
	p.mu.Lock()
	p.written++
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// flush is the flusher goroutine: one fsync for every write made before
// it started.
func (p *persister) flush() {
	defer close(p.done)
	for {
		select {
		case <-p.kick:
		case <-p.stop:
			return
		}
		p.mu.Lock()
		target := p.written
		p.mu.Unlock()
		err := p.st.Sync()
		p.mu.Lock()
		if target > p.synced {
			p.synced = target
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		if err != nil {
			// Not under l.mu here; no one holding it waits for the
			// flusher (wait and close are called without it).
			if msg := p.failure("sync", err); msg != "" {
				p.l.record(Event{Type: EventWarning, Object: "lab/" + p.l.name, Message: msg})
			}
		}
	}
}

// wait returns once every write made before it is on disk (or the fsync
// failed, which is warned about).
func (p *persister) wait() {
	p.mu.Lock()
	target := p.written
	for p.synced < target && !p.stopped {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// close stops the flusher; the store's Close fsyncs what is left.
func (p *persister) close() error {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return p.st.Close()
}

// saved is what a store held when the lab was built.
type saved struct {
	svcs    []*corev1.Service
	pods    []*corev1.Pod
	deps    []*appsv1.Deployment
	applied map[string]string
	rev     int64
}

// openState opens cfg.StateDir's store. With cfg.Resume it reads the
// stored lab and fills cfg from its stored shape (a field set in cfg that
// differs is an error naming the flag); without, it empties the store.
func openState(cfg *Config) (*store.Store, *saved, error) {
	if cfg.StateDir == "" {
		if cfg.Resume {
			return nil, nil, fmt.Errorf("lab %q: resume needs a state directory (Config.StateDir)", cfg.Name)
		}
		return nil, nil, nil
	}
	if cfg.Resume && !store.Exists(cfg.StateDir) {
		return nil, nil, fmt.Errorf("lab %q: %w in %s", cfg.Name, ErrNothingToResume, cfg.StateDir)
	}
	st, err := store.Open(cfg.StateDir, store.Options{Deferred: true})
	if err != nil {
		return nil, nil, fmt.Errorf("lab %q: %w", cfg.Name, err)
	}
	if !cfg.Resume {
		if err := st.Reset(); err != nil {
			st.Close()
			return nil, nil, fmt.Errorf("lab %q: %w", cfg.Name, err)
		}
		return st, nil, nil
	}
	sv, err := load(st, cfg)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("lab %q: resuming from %s: %w", cfg.Name, cfg.StateDir, err)
	}
	return st, sv, nil
}

// load reads a stored lab and fills cfg from its shape.
func load(st *store.Store, cfg *Config) (*saved, error) {
	raw, ok := st.Get(configKey)
	if !ok {
		return nil, fmt.Errorf("%w: the store has no %s", ErrNothingToResume, configKey)
	}
	var sc storedConfig
	if err := json.Unmarshal(raw, &sc); err != nil {
		return nil, fmt.Errorf("%s: %w", configKey, err)
	}
	differs := func(flag string, given, stored any) error {
		return fmt.Errorf("it was made with --%s %v, not %v: resume it as it was, or start it afresh", flag, stored, given)
	}
	if cfg.Nodes != 0 && cfg.Nodes != sc.Nodes {
		return nil, differs("nodes", cfg.Nodes, sc.Nodes)
	}
	if cfg.NodePortRange != "" && cfg.NodePortRange != sc.NodePortRange {
		return nil, differs("service-node-port-range", cfg.NodePortRange, sc.NodePortRange)
	}
	if cfg.ServiceCIDR != "" && cfg.ServiceCIDR != sc.ServiceCIDR {
		return nil, differs("service-cluster-ip-range", cfg.ServiceCIDR, sc.ServiceCIDR)
	}
	cfg.Nodes, cfg.NodePortRange, cfg.ServiceCIDR = sc.Nodes, sc.NodePortRange, sc.ServiceCIDR
	if cfg.ProxyMode == "" {
		cfg.ProxyMode = sc.ProxyMode
	}

	sv := &saved{applied: map[string]string{}, rev: st.Revision()}
	for _, kv := range st.List(registry.ServicesPrefix) {
		o := &corev1.Service{}
		if err := decodeStored(kv, o); err != nil {
			return nil, err
		}
		sv.svcs = append(sv.svcs, o)
	}
	for _, kv := range st.List(registry.PodsPrefix) {
		o := &corev1.Pod{}
		if err := decodeStored(kv, o); err != nil {
			return nil, err
		}
		sv.pods = append(sv.pods, o)
	}
	for _, kv := range st.List(registry.DeploymentsPrefix) {
		o := &appsv1.Deployment{}
		if err := decodeStored(kv, o); err != nil {
			return nil, err
		}
		sv.deps = append(sv.deps, o)
	}
	for _, kv := range st.List(lastAppliedKey) {
		sv.applied[strings.TrimPrefix(kv.Key, lastAppliedKey)] = string(kv.Value)
	}
	return sv, nil
}

// decodeStored decodes one stored object and checks that its key names it.
func decodeStored(kv store.KV, into runtime.Object) error {
	if err := json.Unmarshal(kv.Value, into); err != nil {
		return fmt.Errorf("stored object %s: %w", kv.Key, err)
	}
	m := objectMeta(into)
	if !strings.HasSuffix(kv.Key, "/"+nsOr(m.Namespace)+"/"+m.Name) {
		return fmt.Errorf("stored object %s: it is %s/%s", kv.Key, m.Namespace, m.Name)
	}
	return nil
}

func nsOr(ns string) string {
	if ns == "" {
		return Namespace
	}
	return ns
}

// persistTo makes the lab persistent once it is built: a resumed lab
// gets its objects back (see restore), a fresh one stores its shape and
// its first objects (default/kubernetes); from then on every write of the
// API server goes to the store.
func (l *Lab) persistTo(st *store.Store, sv *saved, cfg Config) error {
	p := newPersister(l, st)
	sc := storedConfig{Name: cfg.Name, Nodes: len(l.topo.Nodes), NodePortRange: l.reg.NodePortRange().String(), ProxyMode: cfg.ProxyMode}
	if cfg.ServiceCIDR != "" {
		sc.ServiceCIDR = l.topo.ServiceCIDR.String()
	}
	b, _ := json.Marshal(sc)
	_, err := st.Put(configKey, b)
	if err == nil {
		err = st.Sync()
	}
	if err != nil {
		p.close()
		return fmt.Errorf("lab %q: %w", l.name, err)
	}
	l.mu.Lock()
	l.persist = p
	if sv == nil {
		l.reg.SetStorage(p)
		for _, svc := range l.reg.ListServices() {
			p.Put(registry.ServicesPrefix+Namespace+"/"+svc.Name, svc)
		}
		l.mu.Unlock()
		return nil
	}
	if n := st.Torn(); n > 0 {
		l.emit(EventWarning, "lab/"+l.name, "the stored lab's last write was cut short (a crash during a write): its %d bytes were dropped, every write before it is restored", n)
	}
	l.restore(sv, p)
	l.mu.Unlock()
	l.drain()
	return nil
}

// restore brings a stored lab back; l.mu is held. As after a control
// plane restart: the objects come back as they were stored (kube-apiserver
// reads etcd), the clusterIP and nodePort allocators are rebuilt from the
// Services (its repair controllers), the scheduler's cache and the pod
// network's IPAM from the pods' nodes and IPs, and the endpoints are
// computed again (the endpoints controllers). Then, as after a node
// reboot, the kubelet starts each pod again on its node with the IP it
// had: not ready until its readiness probe passes, its restartCount one
// higher. A pod that was terminating finishes its deletion (its app is
// gone); a Pending one waits for a node again; each Deployment is synced,
// so a missing replica is made.
func (l *Lab) restore(sv *saved, p *persister) {
	if err := l.reg.Restore(sv.svcs, sv.pods, sv.deps, sv.rev); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			l.emit(EventFailed, "lab/"+l.name, "repairing the allocators: %s", line)
		}
	}
	// From here on every change is written to the store again.
	l.reg.SetStorage(p)
	for k, v := range sv.applied {
		l.lastApplied[k] = v
	}
	for _, svc := range l.reg.ListServices() {
		ref := "service/" + svc.Name
		l.emit(EventApplied, ref, "%s restored", ref)
		if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
			l.alloc(ref, "ClusterIP", ip, "", false)
		}
		for _, np := range nodePorts(svc) {
			port, detail, _ := strings.Cut(np, " ")
			l.alloc(ref, "NodePort", port, detail, false)
		}
	}
	for _, d := range l.reg.ListDeployments() {
		l.emit(EventApplied, "deployment.apps/"+d.Name, "deployment.apps/%s restored", d.Name)
		l.enqueueDeployment(d.Name)
	}
	pods := l.reg.ListPods()
	// Pending pods queue in the order they were created.
	sort.SliceStable(pods, func(i, j int) bool {
		return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp)
	})
	for _, pod := range pods {
		l.restorePod(pod)
	}
	l.schedulePending()
	l.afterChange()
}

// restorePod brings one stored pod back; l.mu is held.
func (l *Lab) restorePod(pod *corev1.Pod) {
	ref := "pod/" + pod.Name
	node := -1
	if pod.Spec.NodeName != "" {
		node = l.nodeIndex(pod.Spec.NodeName)
	}
	gone := func(why string) {
		_ = l.reg.DeletePod(Namespace, pod.Name)
		l.emit(EventPodDeleted, ref, "pod deleted: %s", why)
		if owner := ownerDeploymentName(pod); owner != "" {
			l.enqueueDeployment(owner)
		}
	}
	switch {
	case pod.DeletionTimestamp != nil:
		gone("it was terminating when the lab stopped")
		return
	case pod.Spec.NodeName == "":
		l.emit(EventApplied, ref, "%s restored, Pending: no node could take it", ref)
		l.addPending(pod.Name)
		return
	case node < 0:
		gone(fmt.Sprintf("its node %s is not in the lab", pod.Spec.NodeName))
		return
	}
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil || !l.topo.Nodes[node].PodCIDR.Contains(ip) || l.ipOwner[ip] != "" {
		// Bound, without an address it can have: as bind leaves it.
		l.podBound(pod.Name, node)
		l.emit(EventFailed, ref, "restored on %s without a pod IP (stored %q)", pod.Spec.NodeName, pod.Status.PodIP)
		return
	}
	l.ipOwner[ip] = pod.Name
	l.podIPs[pod.Name] = ip
	l.podBound(pod.Name, node)
	if l.dp == nil {
		l.emit(EventApplied, ref, "%s restored on %s, IP %s", ref, pod.Spec.NodeName, ip)
		return
	}
	now := metav1.NewTime(l.now())
	out, err := l.reg.UpdatePodStatus(Namespace, pod.Name, func(p *corev1.Pod) {
		for i := range p.Status.Conditions {
			c := &p.Status.Conditions[i]
			if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status != corev1.ConditionFalse {
				c.Status, c.LastTransitionTime = corev1.ConditionFalse, now
			}
		}
		for i := range p.Status.ContainerStatuses {
			cs := &p.Status.ContainerStatuses[i]
			cs.Ready = false
			cs.RestartCount++
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}
		}
	})
	if err != nil {
		l.emit(EventFailed, ref, "restoring: %v", err)
		return
	}
	l.emit(EventApplied, ref, "%s restored on %s, IP %s; starting it again", ref, pod.Spec.NodeName, ip)
	nodeName := pod.Spec.NodeName
	l.enqueue(func(dp plane.DataPlane) {
		if err := dp.StartPod(l.ctx, nodeName, out, ip); err != nil {
			l.record(Event{Type: EventFailed, Object: ref, Message: fmt.Sprintf("starting pod on %s: %v", nodeName, err)})
		}
	})
}

// Put writes one object under its etcd key, with its apiVersion and kind
// as etcd holds them.
func (p *persister) Put(key string, obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Service:
		o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
	case *corev1.Pod:
		o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	case *appsv1.Deployment:
		o.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	}
	b, err := json.Marshal(obj)
	if err == nil {
		_, err = p.st.Put(key, b)
	}
	p.result(key, err)
}

// Delete removes one object's key.
func (p *persister) Delete(key string) { p.result(key, p.st.Delete(key)) }

// result counts a write, or reports the first failure of a run of failed
// writes as a Warning event (the lab goes on in memory: a full disk must
// not stop a class). Every write comes from the registry or
// persistApplied, whose callers hold l.mu: the Warning is emitted in
// line, in order with the change that was not saved.
func (p *persister) result(key string, err error) {
	if msg := p.failure(key, err); msg != "" {
		p.l.emit(EventWarning, "lab/"+p.l.name, "%s", msg)
	}
}

// failure counts a write and returns the Warning's message for the first
// failure of a run of failed writes ("" otherwise).
func (p *persister) failure(key string, err error) string {
	if err == nil {
		p.wrote()
	}
	p.mu.Lock()
	warn := err != nil && !p.failed
	p.failed = err != nil
	p.mu.Unlock()
	if !warn {
		return ""
	}
	return fmt.Sprintf("the lab's objects are no longer saved (%s): %v", key, err)
}

// persistApplied writes (or, when it is gone, deletes) kubectl's
// last-applied manifest of ref; l.mu is held.
func (l *Lab) persistApplied(ref string) {
	if l.persist == nil {
		return
	}
	key := lastAppliedKey + ref
	if v, ok := l.lastApplied[ref]; ok {
		_, err := l.persist.st.Put(key, []byte(v))
		l.persist.result(key, err)
		return
	}
	l.persist.Delete(key)
}

// closeState stops writing to the store and closes it; the objects stay
// on disk for a resume. Close calls it before the data plane stops the
// pods: a lab's teardown is not written, as a cluster's etcd keeps its
// pods when its machines shut down.
func (l *Lab) closeState() error {
	l.mu.Lock()
	p := l.persist
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	l.reg.SetStorage(nil)
	return p.close()
}

// flushStore waits until the writes made so far are on disk; drain calls
// it, so a public call returns with its objects stored.
func (l *Lab) flushStore() {
	l.mu.Lock()
	p := l.persist
	l.mu.Unlock()
	if p != nil {
		p.wait()
	}
}

// StateDir is the directory the lab keeps its objects in ("" when it is
// not persistent).
func (l *Lab) StateDir() string {
	if l.persist == nil {
		return ""
	}
	return l.persist.st.Dir()
}

// StateDir is where a lab named name keeps its objects when it is
// persistent: /var/lib/nplab/<name> as root, else
// $XDG_STATE_HOME/nplab/<name> (~/.local/state/nplab/<name>).
func StateDir(name string) (string, error) { return store.Dir(name) }

// HasStoredLab reports whether dir holds a lab that can be resumed.
func HasStoredLab(dir string) bool { return store.Exists(dir) }

// StoredLabs lists the labs whose objects are stored where this user's
// labs keep them (see StateDir), running or not, sorted by name.
func StoredLabs() ([]string, error) {
	probe, err := store.Dir("x")
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Dir(probe))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && store.Exists(filepath.Join(filepath.Dir(probe), e.Name())) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// RemoveStoredLab deletes the stored lab in dir (`nplab up --fresh`).
func RemoveStoredLab(dir string) error { return store.Remove(dir) }
