//go:build linux

package dataplane_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	_ "github.com/nplab/nplab/lab/dataplane"
	"github.com/nplab/nplab/lab/plane"
)

// labName is the prefix and five random characters: parallel runs and
// leftovers never collide.
func labName(prefix string) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return prefix + string(b)
}

// deployment is the default lab's Deployment and NodePort Service (agnhost
// netexec with its /readyz readiness probe, nodePort 30080) with replicas
// pods.
func deployment(replicas int) []byte {
	return []byte(strings.Replace(string(lab.DefaultManifest), "replicas: 3", fmt.Sprintf("replicas: %d", replicas), 1))
}

// upResult is what one lab up and down measured.
type upResult struct {
	up, down time.Duration
}

// labUpDown starts a lab of nodes nodes and nodes×pods pods, as `nplab up
// --nodes N -f <a Deployment of N×P replicas>` does, waits until every pod
// is ready and a request from the outside client through node-1's
// NodePort is answered by a pod (up), then closes the lab and checks that
// nothing of it is left (down): no namespace under /run/netns, no state
// file. Probes run in real time (ProbeScale 1), as for a user.
func labUpDown(tb testing.TB, name string, nodes, pods int) upResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := lab.Start(ctx, lab.Config{Name: name, Nodes: nodes})
	if err != nil {
		tb.Fatalf("lab %s: %v", name, err)
	}
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	w := r.Watch()
	want := nodes * pods
	for _, res := range r.Apply("bench.yaml", deployment(want)) {
		if res.Err != nil {
			tb.Fatalf("lab %s: apply: %v", name, res)
		}
	}
	ready := map[string]bool{}
	for len(ready) < want {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				tb.Fatalf("lab %s: the event stream ended (%v) with %d of %d pods ready", name, w.Err(), len(ready), want)
			}
			switch ev.Type {
			case lab.EventPodReady:
				ready[ev.Object] = true
			case lab.EventFailed, lab.EventWarning:
				tb.Fatalf("lab %s: %s %s: %s", name, ev.Type, ev.Object, ev.Message)
			}
		case <-ctx.Done():
			tb.Fatalf("lab %s: %d of %d pods ready after %v", name, len(ready), want, time.Since(start))
		}
	}
	w.Stop()
	target := netip.AddrPortFrom(r.Nodes()[0].IP, 30080)
	for {
		rep, err := r.Send(ctx, plane.Request{From: plane.ClientHost, Protocol: "TCP", Target: target, Message: "/hostname", Timeout: time.Second})
		if err == nil && rep.Result == plane.FlowOK && strings.HasPrefix(strings.TrimSpace(rep.Body), "web-") {
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("lab %s: no answer through %v: %v %v", name, target, rep.Result, err)
		}
		time.Sleep(time.Millisecond)
	}
	up := time.Since(start)

	start = time.Now()
	closed = true
	if err := r.Close(); err != nil {
		tb.Fatalf("lab %s: close: %v", name, err)
	}
	down := time.Since(start)
	left, _ := filepath.Glob("/run/netns/nplab-" + name + "-*")
	if len(left) > 0 {
		tb.Fatalf("lab %s: %d namespaces left after Close: %v", name, len(left), left[:min(len(left), 5)])
	}
	if _, err := os.Stat("/run/nplab/" + name + ".json"); !errors.Is(err, os.ErrNotExist) {
		tb.Fatalf("lab %s: state file left after Close (%v)", name, err)
	}
	return upResult{up: up, down: down}
}

// BenchmarkLabUp times a whole lab, as a user meets it: up (namespaces,
// links, every pod started and ready, the first request through a
// NodePort answered) and down (Close returned, nothing left), for 3 nodes
// × 2 pods and 100 nodes × 5 pods. It reports up-s/op and down-s/op;
// ns/op is both together. Root only.
//
//	sudo go test -run xxx -bench BenchmarkLabUp -benchtime 3x ./lab/dataplane
func BenchmarkLabUp(b *testing.B) {
	testenv.RequireRoot(b)
	for _, size := range []struct{ nodes, pods int }{{3, 2}, {100, 5}} {
		b.Run(fmt.Sprintf("%dx%d", size.nodes, size.pods), func(b *testing.B) {
			var up, down time.Duration
			for b.Loop() {
				r := labUpDown(b, labName("lu"), size.nodes, size.pods)
				up += r.up
				down += r.down
			}
			b.ReportMetric(up.Seconds()/float64(b.N), "up-s/op")
			b.ReportMetric(down.Seconds()/float64(b.N), "down-s/op")
		})
	}
}
