package lab_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

func labName() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := []byte("s")
	for range 5 {
		b = append(b, letters[rand.IntN(len(letters))])
	}
	return string(b)
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitFor polls cond every 50ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartDefaultLab runs the default lab for real: the manifests go
// through the control plane, pods start in namespaces, readiness comes back
// from the probes, and the client reaches every pod through every node.
func TestStartDefaultLab(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	r, err := lab.Start(ctx, lab.Config{Name: labName()}, lab.RunOptions{ProbeScale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for _, res := range r.Apply("default.yaml", lab.DefaultManifest) {
		if res.Err != nil {
			t.Fatalf("applying the default lab: %v", res)
		}
	}
	waitFor(t, 20*time.Second, "3 ready pods", func() bool {
		n := 0
		for _, p := range r.Pods() {
			if isReady(p) {
				n++
			}
		}
		return n == 3
	})
	pods := map[string]string{} // name → node
	for _, p := range r.Pods() {
		pods[p.Name] = p.Spec.NodeName
	}
	var svc *corev1.Service
	for _, s := range r.Services() {
		if s.Name == "web" {
			svc = s
		}
	}
	if svc == nil || svc.Spec.Ports[0].NodePort != 30080 {
		t.Fatalf("service web with nodePort 30080 missing: %+v", svc)
	}

	for _, proto := range []string{"TCP", "UDP"} {
		for _, n := range r.Nodes() {
			seen := map[string]bool{}
			for try := 0; try < 40 && len(seen) < len(pods); try++ {
				req := plane.Request{From: plane.ClientHost, Protocol: proto,
					Target: netip.AddrPortFrom(n.IP, 30080), Message: "/hostname", Timeout: 2 * time.Second}
				if proto == "UDP" {
					req.Message = "hostname"
				}
				rep, err := r.Send(ctx, req)
				if err != nil || rep.Result != plane.FlowOK {
					t.Fatalf("%s via %s: %v %v", proto, n.Name, rep.Result, err)
				}
				name := strings.TrimSpace(rep.Body)
				if _, ok := pods[name]; !ok {
					t.Fatalf("%s via %s answered %q, not one of the pods %v", proto, n.Name, name, pods)
				}
				seen[name] = true
			}
			if len(seen) != len(pods) {
				t.Errorf("%s via %s reached %d of %d pods in 40 tries: %v", proto, n.Name, len(seen), len(pods), seen)
			}
		}
	}

	// Every connection is an event on the lab's one stream.
	flows := 0
	for _, e := range r.Events() {
		if e.Type == lab.EventFlow && strings.Contains(e.Message, "→ pod ") {
			flows++
		}
	}
	if flows == 0 {
		t.Errorf("no Flow events on the lab's stream")
	}

	// Deleting a pod: terminating, then gone once the node agent stopped
	// it; the Deployment replaces it and the new pod answers.
	var victim string
	for name := range pods {
		victim = name
		break
	}
	if err := r.Delete("pod", lab.Namespace, victim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range r.Events() {
				if e.Type != lab.EventFlow {
					t.Log(e)
				}
			}
		}
	})
	waitFor(t, 20*time.Second, "the deleted pod to be gone and a replacement ready", func() bool {
		ready := 0
		for _, p := range r.Pods() {
			if p.Name == victim {
				return false
			}
			if isReady(p) {
				ready++
			}
		}
		return ready == 3
	})
}
