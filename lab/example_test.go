package lab_test

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	_ "github.com/nplab/nplab/lab/dataplane" // real namespaces for lab.Start
	"github.com/nplab/nplab/lab/plane"
)

// A lab, start to finish: start it, apply the default manifests, send
// traffic from the outside client to a node's nodePort, inject a fault, and
// read where the traffic went from the lab's state.
func Example() {
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Config{Name: "example", ProxyMode: plane.ProxyRoundRobin, ProbeScale: 0.05})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	// A Deployment "web" of three agnhost netexec pods behind a NodePort
	// Service on 30080, as `kubectl apply -f` prints it.
	for _, r := range l.Apply("default.yaml", lab.DefaultManifest) {
		fmt.Println(r)
	}

	// Follow the lab's events until the three pods are ready.
	w := l.Watch()
	defer w.Stop()
	state := w.State
	for readyEndpoints(state, "web") < 3 {
		state.Apply(<-w.Events)
	}
	_ = l.WaitIdle(ctx) // until every node's proxy has them too

	// 30 requests from the outside client to node-1's nodePort fan out to
	// every pod, wherever it runs.
	node1 := netip.AddrPortFrom(l.Nodes()[0].IP, 30080)
	res, err := l.Traffic(ctx, lab.TrafficSpec{Targets: []netip.AddrPort{node1}, Count: 30})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("30 requests: %d ok, reaching %d pods\n", res.PerResult[plane.FlowOK], len(res.PerPod))

	// Break one pod: its readiness probe fails, the endpoints controller
	// takes it out, and kube-proxy stops sending it new connections.
	victim := state.PodNames()[0]
	if err := l.Inject(lab.Fault{Kind: lab.FaultPodUnready, Pod: victim}); err != nil {
		fmt.Println(err)
		return
	}
	for readyEndpoints(state, "web") > 2 {
		state.Apply(<-w.Events)
	}
	_ = l.WaitIdle(ctx) // until every node's proxy has the new endpoints
	res, _ = l.Traffic(ctx, lab.TrafficSpec{Targets: []netip.AddrPort{node1}, Count: 30})
	fmt.Printf("after the fault: %d ok, reaching %d pods, %d to the unready one\n",
		res.PerResult[plane.FlowOK], len(res.PerPod), res.PerPod[victim])

	// The state counts every flow per service, entry node, pod, protocol
	// and result.
	counts := l.State().PodCounts("web")
	var total int64
	for _, n := range counts {
		total += n
	}
	fmt.Printf("the state counts %d flows to web's pods; the unready pod got %d\n", total, counts[victim])
	// Output:
	// deployment.apps/web created
	// service/web created
	// 30 requests: 30 ok, reaching 3 pods
	// after the fault: 30 ok, reaching 2 pods, 0 to the unready one
	// the state counts 60 flows to web's pods; the unready pod got 10
}

// readyEndpoints counts the ready endpoints of a Service's first port.
func readyEndpoints(s lab.State, svc string) int {
	n := 0
	if ss, ok := s.Services[svc]; ok && len(ss.Ports) > 0 {
		for _, e := range ss.Ports[0].Endpoints {
			if e.Ready {
				n++
			}
		}
	}
	return n
}

// TestMain runs the tests as root without sudo (in a user namespace when
// not root: testenv.Enter), and skips the examples, which build real
// namespaces, where the tests cannot (no root, no user namespaces), and
// says so.
func TestMain(m *testing.M) {
	testenv.Enter()
	flag.Parse()
	if os.Geteuid() != 0 && !testenv.Required("root") && !testenv.Required("userns") {
		skip := "^Example"
		if s := flag.Lookup("test.skip").Value.String(); s != "" {
			skip = s + "|" + skip
		}
		_ = flag.Set("test.skip", skip)
		fmt.Fprintln(os.Stderr, "lab: skipping Example (it builds network namespaces and needs root or unprivileged user namespaces)")
	}
	os.Exit(m.Run())
}
