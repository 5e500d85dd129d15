package registry

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nplab/nplab/lab/portalloc"
)

// recorder is a Storage that remembers what it was told, in order.
type recorder struct{ ops []string }

func (r *recorder) Put(key string, obj runtime.Object) {
	rv := ""
	if s, ok := obj.(*corev1.Service); ok {
		rv = s.ResourceVersion
	}
	if p, ok := obj.(*corev1.Pod); ok {
		rv = p.ResourceVersion
	}
	r.ops = append(r.ops, "put "+key+" "+rv)
}
func (r *recorder) Delete(key string) { r.ops = append(r.ops, "delete "+key) }

// TestStorageGetsEveryCommittedWrite: creates, updates that change
// something, status updates and deletes reach the storage under etcd's
// keys; failed, dry-run and no-op writes do not.
func TestStorageGetsEveryCommittedWrite(t *testing.T) {
	r := newRegistry(t, Config{})
	rec := &recorder{}
	r.SetStorage(rec)
	if _, err := r.CreateService(svc("web", corev1.ServiceTypeNodePort, port(80, 30080))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateService(svc("web", corev1.ServiceTypeNodePort, port(80, 0))); err == nil {
		t.Fatal("second web created")
	}
	if _, err := r.DryRunCreateService(svc("dry", corev1.ServiceTypeNodePort, port(80, 0))); err != nil {
		t.Fatal(err)
	}
	cur, _ := r.GetService("default", "web")
	if _, err := r.UpdateService(cur); err != nil { // no change
		t.Fatal(err)
	}
	if _, err := r.CreatePod(pod("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdatePodStatus("default", "p", func(p *corev1.Pod) { p.Status.PodIP = "10.244.1.2" }); err != nil {
		t.Fatal(err)
	}
	if err := r.DeletePod("default", "p"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteService("default", "web"); err != nil {
		t.Fatal(err)
	}
	want := "put /registry/services/specs/default/web 2|put /registry/pods/default/p 3|put /registry/pods/default/p 4|delete /registry/pods/default/p|delete /registry/services/specs/default/web"
	if got := strings.Join(rec.ops, "|"); got != want {
		t.Errorf("storage saw\n%s\nwant\n%s", got, want)
	}
}

// TestRestoreRepairsAllocators is the repair controllers' test: Services
// restored into a new registry hold their clusterIPs and nodePorts, so a
// new Service never gets one of them (in a range small enough that a
// fresh allocator would collide), and later resourceVersions are above the
// stored revision. A number two Services claim is reported, naming both.
func TestRestoreRepairsAllocators(t *testing.T) {
	small, _ := portalloc.ParseRange("30000-30019")
	old := newRegistry(t, Config{NodePortRange: small})
	for i := 0; i < 10; i++ {
		if _, err := old.CreateService(svc(fmt.Sprintf("s%d", i), corev1.ServiceTypeNodePort, port(80, 0))); err != nil {
			t.Fatal(err)
		}
	}
	saved := old.ListServices()
	taken := map[int32]bool{}
	ips := map[string]bool{}
	for _, s := range saved {
		for _, p := range s.Spec.Ports {
			taken[p.NodePort] = true
		}
		ips[s.Spec.ClusterIP] = true
	}

	// The same seed: without the repair, it would hand out s0's numbers first.
	r := newRegistry(t, Config{NodePortRange: small})
	if err := r.Restore(saved, nil, nil, 50); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		out, err := r.CreateService(svc(fmt.Sprintf("n%d", i), corev1.ServiceTypeNodePort, port(80, 0)))
		if err != nil {
			t.Fatalf("new Service %d: %v", i, err)
		}
		if taken[out.Spec.Ports[0].NodePort] || ips[out.Spec.ClusterIP] {
			t.Fatalf("new Service %s got %d / %s, held by a restored one", out.Name, out.Spec.Ports[0].NodePort, out.Spec.ClusterIP)
		}
		if i == 0 && out.ResourceVersion != "51" {
			t.Errorf("first resourceVersion after restoring revision 50: %s", out.ResourceVersion)
		}
	}
	if _, err := r.CreateService(svc("full", corev1.ServiceTypeNodePort, port(80, 0))); err == nil {
		t.Error("a 21st nodePort in a 20-port range")
	}
	if !r.ClusterIPAllocated(netip.MustParseAddr(saved[0].Spec.ClusterIP)) {
		t.Error("restored clusterIP not allocated")
	}

	// Two Services with one nodePort: both are kept, the second reported.
	dup := saved[1].DeepCopy()
	dup.Name, dup.Spec.ClusterIP, dup.Spec.ClusterIPs = "dup", "", nil
	r2 := newRegistry(t, Config{NodePortRange: small})
	err := r2.Restore([]*corev1.Service{saved[1], dup}, nil, nil, 0)
	if err == nil || !strings.Contains(err.Error(), `service "dup": spec.ports[0].nodePort: `) {
		t.Errorf("restoring a nodePort twice: %v", err)
	}
	if _, ok := r2.GetService("default", "dup"); !ok {
		t.Error("the second Service was not restored")
	}
}
