package kubectl

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The STATUS, READY and RESTARTS columns of `kubectl get pods` for the
// states the kubelet reports, as printPod prints them.
func TestPodStatusColumns(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	waiting := func(reason string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	terminated := func(code int32, reason string) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, FinishedAt: ago(30 * time.Second)}}
	}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	pod := func(phase corev1.PodPhase, initialized bool, inits []corev1.ContainerStatus, ctrs ...corev1.ContainerStatus) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: ago(time.Hour)}, Status: corev1.PodStatus{Phase: phase,
			InitContainerStatuses: inits, ContainerStatuses: ctrs,
			Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionFalse}}}}
		if initialized {
			p.Status.Conditions[0].Status = corev1.ConditionTrue
		}
		for _, s := range inits {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: s.Name})
		}
		for _, s := range ctrs {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: s.Name})
		}
		return p
	}
	cs := func(name string, st corev1.ContainerState, restarts int32, ready bool) corev1.ContainerStatus {
		s := corev1.ContainerStatus{Name: name, State: st, RestartCount: restarts, Ready: ready}
		if restarts > 0 {
			s.LastTerminationState = terminated(1, "Error")
		}
		return s
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want [3]string // READY, STATUS, RESTARTS
	}{
		{"running", pod("Running", true, nil, cs("c", running, 0, true)), [3]string{"1/1", "Running", "0"}},
		{"error", pod("Running", true, nil, cs("c", terminated(1, "Error"), 0, false)), [3]string{"0/1", "Error", "0"}},
		{"crash loop", pod("Running", true, nil, cs("c", waiting("CrashLoopBackOff"), 4, false)), [3]string{"0/1", "CrashLoopBackOff", "4 (30s ago)"}},
		{"completed", pod("Succeeded", true, nil, cs("c", terminated(0, "Completed"), 0, false)), [3]string{"0/1", "Completed", "0"}},
		{"init 0/2", pod("Pending", false, []corev1.ContainerStatus{cs("a", running, 0, false), cs("b", waiting("PodInitializing"), 0, false)},
			cs("c", waiting("PodInitializing"), 0, false)), [3]string{"0/1", "Init:0/2", "0"}},
		{"init 1/2", pod("Pending", false, []corev1.ContainerStatus{cs("a", terminated(0, "Completed"), 0, false), cs("b", running, 0, false)},
			cs("c", waiting("PodInitializing"), 0, false)), [3]string{"0/1", "Init:1/2", "0"}},
		{"init error", pod("Failed", false, []corev1.ContainerStatus{cs("a", terminated(3, "Error"), 0, false)},
			cs("c", waiting("PodInitializing"), 0, false)), [3]string{"0/1", "Init:Error", "0"}},
		{"init crash loop", pod("Pending", false, []corev1.ContainerStatus{cs("a", waiting("CrashLoopBackOff"), 2, false)},
			cs("c", waiting("PodInitializing"), 0, false)), [3]string{"0/1", "Init:CrashLoopBackOff", "2 (30s ago)"}},
		{"initialized, running", pod("Running", true, []corev1.ContainerStatus{cs("a", terminated(0, "Completed"), 1, false)},
			cs("c", running, 0, true)), [3]string{"1/1", "Running", "0"}},
	}
	for _, tt := range tests {
		row := podRow(tt.pod, now, false)
		if got := [3]string{row[1], row[2], row[3]}; got != tt.want {
			t.Errorf("%s: READY, STATUS, RESTARTS = %q, want %q", tt.name, got, tt.want)
		}
		if got := PodStatusText(tt.pod); got != tt.want[1] {
			t.Errorf("%s: PodStatusText %q", tt.name, got)
		}
	}
	term := pod("Running", true, nil, cs("c", running, 0, true))
	term.DeletionTimestamp = &metav1.Time{Time: now}
	if got := PodStatusText(term); got != "Terminating" {
		t.Errorf("deleted pod: %q", got)
	}
}
