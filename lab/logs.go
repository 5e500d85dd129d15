package lab

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nplab/nplab/lab/plane"
)

// LogOptions are the options of `kubectl logs` the lab answers
// (PodLogOptions' container and previous; the rest — tail, since,
// timestamps, follow — are the API endpoint's, over the lines).
type LogOptions struct {
	Container string
	Previous  bool
}

// Logs returns a container's log, as the API server's pods/log does: it
// names the container when the pod has one (or says which to choose
// from), and asks the kubelet — the data plane — for the lines, whose
// errors are the kubelet's ("... is waiting to start: ContainerCreating").
// A pod not yet on a node, or a lab without a data plane, has printed
// nothing.
func (l *Lab) Logs(pod string, opts LogOptions) ([]plane.LogLine, error) {
	l.mu.Lock()
	p, ok := l.reg.GetPod(Namespace, pod)
	_, started := l.podIPs[pod]
	l.mu.Unlock()
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, pod)
	}
	container := opts.Container
	names := func(cs []corev1.Container) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return strings.Join(out, " ")
	}
	if container == "" {
		switch len(p.Spec.Containers) {
		case 1:
			container = p.Spec.Containers[0].Name
		case 0:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", pod))
		default:
			msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: [%s]", pod, names(p.Spec.Containers))
			if len(p.Spec.InitContainers) > 0 {
				msg += fmt.Sprintf(" or one of the init containers: [%s]", names(p.Spec.InitContainers))
			}
			return nil, apierrors.NewBadRequest(msg)
		}
	} else if !hasContainer(p, container) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, pod))
	}
	if l.dp == nil || p.Spec.NodeName == "" || !started {
		return nil, nil
	}
	lines, err := l.dp.Logs(pod, container, opts.Previous)
	var nf *plane.NotFoundError
	switch {
	case errors.As(err, &nf):
		// Bound, not yet started by the data plane.
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, pod))
	case err != nil:
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return lines, nil
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}
