//go:build linux

package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/loadgen"
	"golang.org/x/sys/unix"
)

var _ plane.Bencher = (*Cluster)(nil)

// The frontends of the bench's extra paths on the pod's node: outside the
// NodePort range, so they never meet a Service.
const (
	haproxyPort = 29001
	socatPort   = 29002
	goCopyPort  = 29003
	// benchTable is the nftables table (iptables: chain prefix) of the
	// kernel-dnat path.
	benchTable = "nplab-bench"
)

// Bench measures every path from the outside client to target's bench
// pod and removes what it added (the client's route to the pod range, the
// DNAT table, the peers' processes) before it returns. See plane.Bencher
// and package loadgen for the figures.
//
// It measures figure by figure: TCP bulk on every path, then new
// connections on every path, and so on, each path's additions in place
// only while its own figure runs. On a machine whose load changes from
// second to second, the figures a ratio compares are then measured
// seconds apart, not a minute.
//
// While it runs, the client's namespace reuses TIME_WAIT ports
// (net.ipv4.tcp_tw_reuse=1, a wide ip_local_port_range), so thousands of
// new connections per second do not run out of source ports, and
// GOMAXPROCS is raised by two: the pinned client and server threads of the
// latency test block in system calls, and must not take the processors
// the proxy runs on. While the latency figure runs, every thread of this
// process (client, pod server, nplab's proxy) and of a peer is pinned to
// the client's CPU (pinTasks), and put back after it.
func (c *Cluster) Bench(ctx context.Context, t plane.BenchTarget, spec plane.BenchSpec) ([]plane.BenchPath, error) {
	spec = spec.WithDefaults()
	podNode, err := c.node(t.PodNode)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	hopNode, err := c.node(t.HopNode)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if !t.TCP.IsValid() || !t.UDP.IsValid() || t.TCPNodePort == 0 || t.UDPNodePort == 0 {
		return nil, fmt.Errorf("bench: target %+v needs the pod's TCP and UDP addresses and both nodePorts", t)
	}
	for k, v := range map[string]string{"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.ip_local_port_range": "1024 65000"} {
		if err := c.client.Sysctl(k, v); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	runtime.GOMAXPROCS(runtime.NumCPU() + 2)
	defer runtime.SetDefaultGOMAXPROCS()

	b := &bench{c: c, t: t, spec: spec, enter: func(f func() error) error { return netsim.Run(c.client, f) }}
	route := netsim.Route{Dst: podNode.spec.PodCIDR.Masked(), Via: podNode.spec.IP}
	paths := []*benchPath{
		{BenchPath: plane.BenchPath{Path: plane.PathDirect,
			Detail: fmt.Sprintf("client → pod %s directly, through the route %s via %s (added to the client for the bench)", t.TCP.Addr(), route.Dst, route.Via)},
			tcp: t.TCP, udp: t.UDP, withUDP: true,
			// A route to the pod's range through its node, in the client
			// only, for the bench only.
			setup:    func() error { return c.client.AddRoute(route) },
			teardown: func() error { return netsim.DelRoute(c.client, route) }},
		{BenchPath: plane.BenchPath{Path: plane.PathNodePortLocal,
			Detail: fmt.Sprintf("client → %s %s:%d (nodePort), nplab's proxy → the pod on the same node", podNode.spec.Name, podNode.spec.IP, t.TCPNodePort)},
			tcp: netip.AddrPortFrom(podNode.spec.IP, t.TCPNodePort), udp: netip.AddrPortFrom(podNode.spec.IP, t.UDPNodePort), withUDP: true},
		{BenchPath: plane.BenchPath{Path: plane.PathNodePortHop,
			Detail: fmt.Sprintf("client → %s %s:%d (nodePort), nplab's proxy → the pod on %s", hopNode.spec.Name, hopNode.spec.IP, t.TCPNodePort, podNode.spec.Name)},
			tcp: netip.AddrPortFrom(hopNode.spec.IP, t.TCPNodePort), udp: netip.AddrPortFrom(hopNode.spec.IP, t.UDPNodePort), withUDP: true},
		b.kernelDNAT(ctx, podNode),
	}
	if spec.Peers {
		paths = append(paths, b.peer(ctx, podNode, plane.PathHAProxy), b.peer(ctx, podNode, plane.PathSocat), b.goCopy(podNode))
	}
	for _, p := range paths {
		p.Values, p.NA, p.Errors = map[plane.Metric]float64{}, map[plane.Metric]string{}, map[plane.Metric]string{}
		if !p.withUDP && p.Skipped == "" {
			p.NA[plane.MetricUDPPPS] = p.Path + " does not forward UDP"
			p.NA[plane.MetricUDPLoss] = p.Path + " does not forward UDP"
		}
	}
	for _, fig := range []benchFigure{figBulk, figConns, figUDP, figRR} {
		for _, p := range paths {
			if p.Skipped != "" || ctx.Err() != nil || (fig == figUDP && !p.withUDP) {
				continue
			}
			if p.setup != nil {
				if err := p.setup(); err != nil {
					p.Skipped = err.Error()
					if p.teardown != nil {
						p.teardown()
					}
					continue
				}
			}
			b.measure(p, fig)
			if p.teardown != nil {
				if err := p.teardown(); err != nil {
					p.Errors["cleanup"] = err.Error()
				}
			}
		}
	}
	out := make([]plane.BenchPath, len(paths))
	for i, p := range paths {
		out[i] = p.BenchPath
		if p.Skipped != "" {
			out[i].Values, out[i].NA, out[i].Errors = nil, nil, nil
		}
	}
	return out, ctx.Err()
}

type bench struct {
	c     *Cluster
	t     plane.BenchTarget
	spec  plane.BenchSpec
	enter loadgen.Enter
}

// benchPath is one path being measured: where its load goes, and what it
// adds while one of its figures is measured.
type benchPath struct {
	plane.BenchPath
	tcp, udp netip.AddrPort
	withUDP  bool
	// setup and teardown, when set, add and remove what the path needs
	// around each figure.
	setup, teardown func() error
	// pids, when set, are the path's forwarder processes (a peer's), whose
	// threads the latency figure pins with this process's.
	pids func() []int
}

type benchFigure int

const (
	figBulk benchFigure = iota
	figConns
	figUDP
	figRR
)

// measure measures one figure on one path.
func (b *bench) measure(p *benchPath, fig benchFigure) {
	d := b.spec.Duration
	fail := func(err error, ms ...plane.Metric) {
		for _, m := range ms {
			p.Errors[m] = err.Error()
		}
	}
	switch fig {
	case figBulk:
		if bps, err := loadgen.Bulk(b.enter, p.tcp, d); err != nil {
			fail(err, plane.MetricTCPBulk)
		} else {
			p.Values[plane.MetricTCPBulk] = bps
		}
	case figConns:
		workers := max(runtime.NumCPU(), 2)
		if cr, err := loadgen.Conns(b.enter, p.tcp, d, workers, b.t.Pod); err != nil {
			fail(err, plane.MetricConnPerS)
		} else {
			p.Values[plane.MetricConnPerS] = cr.PerSec
		}
	case figUDP:
		if ur, err := loadgen.UDP(b.enter, p.udp, d, b.spec.UDPRate); err != nil {
			fail(err, plane.MetricUDPPPS, plane.MetricUDPLoss)
		} else {
			p.Values[plane.MetricUDPPPS] = ur.PerSec
			p.Values[plane.MetricUDPLoss] = ur.LossPercent
		}
	case figRR:
		// Every thread of the path on one CPU: this process's (client,
		// pod server, nplab's proxy) and the peer's (see pinTasks).
		pids := []int{0}
		if p.pids != nil {
			pids = append(pids, p.pids()...)
		}
		restore, err := pinTasks(benchCPU(), pids...)
		if err != nil {
			fail(err, plane.MetricRRP50, plane.MetricRRP99)
			return
		}
		defer restore()
		if rr, err := loadgen.RR(b.enter, p.tcp, d); err != nil {
			fail(err, plane.MetricRRP50, plane.MetricRRP99)
		} else {
			p.Values[plane.MetricRRP50] = float64(rr.P50.Nanoseconds()) / 1e3
			p.Values[plane.MetricRRP99] = float64(rr.P99.Nanoseconds()) / 1e3
		}
	}
}

// kernelDNAT is the pod's node's nodePorts with nftables DNAT rules in
// its namespace, as kube-proxy's nftables mode installs them (iptables
// where nft is missing), in place only while one of its figures is
// measured. The rules catch the packets in prerouting, before nplab's
// proxy sockets could see them.
func (b *bench) kernelDNAT(ctx context.Context, n *node) *benchPath {
	tcpFront := netip.AddrPortFrom(n.spec.IP, b.t.TCPNodePort)
	udpFront := netip.AddrPortFrom(n.spec.IP, b.t.UDPNodePort)
	p := &benchPath{BenchPath: plane.BenchPath{Path: plane.PathKernelDNAT}, tcp: tcpFront, udp: udpFront, withUDP: true}
	switch {
	case haveProgram("nft"):
		script := nftDNAT(tcpFront, udpFront, b.t.TCP, b.t.UDP)
		p.setup = func() error { return b.run(ctx, n.host, script, "nft", "-f", "-") }
		p.teardown = func() error { return b.run(ctx, n.host, "delete table ip "+benchTable+"\n", "nft", "-f", "-") }
		p.Detail = fmt.Sprintf("nft table ip %s in %s: dnat tcp %s → %s, udp %s → %s, masquerade (kube-proxy's nftables mode)", benchTable, n.spec.Name, tcpFront, b.t.TCP, udpFront, b.t.UDP)
	case haveProgram("iptables-restore") && haveProgram("iptables"):
		p.setup = func() error {
			return b.run(ctx, n.host, iptablesDNAT(tcpFront, udpFront, b.t.TCP, b.t.UDP), "iptables-restore", "--noflush")
		}
		p.teardown = func() error {
			var errs []error
			for _, args := range [][]string{
				{"-t", "nat", "-D", "PREROUTING", "-j", "NPLAB-BENCH"},
				{"-t", "nat", "-D", "POSTROUTING", "-j", "NPLAB-BENCH-POST"},
				{"-t", "nat", "-F", "NPLAB-BENCH"}, {"-t", "nat", "-X", "NPLAB-BENCH"},
				{"-t", "nat", "-F", "NPLAB-BENCH-POST"}, {"-t", "nat", "-X", "NPLAB-BENCH-POST"},
			} {
				errs = append(errs, b.run(ctx, n.host, "", "iptables", args...))
			}
			return errors.Join(errs...)
		}
		p.Detail = fmt.Sprintf("iptables nat chains NPLAB-BENCH in %s: DNAT tcp %s → %s, udp %s → %s, MASQUERADE (kube-proxy's iptables mode; nft is not installed)", n.spec.Name, tcpFront, b.t.TCP, udpFront, b.t.UDP)
	default:
		p.Skipped = "neither nft nor iptables is installed (apt-get install nftables)"
	}
	if p.setup != nil {
		setup := p.setup
		p.setup = func() error {
			if err := setup(); err != nil {
				return fmt.Errorf("installing the DNAT rules failed: %w", err)
			}
			return nil
		}
	}
	return p
}

// nftDNAT is kube-proxy's nftables mode for one Service port of each
// protocol, in short: mark NodePort traffic for masquerade (0x4000), DNAT
// it to the endpoint, and masquerade marked packets on the way out, so
// the pod answers through this node.
func nftDNAT(tcpFront, udpFront, tcpPod, udpPod netip.AddrPort) string {
	return fmt.Sprintf(`table ip %s {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d meta mark set meta mark | 0x4000 dnat to %s
		ip daddr %s udp dport %d meta mark set meta mark | 0x4000 dnat to %s
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0x4000 masquerade fully-random
	}
}
`, benchTable, tcpFront.Addr(), tcpFront.Port(), tcpPod, udpFront.Addr(), udpFront.Port(), udpPod)
}

// iptablesDNAT is the same in kube-proxy's iptables mode, for
// iptables-restore --noflush.
func iptablesDNAT(tcpFront, udpFront, tcpPod, udpPod netip.AddrPort) string {
	var s strings.Builder
	s.WriteString("*nat\n:NPLAB-BENCH - [0:0]\n:NPLAB-BENCH-POST - [0:0]\n-A PREROUTING -j NPLAB-BENCH\n-A POSTROUTING -j NPLAB-BENCH-POST\n")
	for _, r := range []struct {
		proto      string
		front, pod netip.AddrPort
	}{{"tcp", tcpFront, tcpPod}, {"udp", udpFront, udpPod}} {
		fmt.Fprintf(&s, "-A NPLAB-BENCH -d %s/32 -p %s --dport %d -j MARK --set-xmark 0x4000/0x4000\n", r.front.Addr(), r.proto, r.front.Port())
		fmt.Fprintf(&s, "-A NPLAB-BENCH -d %s/32 -p %s --dport %d -j DNAT --to-destination %s\n", r.front.Addr(), r.proto, r.front.Port(), r.pod)
	}
	s.WriteString("-A NPLAB-BENCH-POST -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\nCOMMIT\n")
	return s.String()
}

// goCopy is the plainest Go forwarder, in this process, in the pod's node:
// accept, dial the pod, io.Copy each way (between two *net.TCPConn that is
// splice(2)), half-close, close. It runs only while one of its figures is
// measured; TCP only.
func (b *bench) goCopy(n *node) *benchPath {
	front := netip.AddrPortFrom(n.spec.IP, goCopyPort)
	p := &benchPath{BenchPath: plane.BenchPath{Path: plane.PathGoCopy,
		Detail: fmt.Sprintf("a plain Go forwarder in %s: %s → %s, io.Copy each way (splice); no UDP", n.spec.Name, front, b.t.TCP)},
		tcp: front}
	var (
		l     net.Listener
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if add && conns == nil {
			return false // torn down meanwhile
		}
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		return true
	}
	forward := func(in net.Conn) {
		defer in.Close()
		if !track(in, true) {
			return
		}
		defer track(in, false)
		out, err := n.host.Dial(context.Background(), "tcp4", b.t.TCP.String())
		if err != nil {
			return
		}
		defer out.Close()
		if !track(out, true) {
			return
		}
		defer track(out, false)
		done := make(chan struct{})
		go func() {
			io.Copy(out, in)
			if cw, ok := out.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			close(done)
		}()
		io.Copy(in, out)
		if cw, ok := in.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		<-done
	}
	p.setup = func() error {
		var err error
		if l, err = n.host.Listen(context.Background(), "tcp4", front.String()); err != nil {
			return err
		}
		mu.Lock()
		conns = map[net.Conn]bool{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				in, err := l.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() { defer wg.Done(); forward(in) }()
			}
		}()
		return nil
	}
	p.teardown = func() error {
		err := l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
		return err
	}
	return p
}

// peer is haproxy or socat run in the pod's node, forwarding node
// IP:port to the pod, started before each of its figures and stopped
// after; skipped when the program is not installed.
func (b *bench) peer(ctx context.Context, n *node, path string) *benchPath {
	p := &benchPath{BenchPath: plane.BenchPath{Path: path}}
	var port uint16
	var argvs [][]string
	var conf string
	switch path {
	case plane.PathHAProxy:
		if !haveProgram("haproxy") {
			p.Skipped = "haproxy is not installed (apt-get install haproxy)"
			return p
		}
		port = haproxyPort
		conf = fmt.Sprintf(`global
	maxconn 4000
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend bench
	bind %s:%d
	default_backend pod
backend pod
	server pod %s
`, n.spec.IP, port, b.t.TCP)
		argvs = [][]string{{"haproxy", "-db", "-f", ""}} // the file, once written
		p.Detail = fmt.Sprintf("haproxy (mode tcp) in %s: %s:%d → %s; no UDP", n.spec.Name, n.spec.IP, port, b.t.TCP)
	case plane.PathSocat:
		if !haveProgram("socat") {
			p.Skipped = "socat is not installed (apt-get install socat)"
			return p
		}
		port = socatPort
		p.withUDP = true
		argvs = [][]string{
			{"socat", "-T", "5", fmt.Sprintf("TCP4-LISTEN:%d,bind=%s,fork,reuseaddr,backlog=1024", port, n.spec.IP), "TCP4:" + b.t.TCP.String()},
			{"socat", "-T", "5", fmt.Sprintf("UDP4-LISTEN:%d,bind=%s,fork,reuseaddr", port, n.spec.IP), "UDP4:" + b.t.UDP.String()},
		}
		p.Detail = fmt.Sprintf("socat in %s: %s:%d → %s, TCP and UDP (a process per connection or UDP peer)", n.spec.Name, n.spec.IP, port, b.t.TCP)
	}
	front := netip.AddrPortFrom(n.spec.IP, port)
	p.tcp, p.udp = front, front
	var cmds []*exec.Cmd
	p.pids = func() []int {
		// `ip netns exec` execs the program: the pid is the peer's.
		var pids []int
		for _, cmd := range cmds {
			pids = append(pids, cmd.Process.Pid)
		}
		return pids
	}
	var dir string
	p.teardown = func() error {
		for _, cmd := range cmds {
			// The program and every process it forked (socat's children).
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
		cmds = nil
		if dir != "" {
			os.RemoveAll(dir)
			dir = ""
		}
		return nil
	}
	p.setup = func() error {
		if conf != "" {
			var err error
			if dir, err = os.MkdirTemp("", "nplab-bench-"+path); err != nil {
				return err
			}
			cfg := filepath.Join(dir, path+".cfg")
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				return err
			}
			argvs[0][len(argvs[0])-1] = cfg
		}
		stderr := &tailWriter{}
		for _, argv := range argvs {
			cmd, err := netsim.Command(ctx, n.host, argv[0], argv[1:]...)
			if err != nil {
				return err
			}
			cmd.Stdout, cmd.Stderr = nil, stderr
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
			}
			cmds = append(cmds, cmd)
		}
		if err := b.waitListening(ctx, front); err != nil {
			msg := fmt.Sprintf("%s did not start listening on %s: %v", path, front, err)
			if out := stderr.String(); out != "" {
				msg += "; it said: " + out
			}
			return errors.New(msg)
		}
		return nil
	}
	return p
}

// waitListening dials front from the client until it accepts, for at most
// five seconds.
func (b *bench) waitListening(ctx context.Context, front netip.AddrPort) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		conn, err := b.c.client.Dial(dctx, "tcp", front.String())
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs a program in h's namespace with stdin and returns its error
// with what it printed.
func (b *bench) run(ctx context.Context, h netsim.Host, stdin, name string, args ...string) error {
	cmd, err := netsim.Command(ctx, h, name, args...)
	if err != nil {
		return err
	}
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns exec %s %s %s: %v: %s", h.Namespace(), name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// benchCPU is the CPU the latency figure pins to: the lowest this
// process may use, the one loadgen.RR pins its client to.
func benchCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		for i := range 1024 {
			if set.IsSet(i) {
				return i
			}
		}
	}
	return 0
}

func haveProgram(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// tailWriter keeps the last 512 bytes written to it, for a peer's error
// message; it is safe for concurrent use.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 512 {
		w.buf = w.buf[len(w.buf)-512:]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(strings.Fields(string(w.buf)), " ")
}
