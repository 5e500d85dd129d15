package lab

import (
	"context"
	"errors"
	"testing"

	"github.com/nplab/nplab/lab/plane"
)

// benchingDataPlane is a fake data plane that can bench: it records the
// target it was given.
type benchingDataPlane struct {
	fakeDataPlane
	target plane.BenchTarget
	spec   plane.BenchSpec
}

func (b *benchingDataPlane) Bench(ctx context.Context, t plane.BenchTarget, spec plane.BenchSpec) ([]plane.BenchPath, error) {
	b.target, b.spec = t, spec
	return []plane.BenchPath{{Path: plane.PathDirect}}, nil
}

func (b *benchingDataPlane) factory(_ context.Context, _ plane.Topology, _ plane.Options, ctl plane.Control) (plane.DataPlane, error) {
	b.ctl = ctl
	return b, nil
}

// TestBenchResolvesTheTarget: Bench hands the data plane the bench pod,
// its node, another node for the hop, the pod's TCP and UDP addresses and
// both nodePorts, as the control plane allocated them.
func TestBenchResolvesTheTarget(t *testing.T) {
	dp := &benchingDataPlane{fakeDataPlane: fakeDataPlane{callback: true}}
	l, err := New(Config{Name: "bt", Nodes: 3, DataPlane: dp.factory})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, r := range l.ApplyFiles(File{Name: "bench.yaml", Data: BenchManifest}) {
		if r.Err != nil {
			t.Fatal(r.String())
		}
	}
	paths, err := l.Bench(context.Background(), BenchService, plane.BenchSpec{Peers: true})
	if err != nil || len(paths) != 1 {
		t.Fatalf("Bench = %v, %v", paths, err)
	}
	tg := dp.target
	if tg.Pod != "bench" || tg.PodNode != "node-1" || tg.HopNode != "node-2" || tg.TCP.Port() != 5201 || tg.UDP.Port() != 5201 ||
		tg.TCP.Addr() != l.podIPs["bench"] || tg.TCPNodePort == 0 || tg.UDPNodePort == 0 || !dp.spec.Peers {
		t.Errorf("target %+v, spec %+v", tg, dp.spec)
	}
}

// TestBenchNotSupported: a data plane that cannot bench makes Bench fail
// with plane.ErrNotSupported, before waiting for anything.
func TestBenchNotSupported(t *testing.T) {
	dp := &fakeDataPlane{}
	l, err := New(Config{Name: "bt", Nodes: 2, DataPlane: dp.factory})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Bench(context.Background(), BenchService, plane.BenchSpec{}); !errors.Is(err, plane.ErrNotSupported) {
		t.Errorf("Bench = %v, want plane.ErrNotSupported", err)
	}
}
