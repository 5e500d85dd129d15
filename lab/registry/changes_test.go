package registry

import (
	"fmt"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func changes(r *Registry) string {
	c := r.TakeChanges()
	sort.Strings(c.Pods)
	sort.Strings(c.Services)
	return fmt.Sprintf("pods %v services %v", c.Pods, c.Services)
}

// TestTakeChanges: every stored write of a Pod or Service is in the change
// log once; dry runs, failed writes and writes that change nothing are not.
func TestTakeChanges(t *testing.T) {
	r := newRegistry(t, Config{})
	if got, want := changes(r), "pods [] services [default/kubernetes]"; got != want {
		t.Errorf("new registry: %s, want %s", got, want)
	}
	s := svc("web", corev1.ServiceTypeNodePort, port(80, 0))
	if _, err := r.DryRunCreateService(s); err != nil {
		t.Fatal(err)
	}
	if got, want := changes(r), "pods [] services []"; got != want {
		t.Errorf("after a dry run: %s, want %s", got, want)
	}
	out, err := r.CreateService(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateService(s); err == nil {
		t.Fatal("second create succeeded")
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}
	if _, err := r.CreatePod(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdatePodStatus("", "p", func(p *corev1.Pod) { p.Status.PodIP = "10.244.1.2" }); err != nil {
		t.Fatal(err)
	}
	if got, want := changes(r), "pods [default/p] services [default/web]"; got != want {
		t.Errorf("after creates: %s, want %s", got, want)
	}
	if _, err := r.UpdateService(out); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdatePodStatus("", "p", func(p *corev1.Pod) { p.Status.PodIP = "10.244.1.2" }); err != nil {
		t.Fatal(err)
	}
	if got, want := changes(r), "pods [] services []"; got != want {
		t.Errorf("after updates that change nothing: %s, want %s", got, want)
	}
	peeked, _ := r.PeekPod("", "p")
	if _, err := r.UpdatePodStatus("", "p", func(p *corev1.Pod) { p.Status.PodIP = "10.244.1.3" }); err != nil {
		t.Fatal(err)
	}
	if peeked.Status.PodIP != "10.244.1.2" {
		t.Errorf("a peeked pod changed under its reader: podIP %s", peeked.Status.PodIP)
	}
	if err := r.DeleteService("", "web"); err != nil {
		t.Fatal(err)
	}
	if got, want := changes(r), "pods [default/p] services [default/web]"; got != want {
		t.Errorf("after a status change and a delete: %s, want %s", got, want)
	}
	if _, err := r.CreateDeployment(deployment("d", 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteDeployment("", "d"); err != nil {
		t.Fatal(err)
	}
	if c := r.TakeChanges(); fmt.Sprint(c.Deployments) != "[default/d]" {
		t.Errorf("after a Deployment's create and delete: %+v, want deployment default/d", c)
	}
}
