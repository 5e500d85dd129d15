package apiserver

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/kubectl"
)

// resource is one REST resource the endpoint serves.
type resource struct {
	group, version string
	name, singular string // "services", "service"
	kind           string // "Service"
	namespaced     bool
	short          []string
	// labKind is the kind lab.Create and friends take; "" means read-only
	// (the controllers own it).
	labKind string
	newObj  func() runtime.Object
	list    func(s *Server) []runtime.Object
	// columns and row make the server-side table; nil means NAME and AGE.
	columns []metav1.TableColumnDefinition
	row     func(o runtime.Object, now time.Time) []any
	// scale: the deployments' scale subresource.
	scale bool
	// categories: "all" for what `kubectl get all` lists, as on a cluster.
	categories []string
}

func (r *resource) groupVersion() string {
	if r.group == "" {
		return r.version
	}
	return r.group + "/" + r.version
}

func (r *resource) verbs() metav1.Verbs {
	if r.labKind != "" {
		return metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"}
	}
	return metav1.Verbs{"get", "list", "watch"}
}

func cols(names ...string) []metav1.TableColumnDefinition {
	var out []metav1.TableColumnDefinition
	for i, n := range names {
		prio := int32(0)
		if strings.HasPrefix(n, "+") {
			n, prio = n[1:], 1
		}
		c := metav1.TableColumnDefinition{Name: n, Type: "string", Priority: prio}
		if i == 0 {
			c.Format = "name"
		}
		out = append(out, c)
	}
	return out
}

func wideCols(all []string, normal int) []metav1.TableColumnDefinition {
	names := append([]string(nil), all...)
	for i := normal; i < len(names); i++ {
		names[i] = "+" + names[i]
	}
	return cols(names...)
}

func anyRow(cells []string) []any {
	out := make([]any, len(cells))
	for i, c := range cells {
		out[i] = c
	}
	return out
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func typed[T runtime.Object](objs []T) []runtime.Object {
	out := make([]runtime.Object, len(objs))
	for i, o := range objs {
		out[i] = o
	}
	return out
}

// all is the category of `kubectl get all`.
var all = []string{"all"}

// resources are the resources served, in discovery order.
func resources() []*resource {
	return []*resource{
		{version: "v1", name: "namespaces", singular: "namespace", kind: "Namespace", short: []string{"ns"},
			newObj: func() runtime.Object { return &corev1.Namespace{} },
			list: func(s *Server) []runtime.Object {
				return []runtime.Object{&corev1.Namespace{
					ObjectMeta: metav1.ObjectMeta{Name: lab.Namespace, CreationTimestamp: s.started,
						Labels: map[string]string{"kubernetes.io/metadata.name": lab.Namespace}},
					Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
					Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
				}}
			},
			columns: cols("NAME", "STATUS", "AGE"),
			row: func(o runtime.Object, now time.Time) []any {
				n := o.(*corev1.Namespace)
				return []any{n.Name, string(n.Status.Phase), age(n.CreationTimestamp, now)}
			},
		},
		{version: "v1", name: "nodes", singular: "node", kind: "Node", short: []string{"no"},
			newObj: func() runtime.Object { return &corev1.Node{} },
			list:   func(s *Server) []runtime.Object { return s.nodes() },
			columns: wideCols([]string{"NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
				"OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"}, 5),
			row: func(o runtime.Object, now time.Time) []any {
				n := o.(*corev1.Node)
				status := "NotReady"
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						status = "Ready"
					}
				}
				ip := "<none>"
				for _, a := range n.Status.Addresses {
					if a.Type == corev1.NodeInternalIP {
						ip = a.Address
					}
				}
				i := n.Status.NodeInfo
				return []any{n.Name, status, "<none>", age(n.CreationTimestamp, now), i.KubeletVersion, ip, "<none>",
					i.OSImage, i.KernelVersion, i.ContainerRuntimeVersion}
			},
		},
		{version: "v1", name: "services", singular: "service", kind: "Service", namespaced: true, short: []string{"svc"}, categories: all,
			labKind: "Service",
			newObj:  func() runtime.Object { return &corev1.Service{} },
			list:    func(s *Server) []runtime.Object { return typed(s.lab.Services()) },
			columns: wideCols(kubectl.ServiceColumns, 6),
			row: func(o runtime.Object, now time.Time) []any {
				return anyRow(kubectl.ServiceRow(o.(*corev1.Service), now))
			},
		},
		{version: "v1", name: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: true, short: []string{"ep"},
			newObj:  func() runtime.Object { return &corev1.Endpoints{} },
			list:    func(s *Server) []runtime.Object { return typed(s.lab.Endpoints()) },
			columns: cols(kubectl.EndpointsColumns...),
			row: func(o runtime.Object, now time.Time) []any {
				return anyRow(kubectl.EndpointsRow(o.(*corev1.Endpoints), now))
			},
		},
		{version: "v1", name: "pods", singular: "pod", kind: "Pod", namespaced: true, short: []string{"po"}, categories: all,
			labKind: "Pod",
			newObj:  func() runtime.Object { return &corev1.Pod{} },
			list:    func(s *Server) []runtime.Object { return typed(s.lab.Pods()) },
			columns: wideCols(kubectl.PodColumns, 5),
			row: func(o runtime.Object, now time.Time) []any {
				return anyRow(kubectl.PodRow(o.(*corev1.Pod), now))
			},
		},
		{version: "v1", name: "events", singular: "event", kind: "Event", namespaced: true, short: []string{"ev"},
			newObj:  func() runtime.Object { return &corev1.Event{} },
			list:    func(s *Server) []runtime.Object { return s.events() },
			columns: cols("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
			row: func(o runtime.Object, now time.Time) []any {
				e := o.(*corev1.Event)
				obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
				return []any{age(e.LastTimestamp, now), e.Type, e.Reason, obj, e.Message}
			},
		},
		{group: "apps", version: "v1", name: "deployments", singular: "deployment", kind: "Deployment", namespaced: true, categories: all,
			short: []string{"deploy"}, labKind: "Deployment", scale: true,
			newObj:  func() runtime.Object { return &appsv1.Deployment{} },
			list:    func(s *Server) []runtime.Object { return typed(s.lab.Deployments()) },
			columns: wideCols([]string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"}, 5),
			row: func(o runtime.Object, now time.Time) []any {
				d := o.(*appsv1.Deployment)
				want := int32(1)
				if d.Spec.Replicas != nil {
					want = *d.Spec.Replicas
				}
				var names, images []string
				for _, c := range d.Spec.Template.Spec.Containers {
					names = append(names, c.Name)
					images = append(images, c.Image)
				}
				sel := "<none>"
				if d.Spec.Selector != nil {
					if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
						sel = s.String()
					}
				}
				return []any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want), int64(d.Status.UpdatedReplicas),
					int64(d.Status.AvailableReplicas), age(d.CreationTimestamp, now),
					strings.Join(names, ","), strings.Join(images, ","), sel}
			},
		},
		{group: "apps", version: "v1", name: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true,
			short: []string{"rs"}, categories: all,
			newObj:  func() runtime.Object { return &appsv1.ReplicaSet{} },
			list:    func(s *Server) []runtime.Object { return typed(s.lab.ReplicaSets()) },
			columns: wideCols([]string{"NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"}, 5),
			row: func(o runtime.Object, now time.Time) []any {
				rs := o.(*appsv1.ReplicaSet)
				var names, images []string
				for _, c := range rs.Spec.Template.Spec.Containers {
					names = append(names, c.Name)
					images = append(images, c.Image)
				}
				sel := "<none>"
				if s, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector); err == nil {
					sel = s.String()
				}
				return []any{rs.Name, int64(*rs.Spec.Replicas), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
					age(rs.CreationTimestamp, now), strings.Join(names, ","), strings.Join(images, ","), sel}
			},
		},
		{group: "discovery.k8s.io", version: "v1", name: "endpointslices", singular: "endpointslice", kind: "EndpointSlice",
			namespaced: true,
			newObj:     func() runtime.Object { return &discoveryv1.EndpointSlice{} },
			list: func(s *Server) []runtime.Object {
				var out []runtime.Object
				for _, svc := range s.lab.Services() {
					for _, sl := range s.lab.EndpointSlices(svc.Name) {
						out = append(out, &sl)
					}
				}
				return out
			},
			columns: cols("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"),
			row: func(o runtime.Object, now time.Time) []any {
				sl := o.(*discoveryv1.EndpointSlice)
				var ports, addrs []string
				for _, p := range sl.Ports {
					if p.Port != nil {
						ports = append(ports, fmt.Sprint(*p.Port))
					}
				}
				for _, e := range sl.Endpoints {
					addrs = append(addrs, e.Addresses...)
				}
				pc, ac := strings.Join(ports, ","), strings.Join(addrs, ",")
				if pc == "" {
					pc = "<unset>"
				}
				if ac == "" {
					ac = "<unset>"
				}
				return []any{sl.Name, string(sl.AddressType), pc, ac, age(sl.CreationTimestamp, now)}
			},
		},
	}
}

// nodes are the lab's nodes as the kubelets would register them: the
// InternalIP and Hostname addresses, the pod CIDR, Ready while the node's
// link is up.
func (s *Server) nodes() []runtime.Object {
	st := s.lab.State()
	var out []runtime.Object
	for _, n := range s.lab.Nodes() {
		ready := corev1.ConditionTrue
		if ns, ok := st.Node(n.Name); ok && !ns.LinkUp {
			ready = corev1.ConditionUnknown
		}
		out = append(out, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, CreationTimestamp: s.started, UID: "",
				Labels: map[string]string{"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux"}},
			Spec: corev1.NodeSpec{PodCIDR: n.PodCIDR.String(), PodCIDRs: []string{n.PodCIDR.String()}},
			Status: corev1.NodeStatus{
				Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeInternalIP, Address: n.IP.String()},
					{Type: corev1.NodeHostName, Address: n.Name},
				},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "KubeletReady",
					Message: "nplab node agent is ready", LastTransitionTime: s.started, LastHeartbeatTime: s.started}},
				NodeInfo: corev1.NodeSystemInfo{KubeletVersion: Version.GitVersion, KubeProxyVersion: Version.GitVersion,
					OSImage: "nplab", KernelVersion: "host", ContainerRuntimeVersion: "nplab://netns",
					OperatingSystem: "linux", Architecture: "amd64"},
			},
		})
	}
	return out
}

// eventTypes map lab events to a Kubernetes Event's reason and type; the
// data plane's flows and listeners are not Kubernetes events.
var eventTypes = map[lab.EventType]string{
	lab.EventRejected: corev1.EventTypeWarning, lab.EventFailed: corev1.EventTypeWarning,
	lab.EventFailedScheduling: corev1.EventTypeWarning, lab.EventWarning: corev1.EventTypeWarning,
	lab.EventScheduled: corev1.EventTypeNormal, lab.EventPodReady: corev1.EventTypeNormal,
	lab.EventPodUnready: corev1.EventTypeWarning, lab.EventPodTerminating: corev1.EventTypeNormal,
	lab.EventScaled: corev1.EventTypeNormal, lab.EventNodePort: corev1.EventTypeNormal,
	lab.EventClusterIP: corev1.EventTypeNormal, lab.EventFault: corev1.EventTypeWarning,
	lab.EventNotice: corev1.EventTypeNormal,
}

var kinds = map[string]string{"pod": "Pod", "service": "Service", "deployment.apps": "Deployment",
	"endpoints": "Endpoints", "node": "Node"}

// events are the lab's recent events (at most maxEvents) as v1 Events.
func (s *Server) events() []runtime.Object {
	const maxEvents = 1000
	var out []runtime.Object
	evs := s.lab.Events()
	for i := len(evs) - 1; i >= 0 && len(out) < maxEvents; i-- {
		e := evs[i]
		typ, ok := eventTypes[e.Type]
		if !ok {
			continue
		}
		res, name, _ := strings.Cut(e.Object, "/")
		t := metav1.NewTime(e.Time)
		out = append(out, &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", strings.ReplaceAll(name, "/", "-"), e.Seq),
				Namespace: lab.Namespace, CreationTimestamp: t, ResourceVersion: fmt.Sprint(e.Seq)},
			InvolvedObject: corev1.ObjectReference{Kind: kinds[res], Name: name, Namespace: lab.Namespace},
			Reason:         string(e.Type), Message: e.Message, Type: typ, Count: 1,
			FirstTimestamp: t, LastTimestamp: t, Source: corev1.EventSource{Component: "nplab"},
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].(*corev1.Event).LastTimestamp.Before(&out[j].(*corev1.Event).LastTimestamp)
	})
	return out
}

// selected filters objects by the request's label and field selectors
// (fields: metadata.name, metadata.namespace, and an Event's
// involvedObject.kind and .name).
func selected(objs []runtime.Object, lsel labels.Selector, fsel map[string]string) []runtime.Object {
	var out []runtime.Object
	for _, o := range objs {
		m := metaOf(o)
		if lsel != nil && !lsel.Matches(labels.Set(m.GetLabels())) {
			continue
		}
		ok := true
		for k, v := range fsel {
			var got string
			switch k {
			case "metadata.name":
				got = m.GetName()
			case "metadata.namespace":
				got = m.GetNamespace()
			case "involvedObject.kind", "involvedObject.name", "involvedObject.namespace":
				e, isEv := o.(*corev1.Event)
				if !isEv {
					continue
				}
				switch k {
				case "involvedObject.kind":
					got = e.InvolvedObject.Kind
				case "involvedObject.name":
					got = e.InvolvedObject.Name
				default:
					got = e.InvolvedObject.Namespace
				}
			default:
				continue
			}
			if got != v {
				ok = false
			}
		}
		if ok {
			out = append(out, o)
		}
	}
	return out
}
