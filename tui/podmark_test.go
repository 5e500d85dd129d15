package tui

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab"
)

// The pods pane says what `kubectl get pods` says of a pod the kubelet is
// restarting or initializing.
func TestPodMarkKubeletStates(t *testing.T) {
	m := New(Config{Renderer: PlainRenderer()})
	for _, tt := range []struct {
		p    lab.PodState
		want string
	}{
		{lab.PodState{Node: "node-1", Phase: corev1.PodRunning, Ready: true, Status: "Running"}, "Ready"},
		{lab.PodState{Node: "node-1", Phase: corev1.PodRunning, Status: "CrashLoopBackOff", Restarts: 3}, "CrashLoopBackOff"},
		{lab.PodState{Node: "node-1", Phase: corev1.PodRunning, Status: "Error"}, "Error"},
		{lab.PodState{Node: "node-1", Phase: corev1.PodPending, Status: "Init:0/1"}, "Init:0/1"},
		{lab.PodState{Node: "node-1", Phase: corev1.PodFailed, Status: "Init:Error"}, "Failed"},
		{lab.PodState{Node: "node-1", Phase: corev1.PodPending, Status: "Init:CrashLoopBackOff"}, "Init:CrashLoopBackOff"},
		{lab.PodState{Node: "node-1", Phase: corev1.PodRunning, Terminating: true, Status: "Terminating"}, "Terminating"},
	} {
		if _, got := m.podMark(tt.p); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.p, got, tt.want)
		}
	}
}
