package registry

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	supportedRestartPolicies = []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure}
	supportedDNSPolicies     = []corev1.DNSPolicy{corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault, corev1.DNSNone}
	supportedPullPolicies    = []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}
	supportedHTTPSchemes     = []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}
	supportedTermMsgPolicies = []corev1.TerminationMessagePolicy{corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError}
)

// podUpdateForbidden is the detail of ValidatePodUpdate's Forbidden error on
// spec (kube-apiserver appends a go-cmp diff of the internal PodSpec after a
// newline; nplab does not).
const podUpdateForbidden = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"

// validatePod is ValidatePodCreate's part a student meets: metadata (name is
// a DNS-1123 subdomain), then the spec.
func (r *Registry) validatePod(pod *corev1.Pod) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&pod.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	allErrs = append(allErrs, r.validatePodSpec(&pod.Spec, field.NewPath("spec"))...)
	return append(allErrs, validateHostNetwork(&pod.Spec, field.NewPath("spec"))...)
}

// validateHostNetwork is the API server's check of a hostNetwork pod (not
// a template): each port's hostPort, defaulted to its containerPort, must
// be its containerPort.
func validateHostNetwork(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if !spec.HostNetwork {
		return nil
	}
	for i, c := range spec.Containers {
		for j, p := range c.Ports {
			if p.HostPort != p.ContainerPort {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("containers").Index(i).Child("ports").Index(j).Child("containerPort"),
					p.ContainerPort, "must match `hostPort` when `hostNetwork` is true"))
			}
		}
	}
	return allErrs
}

// validatePodSpec is ValidatePodSpec's commonly hit checks, in its order.
func (r *Registry) validatePodSpec(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := map[string]bool{}
	allErrs = append(allErrs, r.validateContainers(spec.Containers, names, fldPath.Child("containers"))...)
	allErrs = append(allErrs, r.validateInitContainers(spec.InitContainers, names, fldPath.Child("initContainers"))...)
	if spec.RestartPolicy == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("restartPolicy"), ""))
	} else if !has(supportedRestartPolicies, spec.RestartPolicy) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("restartPolicy"), spec.RestartPolicy, supportedRestartPolicies))
	}
	if spec.DNSPolicy == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("dnsPolicy"), ""))
	} else if !has(supportedDNSPolicies, spec.DNSPolicy) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("dnsPolicy"), spec.DNSPolicy, supportedDNSPolicies))
	}
	allErrs = append(allErrs, metav1validation.ValidateLabels(spec.NodeSelector, fldPath.Child("nodeSelector"))...)
	if spec.ServiceAccountName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.ServiceAccountName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("serviceAccountName"), spec.ServiceAccountName, msg))
		}
	}
	if spec.NodeName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(spec.NodeName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nodeName"), spec.NodeName, msg))
		}
	}
	if spec.ActiveDeadlineSeconds != nil {
		v := *spec.ActiveDeadlineSeconds
		if v < 1 || v > 2147483647 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), v, validation.InclusiveRangeError(1, 2147483647)))
		}
	}
	if spec.Hostname != "" {
		allErrs = append(allErrs, validateDNS1123Label(spec.Hostname, fldPath.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		allErrs = append(allErrs, validateDNS1123Label(spec.Subdomain, fldPath.Child("subdomain"))...)
	}
	return allErrs
}

func (r *Registry) validateContainers(cs []corev1.Container, names map[string]bool, fldPath *field.Path) field.ErrorList {
	if len(cs) == 0 {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var allErrs field.ErrorList
	for i := range cs {
		c := &cs[i]
		path := fldPath.Index(i)
		allErrs = append(allErrs, validateContainerCommon(c, path)...)
		if names[c.Name] {
			allErrs = append(allErrs, field.Duplicate(path.Child("name"), c.Name))
		} else {
			names[c.Name] = true
		}
		allErrs = append(allErrs, validateProbe(c.LivenessProbe, path.Child("livenessProbe"), true)...)
		allErrs = append(allErrs, validateProbe(c.ReadinessProbe, path.Child("readinessProbe"), false)...)
		allErrs = append(allErrs, validateProbe(c.StartupProbe, path.Child("startupProbe"), true)...)
		if c.ReadinessProbe != nil && c.ReadinessProbe.TerminationGracePeriodSeconds != nil {
			allErrs = append(allErrs, field.Invalid(path.Child("readinessProbe", "terminationGracePeriodSeconds"), *c.ReadinessProbe.TerminationGracePeriodSeconds, "must not be set for readinessProbes"))
		}
	}
	return allErrs
}

func (r *Registry) validateInitContainers(cs []corev1.Container, names map[string]bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i := range cs {
		c := &cs[i]
		path := fldPath.Index(i)
		allErrs = append(allErrs, validateContainerCommon(c, path)...)
		if names[c.Name] {
			allErrs = append(allErrs, field.Duplicate(path.Child("name"), c.Name))
		} else {
			names[c.Name] = true
		}
	}
	return allErrs
}

// validateContainerCommon: name (DNS-1123 label), image required,
// terminationMessagePolicy, ports, env names, imagePullPolicy.
func validateContainerCommon(c *corev1.Container, path *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if c.Name == "" {
		allErrs = append(allErrs, field.Required(path.Child("name"), ""))
	} else {
		allErrs = append(allErrs, validateDNS1123Label(c.Name, path.Child("name"))...)
	}
	if c.Image == "" {
		allErrs = append(allErrs, field.Required(path.Child("image"), ""))
	}
	switch c.TerminationMessagePolicy {
	case corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError:
	case "":
		allErrs = append(allErrs, field.Required(path.Child("terminationMessagePolicy"), ""))
	default:
		allErrs = append(allErrs, field.NotSupported(path.Child("terminationMessagePolicy"), c.TerminationMessagePolicy, supportedTermMsgPolicies))
	}
	allErrs = append(allErrs, validateContainerPorts(c.Ports, path.Child("ports"))...)
	for i, e := range c.Env {
		if e.Name == "" {
			allErrs = append(allErrs, field.Required(path.Child("env").Index(i).Child("name"), ""))
		}
	}
	if c.ImagePullPolicy == "" {
		allErrs = append(allErrs, field.Required(path.Child("imagePullPolicy"), ""))
	} else if !has(supportedPullPolicies, c.ImagePullPolicy) {
		allErrs = append(allErrs, field.NotSupported(path.Child("imagePullPolicy"), c.ImagePullPolicy, supportedPullPolicies))
	}
	return allErrs
}

func validateContainerPorts(ports []corev1.ContainerPort, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := map[string]bool{}
	for i, p := range ports {
		idx := fldPath.Index(i)
		if p.Name != "" {
			if msgs := validation.IsValidPortName(p.Name); len(msgs) != 0 {
				for _, msg := range msgs {
					allErrs = append(allErrs, field.Invalid(idx.Child("name"), p.Name, msg))
				}
			} else if names[p.Name] {
				allErrs = append(allErrs, field.Duplicate(idx.Child("name"), p.Name))
			} else {
				names[p.Name] = true
			}
		}
		if p.ContainerPort == 0 {
			allErrs = append(allErrs, field.Required(idx.Child("containerPort"), ""))
		} else {
			for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
				allErrs = append(allErrs, field.Invalid(idx.Child("containerPort"), p.ContainerPort, msg))
			}
		}
		if p.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(p.HostPort)) {
				allErrs = append(allErrs, field.Invalid(idx.Child("hostPort"), p.HostPort, msg))
			}
		}
		if p.Protocol == "" {
			allErrs = append(allErrs, field.Required(idx.Child("protocol"), ""))
		} else if !has(supportedPortProtocols, p.Protocol) {
			allErrs = append(allErrs, field.NotSupported(idx.Child("protocol"), p.Protocol, supportedPortProtocols))
		}
	}
	return allErrs
}

// validateProbe is validateProbe + the handler check; liveness and startup
// probes also need successThreshold 1.
func validateProbe(p *corev1.Probe, fldPath *field.Path, successMustBeOne bool) field.ErrorList {
	if p == nil {
		return nil
	}
	allErrs := validateHandler(&p.ProbeHandler, fldPath)
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"initialDelaySeconds", p.InitialDelaySeconds},
		{"timeoutSeconds", p.TimeoutSeconds},
		{"periodSeconds", p.PeriodSeconds},
		{"successThreshold", p.SuccessThreshold},
		{"failureThreshold", p.FailureThreshold},
	} {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(f.v), fldPath.Child(f.name))...)
	}
	if p.TerminationGracePeriodSeconds != nil && *p.TerminationGracePeriodSeconds <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("terminationGracePeriodSeconds"), *p.TerminationGracePeriodSeconds, "must be greater than 0"))
	}
	if successMustBeOne && p.SuccessThreshold != 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("successThreshold"), p.SuccessThreshold, "must be 1"))
	}
	return allErrs
}

func validateHandler(h *corev1.ProbeHandler, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	n := 0
	one := func(child string, validate func(*field.Path) field.ErrorList) {
		if n > 0 {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child(child), "may not specify more than 1 handler type"))
			return
		}
		n++
		allErrs = append(allErrs, validate(fldPath.Child(child))...)
	}
	if h.Exec != nil {
		one("exec", func(p *field.Path) field.ErrorList {
			if len(h.Exec.Command) == 0 {
				return field.ErrorList{field.Required(p.Child("command"), "")}
			}
			return nil
		})
	}
	if h.HTTPGet != nil {
		one("httpGet", func(p *field.Path) field.ErrorList {
			var errs field.ErrorList
			if h.HTTPGet.Path == "" {
				errs = append(errs, field.Required(p.Child("path"), ""))
			}
			errs = append(errs, validatePortNumOrName(h.HTTPGet.Port, p.Child("port"))...)
			if !has(supportedHTTPSchemes, h.HTTPGet.Scheme) {
				errs = append(errs, field.NotSupported(p.Child("scheme"), h.HTTPGet.Scheme, supportedHTTPSchemes))
			}
			for _, hdr := range h.HTTPGet.HTTPHeaders {
				for _, msg := range validation.IsHTTPHeaderName(hdr.Name) {
					errs = append(errs, field.Invalid(p.Child("httpHeaders"), hdr.Name, msg))
				}
			}
			return errs
		})
	}
	if h.TCPSocket != nil {
		one("tcpSocket", func(p *field.Path) field.ErrorList {
			return validatePortNumOrName(h.TCPSocket.Port, p.Child("port"))
		})
	}
	if h.GRPC != nil {
		one("grpc", func(p *field.Path) field.ErrorList {
			var errs field.ErrorList
			for _, msg := range validation.IsValidPortNum(int(h.GRPC.Port)) {
				errs = append(errs, field.Invalid(p.Child("port"), h.GRPC.Port, msg))
			}
			return errs
		})
	}
	if n == 0 {
		allErrs = append(allErrs, field.Required(fldPath, "must specify a handler type"))
	}
	return allErrs
}

// validatePodUpdate is ValidatePodUpdate's rule: metadata immutables, the
// new pod valid, and the spec unchanged except images, activeDeadlineSeconds,
// added tolerations and terminationGracePeriodSeconds (negative → 1).
func (r *Registry) validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(&pod.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, r.validatePod(pod)...)
	specPath := field.NewPath("spec")

	munged := pod.Spec.DeepCopy()
	for i := range munged.Containers {
		if i < len(old.Spec.Containers) {
			munged.Containers[i].Image = old.Spec.Containers[i].Image
		}
	}
	for i := range munged.InitContainers {
		if i < len(old.Spec.InitContainers) {
			munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
		}
	}
	if ad := pod.Spec.ActiveDeadlineSeconds; ad != nil {
		oldAD := old.Spec.ActiveDeadlineSeconds
		if oldAD == nil || *ad <= *oldAD {
			munged.ActiveDeadlineSeconds = oldAD
		}
	}
	if tolerationsAdditionsOnly(old.Spec.Tolerations, pod.Spec.Tolerations) {
		munged.Tolerations = old.Spec.Tolerations
	}
	if og, ng := old.Spec.TerminationGracePeriodSeconds, pod.Spec.TerminationGracePeriodSeconds; og != nil && *og < 0 && ng != nil && *ng == 1 {
		munged.TerminationGracePeriodSeconds = og
	}
	if !equality.Semantic.DeepEqual(*munged, old.Spec) {
		allErrs = append(allErrs, field.Forbidden(specPath, podUpdateForbidden))
	}
	return allErrs
}

func tolerationsAdditionsOnly(old, cur []corev1.Toleration) bool {
	for _, o := range old {
		found := false
		for _, c := range cur {
			if equality.Semantic.DeepEqual(o, c) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
