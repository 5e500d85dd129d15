package lab

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Deployment controller's status, as its calculateStatus and
// syncRolloutStatus write it: what `kubectl get deployments` (READY,
// UP-TO-DATE, AVAILABLE), `kubectl rollout status` and `kubectl wait
// --for=condition=Available` read. nplab stores no ReplicaSets: "the new
// ReplicaSet" is the pods of the current template (its pod-template-hash),
// named <deployment>-<hash> as Kubernetes names it. minReadySeconds is not
// emulated, so a ready pod is available at once.

// Condition reasons of the Deployment controller (deploymentutil).
const (
	reasonMinimumReplicasAvailable   = "MinimumReplicasAvailable"
	reasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
	reasonNewReplicaSetCreated       = "NewReplicaSetCreated"
	reasonReplicaSetUpdated          = "ReplicaSetUpdated"
	reasonNewReplicaSetAvailable     = "NewReplicaSetAvailable"
)

// deploymentsChanged marks the Deployments whose status may have changed
// (a pod of theirs changed, or they were synced); afterChange updates
// them. l.mu is held.
func (l *Lab) deploymentsChanged(names ...string) {
	if l.pending.deployments == nil {
		l.pending.deployments = map[string]struct{}{}
	}
	for _, n := range names {
		if n != "" {
			l.pending.deployments[n] = struct{}{}
		}
	}
}

// updateDeploymentStatuses writes the status of every Deployment marked
// since the last call. l.mu is held.
func (l *Lab) updateDeploymentStatuses() {
	for _, name := range takeSorted(l.pending.deployments) {
		d, ok := l.reg.GetDeployment(Namespace, name)
		if !ok {
			continue
		}
		st := l.deploymentStatus(d)
		if _, err := l.reg.UpdateDeploymentStatus(Namespace, name, func(d *appsv1.Deployment) { d.Status = st }); err != nil {
			l.emit(EventFailed, "deployment.apps/"+name, "updating its status: %v", err)
		}
	}
}

// deploymentStatus is d's status from its pods (the terminating and the
// ended ones do not count, as a ReplicaSet's active pods). l.mu is held.
func (l *Lab) deploymentStatus(d *appsv1.Deployment) appsv1.DeploymentStatus {
	hash := ComputeHash(&d.Spec.Template)
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	var replicas, updated, ready int32
	for _, p := range l.ownedPods(d) {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		replicas++
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			updated++
		}
		if podReady(p) {
			ready++
		}
	}
	available := ready // minReadySeconds: 0
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            replicas,
		UpdatedReplicas:     updated,
		ReadyReplicas:       ready,
		AvailableReplicas:   available,
		UnavailableReplicas: max(want-available, 0),
		CollisionCount:      d.Status.CollisionCount,
		Conditions:          append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...),
	}
	now := metav1.NewTime(l.now())
	cond := func(typ appsv1.DeploymentConditionType, ok bool, reason, msg string) appsv1.DeploymentCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return appsv1.DeploymentCondition{Type: typ, Status: s, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
	}

	if available >= want-maxUnavailable(d, want) {
		setDeploymentCondition(&st, cond(appsv1.DeploymentAvailable, true, reasonMinimumReplicasAvailable, "Deployment has minimum availability."))
	} else {
		setDeploymentCondition(&st, cond(appsv1.DeploymentAvailable, false, reasonMinimumReplicasUnavailable, "Deployment does not have minimum availability."))
	}

	rs := fmt.Sprintf("%s-%s", d.Name, hash)
	cur := deploymentCondition(st, appsv1.DeploymentProgressing)
	created := fmt.Sprintf("Created new replica set %q", rs)
	fresh := cur == nil || !progressingNames(cur, rs)
	if fresh {
		// A new template: its ReplicaSet was just created.
		removeDeploymentCondition(&st, appsv1.DeploymentProgressing)
		setDeploymentCondition(&st, cond(appsv1.DeploymentProgressing, true, reasonNewReplicaSetCreated, created))
		cur = deploymentCondition(st, appsv1.DeploymentProgressing)
	}
	switch {
	case replicas == updated && cur.Reason == reasonNewReplicaSetAvailable:
		// Complete, and stays so until the next rollout.
	case updated == want && replicas == want && available == want:
		setDeploymentCondition(&st, cond(appsv1.DeploymentProgressing, true, reasonNewReplicaSetAvailable,
			fmt.Sprintf("ReplicaSet %q has successfully progressed.", rs)))
	case !fresh && (updated > d.Status.UpdatedReplicas || replicas-updated < d.Status.Replicas-d.Status.UpdatedReplicas ||
		ready > d.Status.ReadyReplicas || available > d.Status.AvailableReplicas):
		// Progress: the condition's lastUpdateTime moves.
		c := cond(appsv1.DeploymentProgressing, true, reasonReplicaSetUpdated, fmt.Sprintf("ReplicaSet %q is progressing.", rs))
		if cur.Status == corev1.ConditionTrue {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		removeDeploymentCondition(&st, appsv1.DeploymentProgressing)
		setDeploymentCondition(&st, c)
	}
	return st
}

// progressingNames says whether a Progressing condition is about the
// ReplicaSet rs (its message names it).
func progressingNames(c *appsv1.DeploymentCondition, rs string) bool {
	return strings.Contains(c.Message, strconv.Quote(rs))
}

// maxUnavailable is the rollout's maxUnavailable for want replicas (0
// for Recreate), as deploymentutil.MaxUnavailable.
func maxUnavailable(d *appsv1.Deployment, want int32) int32 {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || want == 0 {
		return 0
	}
	_, u := rollingParams(d, int(want))
	return min(int32(u), want)
}

func deploymentCondition(st appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setDeploymentCondition is deploymentutil.SetDeploymentCondition: the
// same status and reason change nothing; the same status keeps its
// lastTransitionTime; a changed condition goes to the end.
func setDeploymentCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := deploymentCondition(*st, c.Type)
	if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		return
	}
	if cur != nil && cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	removeDeploymentCondition(st, c.Type)
	st.Conditions = append(st.Conditions, c)
}

func removeDeploymentCondition(st *appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType) {
	out := st.Conditions[:0]
	for _, c := range st.Conditions {
		if c.Type != typ {
			out = append(out, c)
		}
	}
	st.Conditions = out
}
