package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The control plane's apply benchmarks (issue 12): `go test -bench Apply
// -benchmem ./lab`. Each size is its own sub-benchmark, so one run shows
// how the cost per object grows with the object count: ns/op divided by
// the size should stay flat from 250 to 2,000. They need no root (lab.New,
// no data plane).

// benchSizes are the object counts every scaling benchmark runs.
var benchSizes = []int{250, 500, 1000, 2000}

// servicesManifest is n NodePort Services in one manifest, each with a
// selector of its own (no pods), their nodePorts auto-allocated.
func servicesManifest(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: svc-%d
spec:
  type: NodePort
  selector:
    app: app-%d
  ports:
  - name: http
    port: 80
    targetPort: 8080
`, i, i)
	}
	return []byte(b.String())
}

// podsManifest is a Deployment of n agnhost replicas and the NodePort
// Service that selects them.
func podsManifest(n int) []byte {
	return []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec", "--http-port=8080"]
        ports:
        - name: http
          containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
`, n))
}

// barePodsManifest is n Pod objects (no Deployment) behind one Service.
func barePodsManifest(n int) []byte {
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
`)
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata:
  name: web-%d
  labels:
    app: web
spec:
  containers:
  - name: agnhost
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
`, i)
	}
	return []byte(b.String())
}

// benchApply applies manifest to a fresh control-plane lab per iteration
// (lab.New, no data plane) with room for pods pods, waits until the
// controllers are idle, and fails on any rejected object.
func benchApply(b *testing.B, manifest []byte, pods int) {
	b.Helper()
	b.ReportAllocs()
	nodes := pods/100 + 1 // MaxPods is 110 per node: every pod gets one
	for b.Loop() {
		l, err := New(Config{Name: "bench", Nodes: nodes,
			Rand: rand.New(rand.NewPCG(1, 2)),
			Now:  func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range l.Apply("bench.yaml", manifest) {
			if r.Err != nil {
				b.Fatal(r)
			}
		}
		if err := l.WaitIdle(context.Background()); err != nil {
			b.Fatal(err)
		}
		if pods > 0 {
			if got := len(l.Pods()); got != pods {
				b.Fatalf("%d pods, want %d", got, pods)
			}
		}
		l.Close()
	}
}

// BenchmarkApply2000Services is the figure: 2,000 NodePort
// Services in one manifest.
func BenchmarkApply2000Services(b *testing.B) { benchApply(b, servicesManifest(2000), 0) }

// BenchmarkApply500Pods is the figure: a Deployment of 500
// replicas and its Service, until the controllers are idle.
func BenchmarkApply500Pods(b *testing.B) { benchApply(b, podsManifest(500), 500) }

// BenchmarkApplyServices applies 250 to 2,000 NodePort Services.
func BenchmarkApplyServices(b *testing.B) {
	for _, n := range benchSizes {
		m := servicesManifest(n)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { benchApply(b, m, 0) })
	}
}

// BenchmarkApplyDeployment applies a Deployment of 250 to 2,000 replicas
// and the Service selecting them.
func BenchmarkApplyDeployment(b *testing.B) {
	for _, n := range benchSizes {
		m := podsManifest(n)
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) { benchApply(b, m, n) })
	}
}

// BenchmarkApplyBarePods applies 250 to 2,000 Pod objects, one apply
// each, behind one Service: every pod changes that Service's endpoints.
func BenchmarkApplyBarePods(b *testing.B) {
	for _, n := range benchSizes {
		m := barePodsManifest(n)
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) { benchApply(b, m, n) })
	}
}

// BenchmarkApplyServicesDataPlane applies 250 to 2,000 NodePort Services
// to a lab with a data plane (the tests' fake one, which only records),
// so the service ports the lab builds and queues for it are in the cost.
func BenchmarkApplyServicesDataPlane(b *testing.B) {
	for _, n := range benchSizes {
		m := servicesManifest(n)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dp := &fakeDataPlane{}
				l, err := New(Config{Name: "bench", Rand: rand.New(rand.NewPCG(1, 2)), DataPlane: dp.factory})
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range l.Apply("bench.yaml", m) {
					if r.Err != nil {
						b.Fatal(r)
					}
				}
				if err := l.WaitIdle(context.Background()); err != nil {
					b.Fatal(err)
				}
				if got := len(dp.lastSync()); got != n+1 {
					b.Fatalf("the data plane got %d service ports, want %d", got, n+1)
				}
				l.Close()
			}
		})
	}
}
