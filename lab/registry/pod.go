package registry

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// CreatePod is POST of a Pod: v1 defaults → PrepareForCreate (status
// Pending with its QoS class, generation 1) → validation → store (pods "x"
// already exists last).
func (r *Registry) CreatePod(in *corev1.Pod) (*corev1.Pod, error) {
	return r.createPod(in, false)
}

// DryRunCreatePod is CreatePod with ?dryRun=All: defaulted and
// validated, returned, not stored.
func (r *Registry) DryRunCreatePod(in *corev1.Pod) (*corev1.Pod, error) {
	return r.createPod(in, true)
}

func (r *Registry) createPod(in *corev1.Pod, dryRun bool) (*corev1.Pod, error) {
	if in == nil {
		return nil, apierrors.NewBadRequest("no Pod given")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	pod := in.DeepCopy()
	r.beginCreateMeta(&pod.ObjectMeta)
	SetPodDefaults(pod)
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&pod.Spec)}
	pod.Generation = 1
	if errs := r.validatePod(pod); len(errs) > 0 {
		return nil, apierrors.NewInvalid(podKind, pod.Name, errs)
	}
	k := objKey(pod.Namespace, pod.Name)
	if old, ok := r.pods[k]; ok {
		return nil, alreadyExists(podsResource, pod.Name, &old.ObjectMeta)
	}
	if dryRun {
		return pod, nil
	}
	r.finishCreateMeta(&pod.ObjectMeta)
	r.pods[k] = pod
	r.changed("Pod", k)
	r.persist(podKey(k), pod)
	return pod.DeepCopy(), nil
}

// UpdatePod is PUT of a whole Pod. Only images, activeDeadlineSeconds,
// added tolerations and terminationGracePeriodSeconds may change in the
// spec (labels and annotations may change freely); status is kept. Like a
// `kubectl apply` patch, an empty spec.nodeName keeps the one the scheduler
// set.
func (r *Registry) UpdatePod(in *corev1.Pod) (*corev1.Pod, error) {
	return r.updatePod(in, false)
}

// DryRunUpdatePod is UpdatePod with ?dryRun=All: it returns what the
// update would store and changes nothing.
func (r *Registry) DryRunUpdatePod(in *corev1.Pod) (*corev1.Pod, error) {
	return r.updatePod(in, true)
}

func (r *Registry) updatePod(in *corev1.Pod, dryRun bool) (*corev1.Pod, error) {
	if in == nil {
		return nil, apierrors.NewBadRequest("no Pod given")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	pod := in.DeepCopy()
	pod.Namespace = nsOrDefault(pod.Namespace)
	k := objKey(pod.Namespace, pod.Name)
	old, ok := r.pods[k]
	if !ok {
		return nil, apierrors.NewNotFound(podsResource, pod.Name)
	}
	if err := checkRV(podsResource, pod.Name, pod.ResourceVersion, old.ResourceVersion); err != nil {
		return nil, err
	}
	SetPodDefaults(pod)
	if pod.Spec.NodeName == "" {
		pod.Spec.NodeName = old.Spec.NodeName
	}
	beginUpdateMeta(&pod.ObjectMeta, &old.ObjectMeta)
	pod.Status = old.Status
	if errs := r.validatePodUpdate(pod, old); len(errs) > 0 {
		return nil, apierrors.NewInvalid(podKind, pod.Name, errs)
	}
	if !equality.Semantic.DeepEqual(pod.Spec, old.Spec) {
		pod.Generation = old.Generation + 1
	}
	if equality.Semantic.DeepEqual(pod, old) {
		return old.DeepCopy(), nil
	}
	if dryRun {
		return pod, nil
	}
	pod.ResourceVersion = r.nextRV()
	r.pods[k] = pod
	r.changed("Pod", k)
	r.persist(podKey(k), pod)
	return pod.DeepCopy(), nil
}

// UpdatePodStatus is the status subresource as the kubelet, the scheduler's
// binding and graceful deletion use it: mutate gets a copy of the stored pod
// and may set status (phase, podIP(s), conditions, ...), spec.nodeName and
// metadata.deletionTimestamp/deletionGracePeriodSeconds; other changes are
// ignored. No spec validation runs.
func (r *Registry) UpdatePodStatus(namespace, name string, mutate func(*corev1.Pod)) (*corev1.Pod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := objKey(nsOrDefault(namespace), name)
	old, ok := r.pods[k]
	if !ok {
		return nil, apierrors.NewNotFound(podsResource, name)
	}
	work := old.DeepCopy()
	if mutate != nil {
		mutate(work)
	}
	// Only these fields may change, so only they are compared; the new
	// object shares the rest with the old one, which no one modifies (a
	// stored object never is; callers get copies).
	if equality.Semantic.DeepEqual(work.Status, old.Status) && work.Spec.NodeName == old.Spec.NodeName &&
		equality.Semantic.DeepEqual(work.DeletionTimestamp, old.DeletionTimestamp) &&
		equality.Semantic.DeepEqual(work.DeletionGracePeriodSeconds, old.DeletionGracePeriodSeconds) {
		return old.DeepCopy(), nil
	}
	pod := *old
	pod.Status = work.Status
	pod.Spec.NodeName = work.Spec.NodeName
	pod.DeletionTimestamp = work.DeletionTimestamp
	pod.DeletionGracePeriodSeconds = work.DeletionGracePeriodSeconds
	pod.ResourceVersion = r.nextRV()
	r.pods[k] = &pod
	r.changed("Pod", k)
	r.persist(podKey(k), &pod)
	return pod.DeepCopy(), nil
}

// DeletePod removes a Pod at once (graceful termination is the caller's:
// set deletionTimestamp with UpdatePodStatus first).
func (r *Registry) DeletePod(namespace, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := objKey(nsOrDefault(namespace), name)
	if _, ok := r.pods[k]; !ok {
		return apierrors.NewNotFound(podsResource, name)
	}
	delete(r.pods, k)
	r.changed("Pod", k)
	r.unpersist(podKey(k))
	return nil
}

// qosClass is the pod's QoS class: BestEffort without any request or
// limit, Guaranteed when every container limits cpu and memory with
// requests equal to limits, Burstable otherwise.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	any, guaranteed := false, true
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
			any = true
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			lim, ok := c.Resources.Limits[res]
			if !ok {
				guaranteed = false
				continue
			}
			req, ok := c.Resources.Requests[res]
			if ok && req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
