package lab

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nplab/nplab/lab/plane"
)

// The kubelet's status manager, on the control plane's side: the data
// plane reports its containers (plane.Control.PodStatus) and the lab stores
// them in the pod's status and derives what the kubelet would: the phase
// (getPhase), the Initialized condition, and each container's Ready (the
// pod's readiness, which the data plane reports with PodReady, and only for
// a running container). `kubectl get pods` then prints Init:0/1, Error,
// CrashLoopBackOff, Completed and the restart counts from it, as it does on
// a cluster.

// podStatus stores a pod's container statuses as the data plane reports
// them. It does not wait for the data plane.
func (l *Lab) podStatus(name string, st plane.PodStatus) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.reg.GetPod(Namespace, name)
	if !ok {
		return fmt.Errorf("pod %q: not found", name)
	}
	prevInit := old.Status.InitContainerStatuses
	prev := old.Status.ContainerStatuses
	now := metav1.NewTime(l.now())
	out, err := l.reg.UpdatePodStatus(Namespace, name, func(p *corev1.Pod) {
		applyContainerStatuses(p, st, now)
	})
	if err != nil {
		return err
	}
	ref := "pod/" + name
	for _, ev := range containerEvents(out, prevInit, out.Status.InitContainerStatuses, true) {
		l.emit(ev.t, ref, "%s", ev.msg)
	}
	for _, ev := range containerEvents(out, prev, out.Status.ContainerStatuses, false) {
		l.emit(ev.t, ref, "%s", ev.msg)
	}
	l.endpointsSoon() // the worker runs afterChange (controller.go)
	return nil
}

// applyContainerStatuses sets p's container statuses from st and what
// follows from them: each container's Ready and Started, the Initialized
// condition and the phase.
func applyContainerStatuses(p *corev1.Pod, st plane.PodStatus, now metav1.Time) {
	ready := podReady(p)
	p.Status.InitContainerStatuses = cloneStatuses(st.InitContainers)
	for i := range p.Status.InitContainerStatuses {
		c := &p.Status.InitContainerStatuses[i]
		c.Ready = c.State.Terminated != nil && c.State.Terminated.ExitCode == 0
		c.Started = ptr(c.State.Running != nil)
	}
	p.Status.ContainerStatuses = cloneStatuses(st.Containers)
	for i := range p.Status.ContainerStatuses {
		c := &p.Status.ContainerStatuses[i]
		c.Ready = ready && c.State.Running != nil
		c.Started = ptr(c.State.Running != nil)
	}
	setCondition(p, corev1.PodInitialized, initialized(&p.Spec, p.Status.InitContainerStatuses), now)
	p.Status.Phase = podPhase(&p.Spec, p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
}

func cloneStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if in == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}

// setCondition sets condition t to v, moving its LastTransitionTime only
// when it changes.
func setCondition(p *corev1.Pod, t corev1.PodConditionType, v bool, now metav1.Time) {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == t {
			if c.Status != condStatus(v) {
				c.Status = condStatus(v)
				c.LastTransitionTime = now
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: condStatus(v), LastTransitionTime: now})
}

// initialized is the Initialized condition: every init container has
// terminated with exit code 0.
func initialized(spec *corev1.PodSpec, inits []corev1.ContainerStatus) bool {
	for _, c := range spec.InitContainers {
		s := findStatus(inits, c.Name)
		if s == nil || s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			return false
		}
	}
	return true
}

func findStatus(ss []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range ss {
		if ss[i].Name == name {
			return &ss[i]
		}
	}
	return nil
}

// podPhase is the kubelet's getPhase (pkg/kubelet/kubelet_pods.go) for
// regular init containers: a failed init container fails a pod whose
// restartPolicy is Never, and keeps any other Pending; a container that
// terminated and waits to restart counts as stopped; all stopped under
// restartPolicy Always is still Running (restarting).
func podPhase(spec *corev1.PodSpec, inits, ctrs []corev1.ContainerStatus) corev1.PodPhase {
	pendingInit, failedInit := 0, 0
	for _, c := range spec.InitContainers {
		s := findStatus(inits, c.Name)
		switch {
		case s == nil:
			pendingInit++
		case s.State.Running != nil:
			pendingInit++
		case s.State.Terminated != nil:
			if s.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case s.State.Waiting != nil:
			if t := s.LastTerminationState.Terminated; t != nil {
				if t.ExitCode != 0 {
					failedInit++
				}
			} else {
				pendingInit++
			}
		default:
			pendingInit++
		}
	}
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for _, c := range spec.Containers {
		s := findStatus(ctrs, c.Name)
		switch {
		case s == nil:
			unknown++
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}
	switch {
	case pendingInit > 0 || failedInit > 0:
		return corev1.PodPending
	case waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if spec.RestartPolicy == corev1.RestartPolicyAlways || spec.RestartPolicy == "" {
			return corev1.PodRunning // restarting
		}
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
		if spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		return corev1.PodRunning // OnFailure: restarting
	}
	return corev1.PodPending
}

type containerEvent struct {
	t   EventType
	msg string
}

// containerEvents are the kubelet's events for what changed between two
// reports of a pod's containers: a container that exited, one waiting in
// CrashLoopBackOff (the kubelet's BackOff warning, with its text), one
// restarted.
func containerEvents(p *corev1.Pod, before, after []corev1.ContainerStatus, init bool) []containerEvent {
	kind := "container"
	if init {
		kind = "init container"
	}
	var out []containerEvent
	for _, s := range after {
		was := findStatus(before, s.Name)
		if t := s.State.Terminated; t != nil && (was == nil || was.State.Terminated == nil) {
			msg := fmt.Sprintf("%s %s exited with code %d (%s)", kind, s.Name, t.ExitCode, t.Reason)
			if t.Message != "" {
				msg += ": " + t.Message
			}
			typ := EventNotice
			if t.ExitCode != 0 {
				typ = EventWarning
			}
			out = append(out, containerEvent{typ, msg})
		}
		if w := s.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" &&
			(was == nil || was.State.Waiting == nil || was.State.Waiting.Message != w.Message) {
			// kubelet's events.BackOffStartContainer.
			out = append(out, containerEvent{EventWarning, fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s): %s",
				s.Name, p.Name, p.Namespace, p.UID, w.Message)})
		}
		if was != nil && s.RestartCount > was.RestartCount && s.State.Running != nil {
			out = append(out, containerEvent{EventNotice, fmt.Sprintf("%s %s restarted (restart %d)", kind, s.Name, s.RestartCount)})
		}
	}
	return out
}
