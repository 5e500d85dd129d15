package lab

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReplicaSets returns the ReplicaSets of the Deployments, sorted by name,
// as `kubectl get replicasets` lists them. nplab stores none: each is made
// from its Deployment and the pods of one pod-template-hash — the current
// template's (named <deployment>-<hash>, spec.replicas the Deployment's,
// even before it has pods) and, during a rollout, an older one's for as
// long as any of its pods exist (spec.replicas 0: the controller scales it
// down at once). Unlike a cluster's, an old ReplicaSet goes with its last
// pod rather than staying for revisionHistoryLimit, so there is no
// `kubectl rollout undo`.
func (l *Lab) ReplicaSets() []*appsv1.ReplicaSet {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*appsv1.ReplicaSet
	for _, d := range l.reg.ListDeployments() {
		hash := ComputeHash(&d.Spec.Template)
		groups := map[string][]*corev1.Pod{hash: nil}
		for _, p := range l.ownedPods(d) {
			h := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
			groups[h] = append(groups[h], p)
		}
		rolling := false // old pods still run: the new set is scaled up step by step
		for h, pods := range groups {
			rolling = rolling || (h != hash && active(pods) > 0)
		}
		for h, pods := range groups {
			out = append(out, replicaSet(d, h, h == hash, rolling, pods))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// replicaSet is the ReplicaSet of Deployment d for template hash h, with
// its pods.
func replicaSet(d *appsv1.Deployment, h string, current, rolling bool, pods []*corev1.Pod) *appsv1.ReplicaSet {
	var tmpl corev1.PodTemplateSpec
	// During a rollout each set is scaled to the pods the controller let
	// it have; after it, the new one to spec.replicas and old ones to 0.
	want := active(pods)
	created := d.CreationTimestamp
	if current {
		tmpl = *d.Spec.Template.DeepCopy()
		if !rolling {
			want = 1
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
		}
	} else if len(pods) > 0 {
		// An old template survives in its pods.
		tmpl.Labels, tmpl.Annotations = pods[0].Labels, pods[0].Annotations
		tmpl.Spec = *pods[0].Spec.DeepCopy()
		tmpl.Spec.NodeName = ""
	}
	tmpl.Labels = copyLabels(tmpl.Labels)
	tmpl.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = h
	var replicas, ready int32
	for i, p := range pods {
		// Made with its first pod (or, without pods, with d).
		if i == 0 || p.CreationTimestamp.Before(&created) {
			created = p.CreationTimestamp
		}
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		replicas++
		if podReady(p) {
			ready++
		}
	}
	sel := d.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = h
	name := d.Name + "-" + h
	return &appsv1.ReplicaSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: Namespace, UID: replicaSetUID(d, h),
			Labels:            copyLabels(tmpl.Labels),
			CreationTimestamp: created,
			Generation:        1,
			ResourceVersion:   d.ResourceVersion,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID,
				Controller: ptr(true), BlockOwnerDeletion: ptr(true),
			}},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &want, Selector: sel, Template: tmpl},
		Status: appsv1.ReplicaSetStatus{
			Replicas: replicas, FullyLabeledReplicas: replicas, ReadyReplicas: ready,
			AvailableReplicas: ready, ObservedGeneration: 1,
		},
	}
}

func copyLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// active counts the pods a ReplicaSet counts: not terminating, not ended.
func active(pods []*corev1.Pod) int32 {
	var n int32
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			n++
		}
	}
	return n
}
