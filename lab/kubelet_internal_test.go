package lab

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// podPhase is the kubelet's getPhase.
func TestPodPhase(t *testing.T) {
	running := corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	exited := func(code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
	}
	backoff := corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}
	creating := corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	initRunning := corev1.ContainerStatus{Name: "i", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	initDone := corev1.ContainerStatus{Name: "i", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}
	initFailed := corev1.ContainerStatus{Name: "i", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3}}}
	initBackoff := backoff
	initBackoff.Name = "i"
	tests := []struct {
		name   string
		policy corev1.RestartPolicy
		init   bool
		inits  []corev1.ContainerStatus
		ctrs   []corev1.ContainerStatus
		want   corev1.PodPhase
	}{
		{"running", "", false, nil, []corev1.ContainerStatus{running}, corev1.PodRunning},
		{"creating", "", false, nil, []corev1.ContainerStatus{creating}, corev1.PodPending},
		{"no status yet", "", false, nil, nil, corev1.PodPending},
		{"crash loop, Always", corev1.RestartPolicyAlways, false, nil, []corev1.ContainerStatus{backoff}, corev1.PodRunning},
		{"exited 1, Always (restarting)", corev1.RestartPolicyAlways, false, nil, []corev1.ContainerStatus{exited(1)}, corev1.PodRunning},
		{"exited 1, Never", corev1.RestartPolicyNever, false, nil, []corev1.ContainerStatus{exited(1)}, corev1.PodFailed},
		{"exited 0, Never", corev1.RestartPolicyNever, false, nil, []corev1.ContainerStatus{exited(0)}, corev1.PodSucceeded},
		{"exited 0, OnFailure", corev1.RestartPolicyOnFailure, false, nil, []corev1.ContainerStatus{exited(0)}, corev1.PodSucceeded},
		{"exited 1, OnFailure", corev1.RestartPolicyOnFailure, false, nil, []corev1.ContainerStatus{exited(1)}, corev1.PodRunning},
		{"init running", "", true, []corev1.ContainerStatus{initRunning}, []corev1.ContainerStatus{creating}, corev1.PodPending},
		{"init done", "", true, []corev1.ContainerStatus{initDone}, []corev1.ContainerStatus{running}, corev1.PodRunning},
		{"init failed, Never", corev1.RestartPolicyNever, true, []corev1.ContainerStatus{initFailed}, []corev1.ContainerStatus{creating}, corev1.PodFailed},
		{"init failed, Always", corev1.RestartPolicyAlways, true, []corev1.ContainerStatus{initBackoff}, []corev1.ContainerStatus{creating}, corev1.PodPending},
	}
	for _, tt := range tests {
		spec := corev1.PodSpec{RestartPolicy: tt.policy, Containers: []corev1.Container{{Name: "c"}}}
		if tt.init {
			spec.InitContainers = []corev1.Container{{Name: "i"}}
		}
		if got := podPhase(&spec, tt.inits, tt.ctrs); got != tt.want {
			t.Errorf("%s: phase %s, want %s", tt.name, got, tt.want)
		}
		if tt.init {
			if got, want := initialized(&spec, tt.inits), tt.inits[0].State.Terminated != nil && tt.inits[0].State.Terminated.ExitCode == 0; got != want {
				t.Errorf("%s: initialized %v, want %v", tt.name, got, want)
			}
		}
	}
}
