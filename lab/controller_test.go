package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// checkSchedulerCache compares the scheduler's per-node counts with the
// pods the API server has.
func checkSchedulerCache(t *testing.T, l *Lab) {
	t.Helper()
	want := make([]int, len(l.topo.Nodes))
	for _, p := range l.Pods() {
		if i := l.nodeIndex(p.Spec.NodeName); i >= 0 {
			want[i]++
		}
	}
	l.mu.Lock()
	got := append([]int(nil), l.ctrl.nodePods...)
	l.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("scheduler cache: pods per node %v, API server has %v", got, want)
	}
}

func podPhases(l *Lab) (running, pending int) {
	for _, p := range l.Pods() {
		switch p.Status.Phase {
		case corev1.PodRunning:
			running++
		case corev1.PodPending:
			pending++
		}
	}
	return
}

// TestBurstReplicas: one sync creates at most BurstReplicas pods, and
// deletes at most as many; a Deployment with work left is synced again.
func TestBurstReplicas(t *testing.T) {
	l, _ := newLab(t, nil)
	l.PauseControllers()
	if r := l.Apply("d.yaml", []byte(strings.ReplaceAll(deploymentYAML, "REPLICAS", "1001"))); r[0].Err != nil {
		t.Fatal(r[0])
	}
	if n := len(l.Pods()); n != 0 {
		t.Fatalf("%d pods before any sync: Apply must only queue the Deployment", n)
	}
	for i, want := range []int{500, 1000, 1001} {
		if ran := l.SyncOnce(); ran != 1 {
			t.Fatalf("sync %d: SyncOnce ran %d syncs, want 1", i+1, ran)
		}
		if n := len(l.Pods()); n != want {
			t.Fatalf("after sync %d: %d pods, want %d", i+1, n, want)
		}
	}
	if ran := l.SyncOnce(); ran != 0 {
		t.Errorf("SyncOnce ran %d syncs with nothing queued", ran)
	}
	if running, pending := podPhases(l); running != 3*MaxPods || pending != 1001-3*MaxPods {
		t.Errorf("%d Running, %d Pending; want %d, %d", running, pending, 3*MaxPods, 1001-3*MaxPods)
	}
	checkSchedulerCache(t, l)

	if err := l.Scale("many", 0); err != nil {
		t.Fatal(err)
	}
	l.SyncOnce()
	if n := len(l.Pods()); n != 501 {
		t.Errorf("after one scale-down sync: %d pods, want 501", n)
	}
	checkSchedulerCache(t, l)
	l.ResumeControllers()
	waitIdle(t, l)
	if n := len(l.Pods()); n != 0 {
		t.Errorf("after the worker resumed: %d pods, want 0", n)
	}
	checkSchedulerCache(t, l)
}

// TestSlowStartBatch: batches of 1, 2, 4, ...; every call of the batch
// with the first failure is made, then no more.
func TestSlowStartBatch(t *testing.T) {
	calls := 0
	n, err := slowStartBatch(20, 1, func() error {
		calls++
		if calls == 5 {
			return errors.New("boom")
		}
		return nil
	})
	// batches 1 | 2 | 4: the failure is call 5, in the third batch (calls 4-7).
	if calls != 7 || n != 6 || err == nil || err.Error() != "boom" {
		t.Errorf("calls %d, successes %d, err %v; want 7, 6, boom", calls, n, err)
	}
	calls = 0
	n, err = slowStartBatch(20, 1, func() error { calls++; return nil })
	if calls != 20 || n != 20 || err != nil { // 1+2+4+8+5
		t.Errorf("calls %d, successes %d, err %v; want 20, 20, nil", calls, n, err)
	}
}

// TestFailedSyncIsNotRetried: a template that cannot make a pod costs one
// failed creation per sync (slow start), and the worker does not spin on it.
func TestFailedSyncIsNotRetried(t *testing.T) {
	l, _ := newLab(t, nil)
	dep := strings.ReplaceAll(deploymentYAML, "REPLICAS", "40")
	dep = strings.Replace(dep, "    spec:\n", "    spec:\n      nodeName: node-9\n", 1)
	if r := l.Apply("d.yaml", []byte(dep)); r[0].Err != nil {
		t.Fatal(r[0])
	}
	waitIdle(t, l)
	var failed int
	for _, e := range l.Events() {
		if e.Type == EventFailed && e.Object == "deployment.apps/many" {
			failed++
		}
	}
	if failed != 1 || len(l.Pods()) != 0 {
		t.Errorf("%d Failed events and %d pods, want 1 and 0", failed, len(l.Pods()))
	}
}

// TestDeterministicControllers: with a seeded Rand and a fixed clock, the
// same apply followed by WaitIdle gives the same pods, nodes and IPs.
func TestDeterministicControllers(t *testing.T) {
	manifest := strings.ReplaceAll(deploymentYAML, "REPLICAS", "520") + "---\n" + string(DefaultManifest)
	run := func() string {
		l, err := New(Config{Name: "det", Rand: rand.New(rand.NewPCG(3, 4)), Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.Apply("m.yaml", []byte(manifest))
		waitIdle(t, l)
		var b strings.Builder
		for _, p := range l.Pods() {
			fmt.Fprintf(&b, "%s %s %s %s\n", p.Name, p.Spec.NodeName, p.Status.PodIP, p.Status.Phase)
		}
		for _, e := range l.Events() {
			b.WriteString(e.String() + "\n")
		}
		return b.String()
	}
	first := run()
	if again := run(); again != first {
		t.Fatal("a second run differs from the first")
	}
}

// TestWaitIdle: WaitIdle ends with ctx while work is queued and the
// controllers are paused, and with ErrClosed once the lab is closed.
func TestWaitIdle(t *testing.T) {
	l, err := New(Config{Name: "idle", Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.WaitIdle(context.Background()); err != nil {
		t.Fatalf("WaitIdle on a new lab: %v", err)
	}
	l.PauseControllers()
	l.Apply("d.yaml", []byte(strings.ReplaceAll(deploymentYAML, "REPLICAS", "3")))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.WaitIdle(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitIdle while paused with work queued = %v, want context.DeadlineExceeded", err)
	}
	l.Close()
	if err := l.WaitIdle(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitIdle after Close with work queued = %v, want ErrClosed", err)
	}
}

// TestCloseStopsWorker: Close stops the controller worker, even in the
// middle of a long job, and waits for it: no goroutine is left behind.
func TestCloseStopsWorker(t *testing.T) {
	workers := func() int {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				return strings.Count(string(buf[:n]), "created by github.com/nplab/nplab/lab.(*Lab).startControllers")
			}
			buf = make([]byte, 2*len(buf))
		}
	}
	before := workers()
	l, err := New(Config{Name: "close", Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	if got := workers(); got != before+1 {
		t.Fatalf("%d controller workers running after New, want %d", got, before+1)
	}
	// 30080 pods is a minute of work: Close must not wait for all of it.
	l.Apply("d.yaml", []byte(strings.ReplaceAll(deploymentYAML, "REPLICAS", "30080")))
	for len(l.Pods()) == 0 { // the worker is at work
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	l.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	select {
	case <-l.ctrl.done:
	default:
		t.Fatal("Close returned before the worker did")
	}
	// The worker closes done on its way out; give it a moment to be gone.
	deadline := time.Now().Add(2 * time.Second)
	for workers() != before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := workers(); got != before {
		t.Errorf("%d controller workers running after Close, want %d", got, before)
	}
	l.Close() // twice is fine
}
