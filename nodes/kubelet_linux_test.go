//go:build linux

package nodes

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
)

// TestContainerCannotStart: a pod's second container wants the port its
// first already listens on; its app cannot start, so it terminates with
// code 1 and the socket error, and the kubelet restarts it with back-off
// (CrashLoopBackOff, a growing restart count) while the first runs on and
// the pod stays unready.
func TestContainerCannotStart(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	p := agnhost("clash")
	second := p.Spec.Containers[0]
	second.Name = "again"
	p.Spec.Containers = append(p.Spec.Containers, second)
	startPod(t, c, log, 1, 10, p, false)
	rec := log.wait(t, 20*time.Second, "the second container in CrashLoopBackOff after 2 restarts", func(r record) bool {
		if r.Kind != recPodStatus || r.Pod != "clash" || len(r.Status.Containers) != 2 {
			return false
		}
		s := r.Status.Containers[1]
		return s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" && s.RestartCount >= 2
	})
	first, again := rec.Status.Containers[0], rec.Status.Containers[1]
	if first.State.Running == nil || first.RestartCount != 0 {
		t.Errorf("the first container: %+v", first)
	}
	last := again.LastTerminationState.Terminated
	if last == nil || last.ExitCode != 1 || last.Reason != "Error" || !strings.Contains(last.Message, "address already in use") {
		t.Errorf("the second container's last termination: %+v", last)
	}
	if !strings.HasPrefix(again.State.Waiting.Message, "back-off ") || !strings.Contains(again.State.Waiting.Message, "restarting failed container=again pod=clash_default(") {
		t.Errorf("back-off message %q", again.State.Waiting.Message)
	}
	if ok, _ := c.Ready("clash"); ok {
		t.Errorf("a pod with a crashing container is ready")
	}
	stopPod(t, c, log, "clash")
}

// TestRestartPolicyNeverAfterCrash: under restartPolicy Never a container
// that refuses its arguments (http-echo without -text) stays Terminated.
func TestRestartPolicyNeverAfterCrash(t *testing.T) {
	c, log := newCluster(t, 1, plane.ProxyRandom)
	p := agnhost("never")
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	p.Spec.Containers[0].Image, p.Spec.Containers[0].Args = "hashicorp/http-echo", nil
	startPod(t, c, log, 1, 10, p, false)
	rec := log.wait(t, 5*time.Second, "never Terminated", func(r record) bool {
		return r.Kind == recPodStatus && r.Pod == "never" && r.Status.Containers[0].State.Terminated != nil
	})
	if term := rec.Status.Containers[0].State.Terminated; term.ExitCode != 127 || term.Message != "Missing -text option!" {
		t.Errorf("terminated %+v", term)
	}
	time.Sleep(300 * time.Millisecond) // a restart would come at once
	for _, r := range log.all() {
		if r.Kind == recPodStatus && r.Pod == "never" && r.Status.Containers[0].RestartCount > 0 {
			t.Fatalf("restarted under restartPolicy Never: %+v", r.Status.Containers[0])
		}
	}
	stopPod(t, c, log, "never")
}
