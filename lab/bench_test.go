package lab_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// TestBenchNeedsADataPlane: a control-plane-only lab has nothing to
// measure, and says so.
func TestBenchNeedsADataPlane(t *testing.T) {
	l, err := lab.New(lab.Config{Name: "nodp"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Bench(context.Background(), lab.BenchService, plane.BenchSpec{}); !errors.Is(err, lab.ErrNoDataPlane) {
		t.Errorf("Bench without a data plane: %v, want ErrNoDataPlane", err)
	}
}

// TestBenchManifestValidates: the bench lab's manifest is accepted as it
// is by the control plane, its pod on node-1, its Service a NodePort with
// a TCP and a UDP port.
func TestBenchManifestValidates(t *testing.T) {
	l, err := lab.New(lab.Config{Name: "bm", Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, r := range l.ApplyFiles(lab.File{Name: "bench.yaml", Data: lab.BenchManifest}) {
		if r.Err != nil {
			t.Fatalf("%s", r.String())
		}
	}
	var tcp, udp bool
	for _, sp := range l.ServicePorts() {
		if sp.Service != "default/"+lab.BenchService || sp.NodePort == 0 {
			continue
		}
		tcp = tcp || sp.Protocol == "TCP"
		udp = udp || sp.Protocol == "UDP"
		if len(sp.Endpoints) != 1 || sp.Endpoints[0].Node != "node-1" || sp.Endpoints[0].Addr.Port() != 5201 {
			t.Errorf("%s %s endpoints %+v, want the bench pod on node-1, port 5201", sp.Service, sp.Protocol, sp.Endpoints)
		}
	}
	if !tcp || !udp {
		t.Errorf("service %q: TCP nodePort %v, UDP nodePort %v; want both", lab.BenchService, tcp, udp)
	}
}

// TestTimeLab times a small lab: it comes up (a request through a
// NodePort is answered), goes away (no namespace is listed) and leaves
// nothing behind.
func TestTimeLab(t *testing.T) {
	testenv.RequireRoot(t)
	name := labName()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tm, err := lab.TimeLab(ctx, lab.Config{Name: name, Nodes: 2}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Nodes != 2 || tm.Pods != 4 || tm.Up <= 0 || tm.Down <= 0 {
		t.Errorf("TimeLab = %+v", tm)
	}
	if err := lab.WaitRemoved(ctx, name); err != nil {
		t.Error(err)
	}
	t.Logf("2 nodes × 2 pods: up %s, down %s", tm.Up, tm.Down)
}

// TestLoadTimeLab100 times the 100 nodes × 5 pods lab of `nplab bench`.
// It takes tens of seconds on a busy 2-core machine, so it runs with
// NPLAB_LOAD=1 only.
func TestLoadTimeLab100(t *testing.T) {
	if os.Getenv("NPLAB_LOAD") != "1" {
		t.Skip("skipping: a 100-node lab takes tens of seconds (run with NPLAB_LOAD=1)")
	}
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tm, err := lab.TimeLab(ctx, lab.Config{Name: labName(), Nodes: 100}, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("100 nodes × 5 pods: up %s, down %s", tm.Up, tm.Down)
}
