package lab

import (
	"fmt"
	corev1 "k8s.io/api/core/v1"
	"reflect"
	"strings"
	"testing"
)

// checkIncremental compares what afterChange keeps up to date change by
// change — endpoints, slices, the State folded from the events, the data
// plane's last sync — with a recomputation from every object, as the
// controllers did before they worked from the registry's change log.
func checkIncremental(t *testing.T, l *Lab, dp *fakeDataPlane, step string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	pods := l.reg.ListPods()
	live := map[string]bool{}
	for _, svc := range l.reg.ListServices() {
		if !managed(svc) {
			continue
		}
		live[svc.Name] = true
		if got, want := l.slices[svc.Name], buildSlices(svc, pods, l.endpoints[svc.Name].CreationTimestamp); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: slices of %s: incremental %+v, from scratch %+v", step, svc.Name, got, want)
		}
		want := buildEndpoints(svc, pods, l.endpoints[svc.Name].CreationTimestamp)
		if got := l.endpoints[svc.Name]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: endpoints of %s: incremental %+v, from scratch %+v", step, svc.Name, got, want)
		}
	}
	for name := range l.slices {
		if !live[name] {
			t.Errorf("%s: slices of %s kept, but it is gone or has no selector", step, name)
		}
	}
	want := l.initialState()
	for _, p := range pods {
		want.Pods[p.Name] = l.podStateOf(p)
	}
	if !reflect.DeepEqual(l.state.Pods, want.Pods) {
		t.Errorf("%s: State.Pods\n got %v\nwant %v", step, l.state.Pods, want.Pods)
	}
	if !reflect.DeepEqual(l.state.Services, want.Services) {
		t.Errorf("%s: State.Services\n got %v\nwant %v", step, l.state.Services, want.Services)
	}
	// The fold of the history is the State (the history is short here).
	var fold State
	fold.Pods, fold.Services = map[string]PodState{}, map[string]ServiceState{}
	for name, ss := range l.initialStateServices() {
		fold.Services[name] = ss
	}
	for _, e := range l.events {
		fold.Apply(e)
	}
	if !reflect.DeepEqual(fold.Pods, l.state.Pods) || !reflect.DeepEqual(fold.Services, l.state.Services) {
		t.Errorf("%s: the fold of the events is not the lab's State", step)
	}
	if dp != nil {
		l.mu.Unlock()
		l.drain()
		l.mu.Lock()
		if got, want := dp.lastSync(), l.servicePorts(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: last SyncServices\n got %+v\nwant %+v", step, got, want)
		}
	}
}

// initialStateServices is the State of a new lab's Services: the kubernetes
// Service, which is there before any event.
func (l *Lab) initialStateServices() map[string]ServiceState {
	return map[string]ServiceState{"kubernetes": l.serviceStateOf(mustService(l, "kubernetes"))}
}

func mustService(l *Lab, name string) *corev1.Service {
	s, _ := l.reg.PeekService(Namespace, name)
	return s
}

const overlapYAML = `apiVersion: v1
kind: Service
metadata:
  name: all
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: blue
spec:
  selector:
    app: web
    color: blue
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: other
spec:
  selector:
    app: other
  ports:
  - port: 81
---
apiVersion: v1
kind: Pod
metadata:
  name: bare
  labels:
    app: web
    color: blue
spec:
  containers:
  - name: c
    image: nginx
    ports:
    - name: http
      containerPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: c
        image: nginx
`

// TestIncrementalMatchesFullRecompute drives a lab through changes that
// move pods in and out of overlapping selectors — new and changed
// Services, pod label changes, readiness, scaling, a selector dropped, a
// type changed to ExternalName, deletions — and checks after each that the
// incremental controllers hold what a pass over every object computes,
// with and without a data plane.
func TestIncrementalMatchesFullRecompute(t *testing.T) {
	for _, withDP := range []bool{false, true} {
		t.Run(fmt.Sprintf("dataplane=%v", withDP), func(t *testing.T) {
			var dp *fakeDataPlane
			if withDP {
				dp = &fakeDataPlane{callback: true}
			}
			l, _ := newLab(t, dp)
			apply := func(step, yaml string) {
				t.Helper()
				for _, r := range l.Apply(step+".yaml", []byte(yaml)) {
					if r.Err != nil {
						t.Fatalf("%s: %v", step, r)
					}
				}
				waitIdle(t, l)
				checkIncremental(t, l, dp, step)
			}
			apply("overlap", overlapYAML)
			// The bare pod leaves "blue" and joins "other".
			apply("relabel", strings.Replace(overlapYAML, "    app: web\n    color: blue\nspec:\n  containers", "    app: other\nspec:\n  containers", 1))
			// "blue" selects app=other now, "all" loses its selector.
			y := strings.Replace(overlapYAML, "    app: web\n    color: blue\n  ports", "    app: other\n  ports", 1)
			y = strings.Replace(y, "  type: NodePort\n  selector:\n    app: web\n", "  type: NodePort\n", 1)
			apply("reselect", y)
			if err := l.Scale("web", 5); err != nil {
				t.Fatal(err)
			}
			waitIdle(t, l)
			checkIncremental(t, l, dp, "scale up")
			name := ""
			for _, p := range l.Pods() {
				if strings.HasPrefix(p.Name, "web-") {
					name = p.Name
				}
			}
			if !withDP {
				if err := l.Inject(Fault{Kind: FaultPodUnready, Pod: name}); err != nil {
					t.Fatal(err)
				}
				checkIncremental(t, l, dp, "unready")
			}
			if err := l.Delete("pod", "", name); err != nil {
				t.Fatal(err)
			}
			waitIdle(t, l)
			checkIncremental(t, l, dp, "delete pod")
			apply("externalname", `apiVersion: v1
kind: Service
metadata:
  name: other
spec:
  type: ExternalName
  externalName: example.com
`)
			if err := l.Delete("service", "", "blue"); err != nil {
				t.Fatal(err)
			}
			checkIncremental(t, l, dp, "delete service")
			if err := l.Scale("web", 0); err != nil {
				t.Fatal(err)
			}
			waitIdle(t, l)
			checkIncremental(t, l, dp, "scale to 0")
			if err := l.Delete("deployment", "", "web"); err != nil {
				t.Fatal(err)
			}
			waitIdle(t, l)
			checkIncremental(t, l, dp, "delete deployment")
		})
	}
}

// TestPodChangeTouchesOnlyItsServices: in a lab with many Services, a pod's
// change recomputes the endpoints of the Services that select it, not of
// every Service (issue 12: the control plane was quadratic because it did).
func TestPodChangeTouchesOnlyItsServices(t *testing.T) {
	l, _ := newLab(t, nil)
	const n = 300
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%d\nspec:\n  selector:\n    app: app-%d\n  ports:\n  - port: 80\n", i, i%100)
	}
	b.WriteString("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    app: app-7\nspec:\n  containers:\n  - name: c\n    image: nginx\n")
	builds := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.endpointBuilds
	}
	before := builds()
	for _, r := range l.Apply("many.yaml", []byte(b.String())) {
		if r.Err != nil {
			t.Fatal(r)
		}
	}
	// Each Service once when created, then the three that select app-7
	// when the pod arrives.
	if got := builds() - before; got != n+3 {
		t.Errorf("applying %d Services and a pod recomputed %d Services' endpoints, want %d", n, got, n+3)
	}
	before = builds()
	if err := l.Inject(Fault{Kind: FaultPodUnready, Pod: "p"}); err != nil {
		t.Fatal(err)
	}
	if got := builds() - before; got != 3 {
		t.Errorf("a pod's readiness change recomputed %d Services' endpoints, want the 3 that select it", got)
	}
	before = builds()
	if err := l.Delete("service", "", "svc-0"); err != nil {
		t.Fatal(err)
	}
	if got := builds() - before; got != 0 {
		t.Errorf("deleting a Service recomputed %d Services' endpoints, want 0", got)
	}
	for _, s := range []string{"svc-7", "svc-107", "svc-207"} {
		eps := l.EndpointSlices(s)
		if len(eps) != 1 || len(eps[0].Endpoints) != 1 || eps[0].Endpoints[0].TargetRef.Name != "p" || *eps[0].Endpoints[0].Conditions.Ready {
			t.Errorf("%s: slices %+v, want pod p, not ready", s, eps)
		}
	}
}
