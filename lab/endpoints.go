package lab

import (
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nplab/nplab/lab/plane"
)

// conditions are an endpoint's EndpointSlice conditions (spec §5.5).
type conditions struct{ ready, serving, terminating bool }

func podConditions(svc *corev1.Service, p *corev1.Pod) conditions {
	c := conditions{serving: podReady(p), terminating: p.DeletionTimestamp != nil}
	c.ready = svc.Spec.PublishNotReadyAddresses || (c.serving && !c.terminating)
	return c
}

// findPort is podutil.FindPort: a numeric targetPort as is, a named one
// through the containerPort of that name and the service port's protocol.
func findPort(p *corev1.Pod, sp corev1.ServicePort) (int32, bool) {
	switch sp.TargetPort.Type {
	case intstr.String:
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == sp.TargetPort.StrVal && cp.Protocol == sp.Protocol {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	default:
		return sp.TargetPort.IntVal, true
	}
}

// selected lists the pods with an IP that svc's selector matches, by IP.
func selected(svc *corev1.Service, pods []*corev1.Pod) []*corev1.Pod {
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	var out []*corev1.Pod
	for _, p := range pods {
		if p.Status.PodIP == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	// Each address parsed once: the sort runs after every change to a
	// Service's pods, over all of them.
	addrs := make(map[*corev1.Pod]netip.Addr, len(out))
	for _, p := range out {
		addrs[p], _ = netip.ParseAddr(p.Status.PodIP)
	}
	sort.Slice(out, func(i, j int) bool { return addrs[out[i]].Less(addrs[out[j]]) })
	return out
}

// portsKey is "name/port/protocol," for each of n resolved ports: pods
// with the same key share an Endpoints subset or an EndpointSlice. (Their
// appProtocol is the Service port's, the same for every pod.)
func portsKey(n int, port func(int) (string, int32, corev1.Protocol)) string {
	var b []byte
	for i := range n {
		name, num, proto := port(i)
		b = append(b, name...)
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(num), 10)
		b = append(b, '/')
		b = append(b, proto...)
		b = append(b, ',')
	}
	return string(b)
}

// managed reports whether the endpoints controllers manage svc (it has a
// selector and is not ExternalName).
func managed(svc *corev1.Service) bool {
	return len(svc.Spec.Selector) > 0 && svc.Spec.Type != corev1.ServiceTypeExternalName
}

// buildEndpoints is the Endpoints controller for one Service: one subset per
// distinct set of resolved ports; ready addresses (Ready pods, or all with
// publishNotReadyAddresses) and not-ready ones; terminating pods left out
// unless publishNotReadyAddresses.
func buildEndpoints(svc *corev1.Service, pods []*corev1.Pod, created metav1.Time) *corev1.Endpoints {
	ep := &corev1.Endpoints{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Endpoints"},
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: svc.Labels, CreationTimestamp: created},
	}
	index := map[string]int{}
	for _, p := range selected(svc, pods) {
		c := podConditions(svc, p)
		if c.terminating && !svc.Spec.PublishNotReadyAddresses {
			continue
		}
		var ports []corev1.EndpointPort
		for _, sp := range svc.Spec.Ports {
			if n, ok := findPort(p, sp); ok {
				ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
			}
		}
		if len(ports) == 0 && len(svc.Spec.Ports) > 0 {
			continue
		}
		key := portsKey(len(ports), func(i int) (string, int32, corev1.Protocol) {
			return ports[i].Name, ports[i].Port, ports[i].Protocol
		})
		i, ok := index[key]
		if !ok {
			i = len(ep.Subsets)
			index[key] = i
			ep.Subsets = append(ep.Subsets, corev1.EndpointSubset{Ports: ports})
		}
		addr := corev1.EndpointAddress{
			IP:        p.Status.PodIP,
			NodeName:  ptr(p.Spec.NodeName),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}
		if podReady(p) || svc.Spec.PublishNotReadyAddresses {
			ep.Subsets[i].Addresses = append(ep.Subsets[i].Addresses, addr)
		} else {
			ep.Subsets[i].NotReadyAddresses = append(ep.Subsets[i].NotReadyAddresses, addr)
		}
	}
	return ep
}

// buildSlices is the EndpointSlice controller for one Service: one slice per
// distinct set of resolved ports, every selected pod with its conditions.
// created is the slices' creationTimestamp (kubectl's AGE): their
// Endpoints object's, which keeps its first one.
func buildSlices(svc *corev1.Service, pods []*corev1.Pod, created metav1.Time) []discoveryv1.EndpointSlice {
	var out []discoveryv1.EndpointSlice
	index := map[string]int{}
	for _, p := range selected(svc, pods) {
		var ports []discoveryv1.EndpointPort
		for _, sp := range svc.Spec.Ports {
			if n, ok := findPort(p, sp); ok {
				ports = append(ports, discoveryv1.EndpointPort{Name: ptr(sp.Name), Port: ptr(n), Protocol: ptr(sp.Protocol), AppProtocol: sp.AppProtocol})
			}
		}
		key := portsKey(len(ports), func(i int) (string, int32, corev1.Protocol) {
			return *ports[i].Name, *ports[i].Port, *ports[i].Protocol
		})
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, discoveryv1.EndpointSlice{
				TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
				ObjectMeta: metav1.ObjectMeta{
					Name:              fmt.Sprintf("%s-%d", svc.Name, i+1),
					Namespace:         svc.Namespace,
					Labels:            map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
					CreationTimestamp: created,
				},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       ports,
			})
		}
		c := podConditions(svc, p)
		out[i].Endpoints = append(out[i].Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(c.ready), Serving: ptr(c.serving), Terminating: ptr(c.terminating)},
			NodeName:   ptr(p.Spec.NodeName),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		})
	}
	if out == nil {
		// A Service with a selector always has a slice, even an empty one.
		out = []discoveryv1.EndpointSlice{{
			TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  metav1.ObjectMeta{Name: svc.Name + "-1", Namespace: svc.Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}, CreationTimestamp: created},
			AddressType: discoveryv1.AddressTypeIPv4,
		}}
	}
	return out
}

// describeEndpoints is the text of an EndpointsChanged event: per port the
// ready endpoints, then the others with their state.
func describeEndpoints(svc *corev1.Service, slices []discoveryv1.EndpointSlice) string {
	var parts []string
	for _, sp := range svc.Spec.Ports {
		var ready, other []string
		for _, sl := range slices {
			for _, pt := range sl.Ports {
				if *pt.Name != sp.Name {
					continue
				}
				for _, e := range sl.Endpoints {
					hp := netip.AddrPortFrom(netip.MustParseAddr(e.Addresses[0]), uint16(*pt.Port)).String()
					switch {
					case *e.Conditions.Ready:
						ready = append(ready, hp)
					case *e.Conditions.Terminating:
						other = append(other, hp+" (terminating)")
					default:
						other = append(other, hp+" (not ready)")
					}
				}
			}
		}
		list := "<none>"
		if len(ready)+len(other) > 0 {
			list = strings.Join(append(ready, other...), ", ")
		}
		name := sp.Name
		if name == "" {
			name = fmt.Sprintf("%d/%s", sp.Port, sp.Protocol)
		}
		parts = append(parts, name+": "+list)
	}
	return strings.Join(parts, "; ")
}

// afterChange runs the endpoints controllers over what changed since the
// last call, records what changed in turn, and queues a SyncServices when
// the service ports changed. l.mu is held.
//
// Like an informer-driven controller it works from the registry's change
// log (takeChanges), not from a pass over every object: a changed
// Service is recomputed, and so is every Service whose selector matched a
// changed pod before or after the change (selectorIndex), each from the
// pods its selector matches. So a change costs O(what it touches), and
// applying n objects O(n), however many the lab holds. The events are
// those a full pass would emit, in the same order: endpoints changes by
// Service name, then the endpoints of Services gone, then syncState's.
func (l *Lab) afterChange() {
	l.takeChanges()
	changedPods := takeSorted(l.pending.pods)
	names := takeSorted(l.pending.recompute)
	var gone []string
	for _, name := range names {
		svc, ok := l.reg.PeekService(Namespace, name)
		if !ok || !managed(svc) {
			gone = append(gone, name)
			continue
		}
		l.endpointBuilds++
		pods := l.candidatePods(svc)
		created := svc.CreationTimestamp
		if old, ok := l.endpoints[svc.Name]; ok {
			created = old.CreationTimestamp
		}
		ep := buildEndpoints(svc, pods, created)
		sl := buildSlices(svc, pods, created)
		old, had := l.slices[svc.Name]
		l.endpoints[svc.Name] = ep
		l.slices[svc.Name] = sl
		if !had || !reflect.DeepEqual(old, sl) {
			if had || len(sl[0].Endpoints) > 0 || len(sl) > 1 {
				l.emit(EventEndpoints, "endpoints/"+svc.Name, "%s", describeEndpoints(svc, sl))
			}
		}
	}
	for _, name := range gone {
		if _, had := l.endpoints[name]; had {
			delete(l.endpoints, name)
			delete(l.slices, name)
			l.emit(EventEndpoints, "endpoints/"+name, "deleted with its Service")
		}
	}
	l.updateDeploymentStatuses()
	// A Service's state holds its endpoints: every Service recomputed
	// (the changed ones among them) may have a new state.
	l.syncState(changedPods, names)
	if l.dp == nil {
		return
	}
	if l.syncPorts(names) {
		l.hasSynced, l.portsDirty = true, true
	}
	if !l.batching {
		l.flushPorts()
	}
}

// flushPorts queues a SyncServices with every Service's ports when they
// changed since the last one. afterChange calls it, except inside a batch
// (ApplyFiles, DeleteFile: one call, one lock, many objects), which calls
// it once at its end: the ports are level-triggered, and building them is
// O(Services), so one per object made a big manifest quadratic. l.mu is
// held.
func (l *Lab) flushPorts() {
	if l.portsDirty {
		l.portsDirty = false
		l.queueSync(l.flatPorts())
	}
}

// syncPorts updates the data plane's view of the named Services (those
// that may have changed) and reports whether it differs from what the
// data plane got last. l.mu is held.
func (l *Lab) syncPorts(names []string) bool {
	if !l.hasSynced {
		l.portsBySvc = map[string][]plane.ServicePort{}
		for _, svc := range l.reg.ListServices() {
			if _, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
				l.portsBySvc[svc.Name] = l.portsOf(svc)
			}
		}
		return true
	}
	changed := false
	for _, name := range names {
		old, had := l.portsBySvc[name]
		svc, ok := l.reg.PeekService(Namespace, name)
		if !ok {
			if had {
				delete(l.portsBySvc, name)
				changed = true
			}
			continue
		}
		if _, err := netip.ParseAddr(svc.Spec.ClusterIP); err != nil {
			if had {
				delete(l.portsBySvc, name)
				changed = true
			}
			continue // headless or ExternalName: no proxying
		}
		ports := l.portsOf(svc)
		if !had || !reflect.DeepEqual(old, ports) {
			l.portsBySvc[name] = ports
			changed = true
		}
	}
	return changed
}

// flatPorts is servicePorts from the per-Service cache syncPorts keeps.
func (l *Lab) flatPorts() []plane.ServicePort {
	names := make([]string, 0, len(l.portsBySvc))
	for name := range l.portsBySvc {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []plane.ServicePort
	for _, name := range names {
		out = append(out, l.portsBySvc[name]...)
	}
	return out
}

// servicePorts is the data plane's view: every port of every Service with a
// ClusterIP, with the EndpointSlice endpoints of that port. l.mu is held.
func (l *Lab) servicePorts() []plane.ServicePort {
	var out []plane.ServicePort
	svcs := l.reg.ListServices()
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	for _, svc := range svcs {
		if _, err := netip.ParseAddr(svc.Spec.ClusterIP); err != nil {
			continue // headless or ExternalName: no proxying
		}
		out = append(out, l.portsOf(svc)...)
	}
	return out
}

// portsOf is svc's ports as the data plane sees them, in spec order, each
// with its endpoints. l.mu is held.
func (l *Lab) portsOf(svc *corev1.Service) []plane.ServicePort {
	ip, _ := netip.ParseAddr(svc.Spec.ClusterIP)
	var out []plane.ServicePort
	for _, sp := range svc.Spec.Ports {
		p := plane.ServicePort{
			Service:               svc.Namespace + "/" + svc.Name,
			PortName:              sp.Name,
			Protocol:              string(sp.Protocol),
			ClusterIP:             ip,
			Port:                  uint16(sp.Port),
			NodePort:              uint16(sp.NodePort),
			ExternalTrafficPolicy: string(svc.Spec.ExternalTrafficPolicy),
		}
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			t := int32(corev1.DefaultClientIPServiceAffinitySeconds)
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				t = *c.ClientIP.TimeoutSeconds
			}
			p.AffinityTimeout = secondsDuration(t)
		}
		for _, sl := range l.slices[svc.Name] {
			for _, pt := range sl.Ports {
				if *pt.Name != sp.Name || *pt.Protocol != sp.Protocol {
					continue
				}
				for _, e := range sl.Endpoints {
					a := netip.MustParseAddr(e.Addresses[0])
					p.Endpoints = append(p.Endpoints, plane.Endpoint{
						Pod: e.TargetRef.Name, Node: *e.NodeName,
						Addr:        netip.AddrPortFrom(a, uint16(*pt.Port)),
						Ready:       *e.Conditions.Ready,
						Serving:     *e.Conditions.Serving,
						Terminating: *e.Conditions.Terminating,
					})
				}
			}
		}
		out = append(out, p)
	}
	return out
}
