package lab

import (
	"fmt"
	"net/netip"
	"reflect"
	"sort"
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
	sort.Slice(out, func(i, j int) bool {
		a, _ := netip.ParseAddr(out[i].Status.PodIP)
		b, _ := netip.ParseAddr(out[j].Status.PodIP)
		return a.Less(b)
	})
	return out
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
		key := fmt.Sprint(ports)
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
func buildSlices(svc *corev1.Service, pods []*corev1.Pod) []discoveryv1.EndpointSlice {
	var out []discoveryv1.EndpointSlice
	index := map[string]int{}
	for _, p := range selected(svc, pods) {
		var ports []discoveryv1.EndpointPort
		for _, sp := range svc.Spec.Ports {
			if n, ok := findPort(p, sp); ok {
				ports = append(ports, discoveryv1.EndpointPort{Name: ptr(sp.Name), Port: ptr(n), Protocol: ptr(sp.Protocol), AppProtocol: sp.AppProtocol})
			}
		}
		key := ""
		for _, pt := range ports {
			key += fmt.Sprintf("%s/%d/%s,", *pt.Name, *pt.Port, *pt.Protocol)
		}
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, discoveryv1.EndpointSlice{
				TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
				ObjectMeta: metav1.ObjectMeta{
					Name:      fmt.Sprintf("%s-%d", svc.Name, i+1),
					Namespace: svc.Namespace,
					Labels:    map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
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
			ObjectMeta:  metav1.ObjectMeta{Name: svc.Name + "-1", Namespace: svc.Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
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

// afterChange runs the endpoints controllers over every Service, records
// what changed, and queues a SyncServices when the service ports changed.
// l.mu is held.
func (l *Lab) afterChange() {
	pods := l.reg.ListPods()
	live := map[string]bool{}
	for _, svc := range l.reg.ListServices() {
		if !managed(svc) {
			continue
		}
		live[svc.Name] = true
		created := svc.CreationTimestamp
		if old, ok := l.endpoints[svc.Name]; ok {
			created = old.CreationTimestamp
		}
		ep := buildEndpoints(svc, pods, created)
		sl := buildSlices(svc, pods)
		old, had := l.slices[svc.Name]
		l.endpoints[svc.Name] = ep
		l.slices[svc.Name] = sl
		if !had || !reflect.DeepEqual(old, sl) {
			if had || len(sl[0].Endpoints) > 0 || len(sl) > 1 {
				l.emit(EventEndpoints, "endpoints/"+svc.Name, "%s", describeEndpoints(svc, sl))
			}
		}
	}
	for name := range l.endpoints {
		if !live[name] {
			delete(l.endpoints, name)
			delete(l.slices, name)
			l.emit(EventEndpoints, "endpoints/"+name, "deleted with its Service")
		}
	}
	if l.dp == nil {
		return
	}
	ports := l.servicePorts()
	if l.hasSynced && reflect.DeepEqual(ports, l.synced) {
		return
	}
	l.synced, l.hasSynced = ports, true
	snapshot := append([]plane.ServicePort(nil), ports...)
	l.enqueue(func() { l.dp.SyncServices(snapshot) })
}

// servicePorts is the data plane's view: every port of every Service with a
// ClusterIP, with the EndpointSlice endpoints of that port. l.mu is held.
func (l *Lab) servicePorts() []plane.ServicePort {
	var out []plane.ServicePort
	svcs := l.reg.ListServices()
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	for _, svc := range svcs {
		ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil {
			continue // headless or ExternalName: no proxying
		}
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
	}
	return out
}
