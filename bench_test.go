package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/golden"
	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// fixedBenchReport is one run's figures, made up but shaped like a real
// one: a skipped path, a path without UDP, a failed figure.
func fixedBenchReport() benchReport {
	m := benchMachineInfo{CPUs: 2, CPUModel: "Test CPU", Kernel: "6.1.0-test", OS: "linux/amd64", Go: "go1.26.8",
		DurationS: 2, UDPOffered: 50000, Skipped: []benchSkip{}}
	v := func(bulk, conns, pps, loss, p50, p99 float64) map[plane.Metric]float64 {
		return map[plane.Metric]float64{plane.MetricTCPBulk: bulk, plane.MetricConnPerS: conns, plane.MetricUDPPPS: pps,
			plane.MetricUDPLoss: loss, plane.MetricRRP50: p50, plane.MetricRRP99: p99}
	}
	haproxy := v(2.1e9, 2500, 0, 0, 51, 190)
	delete(haproxy, plane.MetricUDPPPS)
	delete(haproxy, plane.MetricUDPLoss)
	hop := v(1.64e9, 1051, 6043.4, 30.5, 46.2, 3488)
	delete(hop, plane.MetricRRP99)
	delete(hop, plane.MetricRRP50)
	paths := []plane.BenchPath{
		{Path: plane.PathDirect, Values: v(4.76e9, 4051.2, 49738, 0, 24.1, 117), Detail: "client → pod 10.244.1.2 directly"},
		{Path: plane.PathNodePortLocal, Values: v(3.77e9, 3281, 45103, 0.4, 36, 204), Detail: "client → node-1 172.18.0.2:30546 (nodePort)"},
		{Path: plane.PathNodePortHop, Values: hop, Errors: map[plane.Metric]string{plane.MetricRRP50: "echo: read: no answer within 3s", plane.MetricRRP99: "echo: read: no answer within 3s"}},
		{Path: plane.PathKernelDNAT, Values: v(4.09e9, 2555, 49990, 0.01, 23, 98.7), Detail: "nft table ip nplab-bench in node-1"},
		{Path: plane.PathHAProxy, Values: haproxy, NA: map[plane.Metric]string{plane.MetricUDPPPS: "haproxy does not forward UDP", plane.MetricUDPLoss: "haproxy does not forward UDP"}},
		{Path: plane.PathSocat, Skipped: "socat is not installed (apt-get install socat)"},
	}
	timings := []lab.LabTiming{{Nodes: 3, Pods: 6, Up: 83 * time.Millisecond, Down: 212 * time.Millisecond},
		{Nodes: 100, Pods: 500, Up: 9800 * time.Millisecond, Down: 11300 * time.Millisecond}}
	return newBenchReport(m, paths, timings)
}

// TestBenchOutput: the table and the JSON of one report, as golden files.
func TestBenchOutput(t *testing.T) {
	r := fixedBenchReport()
	var table, js bytes.Buffer
	if err := r.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := r.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "bench", "table.golden"), table.Bytes())
	golden.Check(t, filepath.Join("testdata", "bench", "json.golden"), js.Bytes())
	want := []string{
		"nodeport-hop: RR p50: echo: read: no answer within 3s",
		"nodeport-hop: RR p99: echo: read: no answer within 3s",
	}
	if got := r.failures(); !slices.Equal(got, want) {
		t.Errorf("failures = %q, want %q", got, want)
	}
}

func TestRound(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{4.7612345e9, 4761234500}, {4051.2, 4051}, {0.0123456, 0.0123}, {1.0, 1}, {0, 0}, {0.75863, 0.759}, {-12.34, -12.3},
	} {
		if got := round(tc.in); got != tc.want {
			t.Errorf("round(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseLabSizes(t *testing.T) {
	got, err := parseLabSizes("3x2, 100x5")
	if err != nil || !slices.Equal(got, []labSize{{3, 2}, {100, 5}}) {
		t.Errorf("parseLabSizes = %v, %v", got, err)
	}
	if got, err := parseLabSizes("none"); err != nil || got != nil {
		t.Errorf("none = %v, %v", got, err)
	}
	for _, bad := range []string{"3", "3x", "x2", "0x2", "251x1", "3x0", "3x2,abc"} {
		if _, err := parseLabSizes(bad); err == nil || !strings.Contains(err.Error(), `"--lab-sizes" flag`) {
			t.Errorf("parseLabSizes(%q) = %v, want an error naming the flag", bad, err)
		}
	}
}

// TestBenchFlagErrors: a bad flag is one line naming it (and the pointer to
// --help under it), exit 1, before
// anything is built (and without root).
func TestBenchFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--lab-sizes", "3by2"}, `error: invalid argument "3by2" for "--lab-sizes" flag: "3by2" is not NODESxPODS (such as 3x2)` + "\nSee 'nplab bench --help' for usage."},
		{[]string{"bench", "--duration", "1ms"}, `error: invalid argument "1ms" for "--duration" flag: between 10ms and 1m` + "\nSee 'nplab bench --help' for usage."},
		{[]string{"bench", "--udp-rate", "0"}, `error: invalid argument "0" for "--udp-rate" flag: 1 to 10000000 datagrams per second` + "\nSee 'nplab bench --help' for usage."},
		{[]string{"bench", "extra"}, `error: unknown command "extra" for "nplab bench"`},
	} {
		stdout, stderr, code := runBinary(t, "", tt.args...)
		if code != 1 || stdout != "" || stderr != tt.want+"\n" {
			t.Errorf("nplab %s: exit %d\nstdout %q\nstderr %q\nwant exit 1, stderr %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
}

// TestBenchJSON runs `nplab bench --json` briefly, as root, and checks
// what a user reads off it: every path and every figure, with sane values,
// a timed lab, and no namespace left behind.
func TestBenchJSON(t *testing.T) {
	testenv.RequireRoot(t)
	if testenv.InVM() {
		t.Skip("skipping: the bench measures the host, not an emulated CPU")
	}
	cmd := nplabCmd("bench", "--duration", "300ms", "--json", "--lab-sizes", "3x2", "--peers")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	benchLab := fmt.Sprintf("bench-%d", cmd.Process.Pid%1_000_000)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("nplab bench: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("nplab bench still running after 3 minutes\nstderr:\n%s", &stderr)
	}
	var rep struct {
		Machine struct {
			CPUs    int `json:"cpus"`
			Skipped []struct {
				Path, Reason string
			} `json:"skipped"`
		} `json:"machine"`
		Results []struct {
			Path   string   `json:"path"`
			Metric string   `json:"metric"`
			Value  *float64 `json:"value"`
			Ratio  *float64 `json:"ratio_to_direct"`
		} `json:"results"`
		Lab []struct {
			Nodes int     `json:"nodes"`
			Pods  int     `json:"pods"`
			UpS   float64 `json:"up_s"`
			DownS float64 `json:"down_s"`
		} `json:"lab"`
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &top); err != nil {
		t.Fatalf("the output is not JSON: %v\n%s", err, stdout.String())
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"lab", "machine", "results"}) {
		t.Errorf("top-level keys %q, want exactly lab, machine and results", keys)
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the output is not the JSON report: %v\n%s", err, stdout.String())
	}
	if rep.Machine.CPUs < 1 {
		t.Errorf("machine.cpus = %d", rep.Machine.CPUs)
	}
	// Every path is measured, or skipped with the reason: kernel-dnat
	// without nft and iptables, the peers where they are not installed.
	var paths []string
	for _, p := range plane.BenchPaths {
		i := slices.IndexFunc(rep.Machine.Skipped, func(s struct{ Path, Reason string }) bool { return s.Path == p })
		switch {
		case i < 0:
			paths = append(paths, p)
		case rep.Machine.Skipped[i].Reason == "":
			t.Errorf("path %s skipped without a reason", p)
		case p == plane.PathKernelDNAT && testenv.Required("nft"), p == plane.PathDirect, p == plane.PathNodePortLocal, p == plane.PathNodePortHop:
			t.Errorf("path %s skipped: %s", p, rep.Machine.Skipped[i].Reason)
		default:
			t.Logf("%s skipped: %s", p, rep.Machine.Skipped[i].Reason)
		}
	}
	for _, p := range paths {
		for _, m := range plane.Metrics {
			if (p == plane.PathHAProxy || p == plane.PathGoCopy) && (m == plane.MetricUDPPPS || m == plane.MetricUDPLoss) {
				continue // haproxy and go-copy forward TCP only
			}
			i := slices.IndexFunc(rep.Results, func(r struct {
				Path   string   `json:"path"`
				Metric string   `json:"metric"`
				Value  *float64 `json:"value"`
				Ratio  *float64 `json:"ratio_to_direct"`
			}) bool {
				return r.Path == p && r.Metric == string(m)
			})
			if i < 0 {
				t.Errorf("no %s figure for path %s", m, p)
				continue
			}
			r := rep.Results[i]
			switch {
			case r.Value == nil:
				t.Errorf("%s %s: no value", p, m)
			case m == plane.MetricUDPLoss && (*r.Value < 0 || *r.Value > 100):
				t.Errorf("%s %s = %v, want a percentage", p, m, *r.Value)
			case m != plane.MetricUDPLoss && *r.Value <= 0:
				t.Errorf("%s %s = %v, want > 0", p, m, *r.Value)
			case m != plane.MetricUDPLoss && (r.Ratio == nil || *r.Ratio <= 0):
				t.Errorf("%s %s: ratio to direct %v, want > 0", p, m, r.Ratio)
			case p == plane.PathDirect && m != plane.MetricUDPLoss && *r.Ratio != 1:
				t.Errorf("direct %s: ratio to itself %v", m, *r.Ratio)
			}
		}
	}
	if len(rep.Lab) != 1 || rep.Lab[0].Nodes != 3 || rep.Lab[0].Pods != 6 || rep.Lab[0].UpS <= 0 || rep.Lab[0].DownS <= 0 {
		t.Errorf("lab = %+v, want one 3-node, 6-pod lab with its up and down times", rep.Lab)
	}
	if left := labNamespaces(t, benchLab); len(left) > 0 {
		t.Errorf("the bench left namespaces behind: %v", left)
	}
	t.Logf("stderr:\n%s", &stderr)
}

func TestVsDirect(t *testing.T) {
	for _, tc := range []struct {
		m         plane.Metric
		v, direct float64
		isDirect  bool
		want      string
	}{
		{plane.MetricRRP50, 24.8, 25.1, false, "0.99×  +0 µs"},
		{plane.MetricRRP50, 41, 25, false, "1.64×  +16 µs"},
		{plane.MetricTCPBulk, 2e9, 4e9, false, "0.50×"},
		{plane.MetricUDPLoss, 2.5, 0, false, "+2.5 points"},
		{plane.MetricConnPerS, 100, 0, false, ""},
		{plane.MetricConnPerS, 100, 100, true, "(the floor)"},
	} {
		if got := vsDirect(tc.m, tc.v, tc.direct, tc.isDirect); got != tc.want {
			t.Errorf("vsDirect(%s, %v, %v) = %q, want %q", tc.m, tc.v, tc.direct, got, tc.want)
		}
	}
}
