package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

func init() { subcommands = append(subcommands, newBenchCmd) }

type benchOptions struct {
	duration time.Duration
	json     bool
	peers    bool
	labSizes string
	udpRate  int
}

const benchLong = `Measure what nplab's userspace NodePort proxy costs, next to the paths a
real cluster would use. nplab bench builds a lab of its own (2 nodes, one pod
running nplab's load generator's server on node-1, a NodePort Service in front
of it), measures, and removes it. Each path goes from the outside client to
that pod:

  direct           straight to the pod's IP (a route added for the bench only):
                   the floor, what the network itself costs
  nodeport-local   node-1's nodePort: nplab's proxy, pod on the same node
  nodeport-hop     node-2's nodePort: nplab's proxy, then across to node-1
  kernel-dnat      node-1's nodePort, caught by nftables DNAT rules as
                   kube-proxy's nftables mode writes them (iptables where nft
                   is missing; skipped if neither is installed): what a real
                   cluster does, in the kernel
  haproxy, socat   (--peers) those proxies on node-1, where installed
  go-copy          (--peers) the plainest Go forwarder on node-1: io.Copy
                   each way (splice between the two sockets); TCP only

and each path is measured by:

  TCP bulk         bits per second the pod received over one connection
  conn/s           new TCP connections per second, one small request each
  UDP delivered/s  64-byte datagrams per second the pod received, sent at a
                   fixed rate (--udp-rate), and the percentage lost
  RR p50, p99      round-trip time of a 64-byte request and its answer on a
                   kept-open connection, in microseconds, with every thread
                   of the path pinned to one CPU: the client's, the server's
                   and the forwarder's (all of nplab's threads, and haproxy's
                   or socat's). Otherwise it would measure how long an idle
                   CPU takes to wake up: kernel DNAT runs on the CPU that
                   sends, a userspace proxy on the other CPU would wake it
                   twice per round trip. Pinned, a round trip costs what its
                   work costs, one step after the other

Every figure has its ratio to direct: 0.80x means 80% of direct's
throughput; for latency, 1.50x means 50% slower. Read the ratios, not the
absolute numbers: they depend on the machine and on what else it runs.

Then it times whole labs (--lab-sizes): from the start until the first
request through a NodePort is answered (up), and from the stop until the
kernel no longer lists any of the lab's namespaces (down).

--json prints the same data for scripts:
  {"machine": {...}, "results": [{"path", "metric", "value", "ratio_to_direct"}],
   "lab": [{"nodes", "pods", "up_s", "down_s"}]}
with metric one of tcp_bulk_bps, conn_per_s, udp_pps, udp_loss (percent),
rr_p50_us, rr_p99_us; ratio_to_direct is null where direct's value is 0.
"machine" says where it ran, and lists the paths it skipped, with why.

Like every lab, it runs in a user namespace without root. It takes about
4 × (paths) × --duration, plus the timed labs (the 100-node lab takes tens of
seconds). The exit status is 1 if a path that should carry the load failed.`

const benchExamples = `  nplab bench                                # every path, 2 s per figure, both timed labs
  nplab bench --duration 5s --peers          # longer, with haproxy and socat where installed
  nplab bench --json --lab-sizes none        # no timed labs, JSON for a script
  nplab bench --lab-sizes 3x2,20x5           # time a 3-node and a 20-node lab`

func newBenchCmd() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:     "bench [--duration D] [--json] [--peers]",
		Short:   "Measure the NodePort proxy against direct, kernel DNAT and other proxies",
		Long:    benchLong,
		Example: benchExamples,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runBench(cmd, o) },
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", plane.DefaultBenchDuration, "how long each figure is measured on each path")
	f.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	f.BoolVar(&o.peers, "peers", false, "also measure haproxy and socat, where installed, and a plain io.Copy Go forwarder")
	f.StringVar(&o.labSizes, "lab-sizes", "3x2,100x5", `labs to time, NODESxPODS-PER-NODE, comma-separated; "none" times none`)
	f.IntVar(&o.udpRate, "udp-rate", plane.DefaultUDPRate, "offered UDP rate, in 64-byte datagrams per second")
	return cmd
}

// labSize is one entry of --lab-sizes.
type labSize struct{ nodes, podsPerNode int }

func parseLabSizes(s string) ([]labSize, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []labSize
	for _, part := range strings.Split(s, ",") {
		n, p, ok := strings.Cut(strings.TrimSpace(part), "x")
		nodes, err1 := strconv.Atoi(n)
		pods, err2 := strconv.Atoi(p)
		if !ok || err1 != nil || err2 != nil {
			return nil, flagError{fmt.Errorf(`invalid argument %q for "--lab-sizes" flag: %q is not NODESxPODS (such as 3x2)`, s, part)}
		}
		if nodes < 1 || nodes > plane.MaxNodes || pods < 1 || pods > 50 {
			return nil, flagError{fmt.Errorf(`invalid argument %q for "--lab-sizes" flag: %q: a lab has 1 to %d nodes and 1 to 50 pods per node`, s, part, plane.MaxNodes)}
		}
		out = append(out, labSize{nodes, pods})
	}
	return out, nil
}

func (o *benchOptions) check() ([]labSize, error) {
	if o.duration < 10*time.Millisecond || o.duration > time.Minute {
		return nil, flagError{fmt.Errorf(`invalid argument "%s" for "--duration" flag: between 10ms and 1m`, o.duration)}
	}
	if o.udpRate < 1 || o.udpRate > 10_000_000 {
		return nil, flagError{fmt.Errorf(`invalid argument "%d" for "--udp-rate" flag: 1 to 10000000 datagrams per second`, o.udpRate)}
	}
	return parseLabSizes(o.labSizes)
}

func runBench(cmd *cobra.Command, o *benchOptions) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	sizes, err := o.check()
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("nplab bench creates network namespaces and needs root: run it with sudo")
	}
	// The 100-node lab opens thousands of sockets and namespace files.
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(errOut, "warning: raising the open-file limit: %v\n", err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)

	spec := plane.BenchSpec{Duration: o.duration, UDPRate: o.udpRate, Peers: o.peers}
	pid := os.Getpid() % 1_000_000
	name := fmt.Sprintf("bench-%d", pid)
	fmt.Fprintf(errOut, "Building lab %q: 2 nodes, the client, a bench pod on node-1 behind NodePort Service %q...\n", name, lab.BenchService)
	paths, err := benchPaths(ctx, name, spec, errOut)
	if err != nil {
		return err
	}
	var timings []lab.LabTiming
	for i, s := range sizes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(errOut, "Timing a lab of %s × %d pods...\n", nodesPhrase(s.nodes), s.podsPerNode)
		tctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		t, err := lab.TimeLab(tctx, lab.Config{Name: fmt.Sprintf("bt%d-%d", pid, i), Nodes: s.nodes}, s.podsPerNode)
		cancel()
		if err != nil {
			return fmt.Errorf("timing a lab of %s × %d pods: %w", nodesPhrase(s.nodes), s.podsPerNode, err)
		}
		timings = append(timings, t)
	}
	rep := newBenchReport(benchMachine(spec), paths, timings)
	if o.json {
		err = rep.writeJSON(out)
	} else {
		err = rep.writeTable(out)
	}
	if err != nil {
		return err
	}
	if failed := rep.failures(); len(failed) > 0 {
		for _, f := range failed {
			fmt.Fprintln(errOut, "error:", f)
		}
		return exitError{1}
	}
	return nil
}

// benchPaths builds the bench lab, measures it and removes it.
func benchPaths(ctx context.Context, name string, spec plane.BenchSpec, progress io.Writer) (paths []plane.BenchPath, err error) {
	l, err := lab.Start(ctx, lab.Config{Name: name, Nodes: 2})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("removing lab %q: %w (run: nplab clean --name %s)", name, cerr, name)
		}
	}()
	for _, r := range l.ApplyFiles(lab.File{Name: "bench.yaml", Data: lab.BenchManifest}) {
		if r.Err != nil {
			return nil, errors.New(r.String())
		}
	}
	fmt.Fprintf(progress, "Measuring (%s per figure per path)...\n", spec.WithDefaults().Duration)
	return l.Bench(ctx, lab.BenchService, spec)
}

// benchMachineInfo describes where the figures were measured.
type benchMachineInfo struct {
	CPUs       int     `json:"cpus"`
	CPUModel   string  `json:"cpu_model,omitempty"`
	Kernel     string  `json:"kernel,omitempty"`
	OS         string  `json:"os"`
	Go         string  `json:"go"`
	DurationS  float64 `json:"duration_s"`
	UDPOffered int     `json:"udp_offered_pps"`
	// Skipped are the paths this machine could not measure, with why.
	Skipped []benchSkip `json:"skipped"`
}

type benchSkip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

func benchMachine(spec plane.BenchSpec) benchMachineInfo {
	spec = spec.WithDefaults()
	m := benchMachineInfo{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(),
		DurationS: spec.Duration.Seconds(), UDPOffered: spec.UDPRate, Skipped: []benchSkip{}}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// benchReport is what `nplab bench` prints, as a table or as JSON.
type benchReport struct {
	Machine benchMachineInfo `json:"machine"`
	Results []benchResult    `json:"results"`
	Lab     []benchLab       `json:"lab"`

	paths []plane.BenchPath
}

type benchResult struct {
	Path   string  `json:"path"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	// Ratio is value / direct's value; nil where direct's is 0 (loss).
	Ratio *float64 `json:"ratio_to_direct"`
}

type benchLab struct {
	Nodes int     `json:"nodes"`
	Pods  int     `json:"pods"`
	UpS   float64 `json:"up_s"`
	DownS float64 `json:"down_s"`
}

func newBenchReport(m benchMachineInfo, paths []plane.BenchPath, timings []lab.LabTiming) benchReport {
	r := benchReport{Machine: m, Results: []benchResult{}, Lab: []benchLab{}, paths: paths}
	direct := map[plane.Metric]float64{}
	for _, p := range paths {
		if p.Path == plane.PathDirect {
			direct = p.Values
		}
	}
	for _, p := range paths {
		if p.Skipped != "" {
			r.Machine.Skipped = append(r.Machine.Skipped, benchSkip{p.Path, p.Skipped})
			continue
		}
		for _, m := range plane.Metrics {
			v, ok := p.Values[m]
			if !ok {
				continue
			}
			res := benchResult{Path: p.Path, Metric: string(m), Value: round(v)}
			if d, ok := direct[m]; ok && d != 0 {
				ratio := round(v / d)
				res.Ratio = &ratio
			}
			r.Results = append(r.Results, res)
		}
	}
	for _, t := range timings {
		r.Lab = append(r.Lab, benchLab{Nodes: t.Nodes, Pods: t.Pods, UpS: round(t.Up.Seconds()), DownS: round(t.Down.Seconds())})
	}
	return r
}

// round keeps whole numbers from 1000 up, and three significant digits
// below: enough to read, and stable to diff.
func round(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	digits := max(3-int(math.Floor(math.Log10(math.Abs(v))))-1, 0)
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// failures lists the figures that should have been measured and were not.
func (r benchReport) failures() []string {
	var out []string
	for _, p := range r.paths {
		for _, m := range append(append([]plane.Metric(nil), plane.Metrics...), "cleanup") {
			if e, ok := p.Errors[m]; ok {
				out = append(out, fmt.Sprintf("%s: %s: %s", p.Path, metricTitle(m), e))
			}
		}
	}
	return out
}

func (r benchReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func metricTitle(m plane.Metric) string {
	switch m {
	case plane.MetricTCPBulk:
		return "TCP bulk"
	case plane.MetricConnPerS:
		return "new conn/s"
	case plane.MetricUDPPPS:
		return "UDP delivered/s"
	case plane.MetricUDPLoss:
		return "UDP loss"
	case plane.MetricRRP50:
		return "RR p50"
	case plane.MetricRRP99:
		return "RR p99"
	}
	return string(m)
}

// formatValue prints a value in the unit a student reads.
func formatValue(m plane.Metric, v float64) string {
	switch m {
	case plane.MetricTCPBulk:
		if v >= 1e9 {
			return fmt.Sprintf("%.2f Gbit/s", v/1e9)
		}
		return fmt.Sprintf("%.0f Mbit/s", v/1e6)
	case plane.MetricConnPerS, plane.MetricUDPPPS:
		return thousands(v)
	case plane.MetricUDPLoss:
		return fmt.Sprintf("%.1f %%", v)
	case plane.MetricRRP50, plane.MetricRRP99:
		return fmt.Sprintf("%.0f µs", v)
	}
	return fmt.Sprint(v)
}

// thousands prints 12345.6 as "12,346".
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// vsDirect is the table's comparison column.
func vsDirect(m plane.Metric, v, direct float64, isDirect bool) string {
	switch {
	case isDirect:
		return "(the floor)"
	case m == plane.MetricUDPLoss:
		return fmt.Sprintf("%+.1f points", v-direct)
	case direct == 0:
		return ""
	case m == plane.MetricRRP50 || m == plane.MetricRRP99:
		return fmt.Sprintf("%.2f×  %+.0f µs", v/direct, math.Round(v-direct)+0) // +0: never "-0"
	}
	return fmt.Sprintf("%.2f×", v/direct)
}

func (r benchReport) writeTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "nplab bench: %s per figure, UDP offered at %s datagrams/s; %d CPUs", time.Duration(m.DurationS*float64(time.Second)), thousands(float64(m.UDPOffered)), m.CPUs)
	if m.CPUModel != "" {
		fmt.Fprintf(w, " (%s)", m.CPUModel)
	}
	fmt.Fprintf(w, ", %s %s, %s\n\n", m.OS, m.Kernel, m.Go)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tpath\tvalue\tvs direct")
	direct := map[plane.Metric]float64{}
	for _, p := range r.paths {
		if p.Path == plane.PathDirect {
			direct = p.Values
		}
	}
	for _, metric := range plane.Metrics {
		first := true
		for _, p := range r.paths {
			if p.Skipped != "" {
				continue
			}
			title := ""
			if first {
				title = metricTitle(metric)
				first = false
			}
			var value, cmp string
			if v, ok := p.Values[metric]; ok {
				value = formatValue(metric, v)
				if d, ok := direct[metric]; ok {
					cmp = vsDirect(metric, v, d, p.Path == plane.PathDirect)
				}
			} else if _, ok := p.NA[metric]; ok {
				value = "n/a"
			} else {
				value = "failed"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", title, p.Path, value, cmp)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range m.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.Path, s.Reason)
	}
	for _, p := range r.paths {
		for _, metric := range plane.Metrics {
			if why, ok := p.NA[metric]; ok && (metric != plane.MetricUDPLoss || p.NA[plane.MetricUDPPPS] == "") {
				fmt.Fprintf(w, "n/a: %s %s: %s\n", p.Path, metricTitle(metric), why)
			}
		}
	}
	if len(r.Lab) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "lab\tup (until a NodePort answers)\tdown (until no namespace is left)")
		for _, l := range r.Lab {
			fmt.Fprintf(tw, "%s × %d pods\t%.2f s\t%.2f s\n", nodesPhrase(l.Nodes), l.Pods/max(l.Nodes, 1), l.UpS, l.DownS)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nHow each path was built:")
	for _, p := range r.paths {
		if p.Detail != "" {
			fmt.Fprintf(w, "  %-15s %s\n", p.Path, p.Detail)
		}
	}
	return nil
}
