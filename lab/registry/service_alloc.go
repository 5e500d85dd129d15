package registry

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// txn is the allocation transaction of one Service request: numbers
// reserved now (undone by revert) and numbers to release when the request
// commits (the deferred release of spec §4).
type txn struct {
	r            *Registry
	ports        []int
	ips          []netip.Addr
	releasePorts []int
	releaseIPs   []netip.Addr
}

func (t *txn) revert() {
	for _, p := range t.ports {
		t.r.ports.Release(p)
	}
	for _, ip := range t.ips {
		t.r.ips.Release(ip)
	}
	t.ports, t.ips = nil, nil
}

func (t *txn) commit() {
	for _, p := range t.releasePorts {
		t.r.ports.Release(p)
	}
	for _, ip := range t.releaseIPs {
		t.r.ips.Release(ip)
	}
}

func (t *txn) allocatePort(p int) error {
	if err := t.r.ports.Allocate(p); err != nil {
		return err
	}
	t.ports = append(t.ports, p)
	return nil
}

func (t *txn) allocateNextPort() (int, error) {
	p, err := t.r.ports.AllocateNext()
	if err != nil {
		return 0, err
	}
	t.ports = append(t.ports, p)
	return p, nil
}

// clusterFamily is the IP family of the service CIDR.
func (r *Registry) clusterFamily() corev1.IPFamily {
	if r.ips.CIDR().Addr().Is6() {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

func familyOf(ip string) corev1.IPFamily {
	a, err := netip.ParseAddr(ip)
	if err == nil && a.Is6() && !a.Is4In6() {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

// initIPFamilyFields is the allocator's initIPFamilyFields for a
// single-stack cluster: ipFamilyPolicy (SingleStack unless headless and
// selectorless), a loose pre-validation of the clusterIP fields, ipFamilies.
// Its errors come back as 422 Invalid, before any allocation.
func (r *Registry) initIPFamilyFields(svc, old *corev1.Service) error {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if svc.Spec.IPFamilyPolicy == nil {
		var p corev1.IPFamilyPolicy
		switch {
		case old != nil && old.Spec.IPFamilyPolicy != nil:
			p = *old.Spec.IPFamilyPolicy
		case svc.Spec.ClusterIP == corev1.ClusterIPNone && len(svc.Spec.Selector) == 0:
			p = corev1.IPFamilyPolicyRequireDualStack
		default:
			p = corev1.IPFamilyPolicySingleStack
		}
		svc.Spec.IPFamilyPolicy = &p
	}
	if el := r.validateClusterIPsRelatedFields(svc); len(el) != 0 {
		return apierrors.NewInvalid(serviceKind, svc.Name, el)
	}
	var el field.ErrorList
	policy := *svc.Spec.IPFamilyPolicy
	policyPath := field.NewPath("spec", "ipFamilyPolicy")
	if policy == corev1.IPFamilyPolicySingleStack {
		if len(svc.Spec.ClusterIPs) == 2 {
			el = append(el, field.Invalid(policyPath, r.val(svc.Spec.IPFamilyPolicy), "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"))
		}
		if len(svc.Spec.IPFamilies) == 2 {
			el = append(el, field.Invalid(policyPath, r.val(svc.Spec.IPFamilyPolicy), "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
		}
	}
	for i, ip := range svc.Spec.ClusterIPs {
		if ip == corev1.ClusterIPNone {
			break
		}
		fam := familyOf(ip)
		if i >= len(svc.Spec.IPFamilies) {
			if fam != r.clusterFamily() {
				el = append(el, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), r.val(svc.Spec.ClusterIPs), fmt.Sprintf("%s is not configured on this cluster", fam)))
			} else {
				svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, fam)
			}
		}
	}
	if len(el) > 0 {
		return apierrors.NewInvalid(serviceKind, svc.Name, el)
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone && len(svc.Spec.Selector) == 0 {
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{r.clusterFamily()}
		}
		if len(svc.Spec.IPFamilies) < 2 && policy != corev1.IPFamilyPolicySingleStack {
			if svc.Spec.IPFamilies[0] == corev1.IPv4Protocol {
				svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, corev1.IPv6Protocol)
			} else {
				svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, corev1.IPv4Protocol)
			}
		}
		return nil
	}
	if policy == corev1.IPFamilyPolicyRequireDualStack {
		el = append(el, field.Invalid(policyPath, r.val(svc.Spec.IPFamilyPolicy), "this cluster is not configured for dual-stack services"))
	}
	for i, fam := range svc.Spec.IPFamilies {
		if fam != r.clusterFamily() {
			el = append(el, field.Invalid(field.NewPath("spec", "ipFamilies").Index(i), fam, "not configured on this cluster"))
		}
	}
	if len(el) > 0 {
		return apierrors.NewInvalid(serviceKind, svc.Name, el)
	}
	if len(svc.Spec.IPFamilies) == 0 {
		svc.Spec.IPFamilies = []corev1.IPFamily{r.clusterFamily()}
	}
	return nil
}

// allocClusterIPs allocates (or reserves the requested) clusterIP.
func (r *Registry) allocClusterIPs(svc *corev1.Service, t *txn) error {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if len(svc.Spec.ClusterIPs) > 0 && svc.Spec.ClusterIPs[0] == corev1.ClusterIPNone {
		return nil
	}
	if len(svc.Spec.ClusterIPs) == 0 {
		svc.Spec.ClusterIPs = []string{""}
	}
	ip := svc.Spec.ClusterIPs[0]
	var addr netip.Addr
	if ip == "" {
		a, err := r.ips.AllocateNext()
		if err != nil {
			return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %v", err))
		}
		addr = a
	} else {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return apierrors.NewInternalError(fmt.Errorf("failed to parse service IP %q", ip))
		}
		if err := r.ips.Allocate(a); err != nil {
			el := field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), r.val(svc.Spec.ClusterIPs), fmt.Sprintf("failed to allocate IP %v: %v", ip, err))}
			return apierrors.NewInvalid(serviceKind, svc.Name, el)
		}
		addr = a
	}
	t.ips = append(t.ips, addr)
	svc.Spec.ClusterIPs[0] = addr.String()
	svc.Spec.ClusterIP = addr.String()
	return nil
}

// initNodePorts is the create-time nodePort allocation (spec §2.6): entries
// with the same `port` share one nodePort; an explicit one is reserved, a
// zero one auto-allocated.
func (r *Registry) initNodePorts(svc *corev1.Service, t *txn) error {
	byPort := map[int32]int{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if sp.NodePort == 0 && !shouldAllocateNodePorts(svc) {
			continue
		}
		allocated := byPort[sp.Port]
		if allocated == 0 {
			if np := findRequestedNodePort(sp.Port, svc.Spec.Ports); np != 0 {
				if err := t.allocatePort(int(np)); err != nil {
					el := field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), np, err.Error())}
					return apierrors.NewInvalid(serviceKind, svc.Name, el)
				}
				sp.NodePort = np
				byPort[sp.Port] = int(np)
			} else {
				np, err := t.allocateNextPort()
				if err != nil {
					return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %v", err))
				}
				sp.NodePort = int32(np)
				byPort[sp.Port] = np
			}
		} else if int(sp.NodePort) != allocated {
			if sp.NodePort == 0 {
				sp.NodePort = int32(allocated)
			} else if err := t.allocatePort(int(sp.NodePort)); err != nil {
				el := field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), sp.NodePort, err.Error())}
				return apierrors.NewInvalid(serviceKind, svc.Name, el)
			}
		}
	}
	return nil
}

func findRequestedNodePort(port int32, ports []corev1.ServicePort) int32 {
	for _, sp := range ports {
		if sp.Port == port && sp.NodePort != 0 {
			return sp.NodePort
		}
	}
	return 0
}

// allocHealthCheckNodePort reserves or allocates healthCheckNodePort
// (LoadBalancer + Local only) from the same bitmap.
func (r *Registry) allocHealthCheckNodePort(svc *corev1.Service, t *txn) error {
	if hc := svc.Spec.HealthCheckNodePort; hc != 0 {
		if err := t.allocatePort(int(hc)); err != nil {
			return fmt.Errorf("failed to allocate requested HealthCheck NodePort %v: %v", hc, err)
		}
		return nil
	}
	hc, err := t.allocateNextPort()
	if err != nil {
		return fmt.Errorf("failed to allocate a HealthCheck NodePort %v: %v", hc, err)
	}
	svc.Spec.HealthCheckNodePort = int32(hc)
	return nil
}

// allocateCreate is the BeginCreate hook (spec §2.0 step 2). On error
// everything it reserved is already released.
func (r *Registry) allocateCreate(svc *corev1.Service) (_ *txn, err error) {
	t := &txn{r: r}
	defer func() {
		if err != nil {
			t.revert()
		}
	}()
	if err := r.initIPFamilyFields(svc, nil); err != nil {
		return nil, err
	}
	if err := r.allocClusterIPs(svc, t); err != nil {
		return nil, err
	}
	if needsNodePort(svc) {
		if err := r.initNodePorts(svc, t); err != nil {
			return nil, err
		}
	}
	if needsHealthCheck(svc) {
		if err := r.allocHealthCheckNodePort(svc, t); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	}
	return t, nil
}

func collectNodePorts(svc *corev1.Service) []int {
	var out []int
	seen := map[int32]bool{}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 && !seen[p.NodePort] {
			seen[p.NodePort] = true
			out = append(out, int(p.NodePort))
		}
	}
	return out
}

func clusterAddrs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ip := range svc.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// allocateUpdate is the BeginUpdate hook (spec §2.0, §4).
func (r *Registry) allocateUpdate(svc, old *corev1.Service) (_ *txn, err error) {
	t := &txn{r: r}
	defer func() {
		if err != nil {
			t.revert()
		}
	}()
	if err := r.initIPFamilyFields(svc, old); err != nil {
		return nil, err
	}
	switch {
	case !needsClusterIP(old) && needsClusterIP(svc):
		if err := r.allocClusterIPs(svc, t); err != nil {
			return nil, err
		}
	case needsClusterIP(old) && !needsClusterIP(svc):
		t.releaseIPs = append(t.releaseIPs, clusterAddrs(old)...)
	}

	if needsNodePort(old) && !needsNodePort(svc) {
		t.releasePorts = append(t.releasePorts, collectNodePorts(old)...)
	}
	if needsNodePort(svc) {
		if err := r.updateNodePorts(svc, old, t); err != nil {
			return nil, err
		}
	}
	switch {
	case !needsHealthCheck(old) && needsHealthCheck(svc):
		if err := r.allocHealthCheckNodePort(svc, t); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	case needsHealthCheck(old) && !needsHealthCheck(svc):
		t.releasePorts = append(t.releasePorts, int(old.Spec.HealthCheckNodePort))
	}
	return t, nil
}

// updateNodePorts is the update-time nodePort allocation: numbers new to
// the Service are reserved (once per request), zero ones auto-allocated
// (no sharing by port number on update), numbers no longer used are
// released when the update commits.
func (r *Registry) updateNodePorts(svc, old *corev1.Service, t *txn) error {
	oldNumbers := map[int]bool{}
	for _, p := range collectNodePorts(old) {
		oldNumbers[p] = true
	}
	type protoPort struct {
		Protocol corev1.Protocol
		NodePort int32
	}
	var seen []protoPort
	reserved := map[int]bool{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if sp.NodePort == 0 && !shouldAllocateNodePorts(svc) {
			continue
		}
		np := protoPort{sp.Protocol, sp.NodePort}
		if np.NodePort != 0 {
			if !oldNumbers[int(np.NodePort)] && !reserved[int(np.NodePort)] {
				if err := t.allocatePort(int(np.NodePort)); err != nil {
					el := field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), np.NodePort, err.Error())}
					return apierrors.NewInvalid(serviceKind, svc.Name, el)
				}
				reserved[int(np.NodePort)] = true
			}
		} else {
			n, err := t.allocateNextPort()
			if err != nil {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %v", err))
			}
			sp.NodePort = int32(n)
			np.NodePort = sp.NodePort
		}
		for _, s := range seen {
			if s == np {
				// A plain error in kube-apiserver, which reaches the client as
				// a 500 with reason Unknown.
				return &apierrors.StatusError{ErrStatus: unknownStatus(fmt.Sprintf("duplicate nodePort: %v", np))}
			}
		}
		seen = append(seen, np)
	}
	newNumbers := map[int]bool{}
	for _, p := range collectNodePorts(svc) {
		newNumbers[p] = true
	}
	for _, p := range collectNodePorts(old) {
		if !newNumbers[p] {
			t.releasePorts = append(t.releasePorts, p)
		}
	}
	return nil
}

// releaseAll is the afterDelete hook: clusterIPs, nodePorts and
// healthCheckNodePort go back to their pools at once.
func (r *Registry) releaseAll(svc *corev1.Service) {
	for _, ip := range clusterAddrs(svc) {
		r.ips.Release(ip)
	}
	for _, p := range collectNodePorts(svc) {
		r.ports.Release(p)
	}
	if needsHealthCheck(svc) && svc.Spec.HealthCheckNodePort != 0 {
		r.ports.Release(int(svc.Spec.HealthCheckNodePort))
	}
}
