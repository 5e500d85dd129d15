//go:build linux

package nodes

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// BenchmarkForward compares, in one run, traffic from node-2 to a pod on
// node-1 over three paths, in four variants:
//
//   - keepalive/...: an HTTP request/response on a kept-alive connection;
//   - newconn/...: the same with a new connection per request;
//   - bulk/...: 1 MiB per op through one TCP connection to a sink in the
//     pod, which acknowledges each MiB with a byte (MB/s is the
//     throughput);
//   - udp/...: 16 datagrams of 64 bytes in flight to a UDP echo in the
//     pod and their answers per op (ns/op over 16 is the time per
//     datagram round trip; lost/datagram the share that never came back
//     within 200 ms);
//   - udpflood/...: one 64-byte datagram per op, one way, sent as fast as
//     one sender can to a sink in the pod that counts them: delivered/s
//     and lost/datagram (the sender is never slowed by the path, so what
//     the path cannot carry is lost);
//   - udp10k/...: the same at a fixed offered rate of 10,000 datagrams/s
//     (use -benchtime 20000x or more: the loss at a rate the path should
//     carry).
//
// The paths:
//
//   - direct: straight to the pod IP; node-1 only routes the packets.
//   - nplab-proxy: to node-1's nodePort 30080, where nplab's userspace
//     proxy accepts, dials the pod and copies both ways.
//   - kernel-dnat: to node-1's spare nodePort 30081, where an nftables
//     rule in node-1's namespace rewrites the packets to the pod, as
//     kube-proxy's nftables mode does: table ip nplab-bench, prerouting
//     "dnat to <podIP>:8080" and postrouting source NAT, as masquerade
//     would, but to node-1's eth0 address 172.18.0.2 rather than the
//     10.244.1.1 masquerade picks: the proxy's connections come from
//     10.244.1.1, and the pod's TIME_WAIT sockets from them would meet
//     the same addresses and ports through DNAT and stall its SYNs for a
//     second (issue 12's second trap). The pod sees 172.18.0.2.
//
// All three cross the bridge, node-1 and the pod's veth once each way. Read
// the ratios within one connection variant: nplab-proxy/direct is what the
// userspace proxy costs over plain routing, kernel-dnat/direct what
// conntrack and NAT cost, and nplab-proxy/kernel-dnat how far nplab is from
// real kube-proxy. The nftables table exists only while kernel-dnat runs,
// so the other two paths never pass through conntrack.
//
// Each also reports cpu-ns/op, the CPU time of the whole process per op
// (client, proxy and servers, user and system, including the kernel's
// forwarding done in their system calls): on a machine other work
// shares, it compares paths better than wall time.
//
// The bulk sink and the UDP echo are the benchmark's own sockets, opened in
// the pod's namespace on ports 9000 (TCP), 9001 (UDP echo) and 9002 (UDP
// sink), behind nodePorts 30082, 30083 and 30086 (kernel DNAT: 30084,
// 30085 and 30088).
//
// kernel-dnat runs nft as `ip netns exec <node-1's namespace> nft -f -`
// and skips when nft is missing ("apt-get install nftables"); with "nft"
// in NPLAB_REQUIRE it fails instead.
func BenchmarkForward(b *testing.B) {
	c, log := newCluster(b, 2, plane.ProxyRandom)
	p := startPod(b, c, log, 1, 10, agnhost("bench-1"), true)
	from := c.Network().Host("node-2")
	client := func(keepAlive bool) (*http.Client, func()) {
		tr := &http.Transport{DisableKeepAlives: !keepAlive, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return from.Dial(ctx, "tcp", addr)
		}}
		return &http.Client{Transport: tr}, tr.CloseIdleConnections
	}
	run := func(b *testing.B, target netip.AddrPort, keepAlive bool) {
		client, closeIdle := client(keepAlive)
		defer closeIdle()
		url := "http://" + target.String() + "/hostname"
		b.ResetTimer()
		cpu := cpuTime(b)
		for b.Loop() {
			resp, err := client.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "bench-1" {
				b.Fatalf("answer %q", body)
			}
		}
		reportCPU(b, cpu)
	}
	// bulk and udp: the benchmark's own servers in the pod's namespace.
	podHost := c.Network().Host(podHostName(p.name))
	sink, err := podHost.Listen(context.Background(), "tcp4", ":9000")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	go func() {
		for {
			conn, err := sink.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 64<<10)
				for {
					// 16 reads of 64 KiB: one MiB, acknowledged.
					for range 16 {
						if _, err := io.ReadFull(conn, buf); err != nil {
							return
						}
					}
					if _, err := conn.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
		}
	}()
	echo, err := podHost.ListenPacket(context.Background(), "udp4", ":9001")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { echo.Close() })
	go func() {
		uc := echo.(*net.UDPConn)
		buf := make([]byte, 2048)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	// udpflood's sink counts what arrives and answers nothing.
	sinkUDP, err := podHost.ListenPacket(context.Background(), "udp4", ":9002")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sinkUDP.Close() })
	var sunk atomic.Int64
	go func() {
		uc := sinkUDP.(*net.UDPConn)
		buf := make([]byte, 2048)
		for {
			if _, _, err := uc.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			sunk.Add(1)
		}
	}()
	// The catalog knows netexec does not listen on 9000 and 9001, and the
	// plan would open no listener for them; an endpoint of a pod the node
	// does not run counts as listening.
	own := func(port uint16) []plane.Endpoint {
		return []plane.Endpoint{{Pod: "bench-own", Node: p.node, Addr: netip.AddrPortFrom(p.ip, port), Ready: true, Serving: true}}
	}
	c.SyncServices([]plane.ServicePort{
		{Service: "default/bench", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
			ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, p)},
		{Service: "default/bench-bulk", Protocol: "TCP", ClusterIP: netip.MustParseAddr("10.96.0.31"), Port: 9000, NodePort: 30082,
			ExternalTrafficPolicy: "Cluster", Endpoints: own(9000)},
		{Service: "default/bench-udp", Protocol: "UDP", ClusterIP: netip.MustParseAddr("10.96.0.32"), Port: 9001, NodePort: 30083,
			ExternalTrafficPolicy: "Cluster", Endpoints: own(9001)},
		{Service: "default/bench-udpflood", Protocol: "UDP", ClusterIP: netip.MustParseAddr("10.96.0.33"), Port: 9002, NodePort: 30086,
			ExternalTrafficPolicy: "Cluster", Endpoints: own(9002)},
	})
	bulk := func(b *testing.B, target netip.AddrPort) {
		conn, err := from.Dial(context.Background(), "tcp", target.String())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		chunk := make([]byte, 64<<10)
		ack := make([]byte, 1)
		b.SetBytes(1 << 20)
		b.ResetTimer()
		cpu := cpuTime(b)
		for b.Loop() {
			for range 16 {
				if _, err := conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := io.ReadFull(conn, ack); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	}
	udp := func(b *testing.B, target netip.AddrPort) {
		conn, err := from.Dial(context.Background(), "udp", target.String())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		msg := make([]byte, 64)
		buf := make([]byte, 2048)
		// The flow's first exchange is not the steady state.
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Read(buf); err != nil {
			b.Fatalf("the first datagram through %s: %v", target, err)
		}
		const window = 16
		lost := 0
		b.ResetTimer()
		cpu := cpuTime(b)
		for b.Loop() {
			for range window {
				if _, err := conn.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
			for range window {
				_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := conn.Read(buf); err != nil {
					lost++
				}
			}
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(lost)/float64(b.N*window), "lost/datagram")
	}
	// udpflood: b.N datagrams of 64 bytes, one way, to the counting sink,
	// at rate per second (0: as fast as one sender can); then up to
	// 500 ms for the last to land.
	udpflood := func(rate float64) func(*testing.B, netip.AddrPort) {
		return func(b *testing.B, target netip.AddrPort) {
			conn, err := from.Dial(context.Background(), "udp", target.String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			msg := make([]byte, 64)
			// The flow's first datagram, before the clock starts.
			before := sunk.Load()
			if _, err := conn.Write(msg); err != nil {
				b.Fatal(err)
			}
			for deadline := time.Now().Add(2 * time.Second); sunk.Load() == before && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			start, base := time.Now(), sunk.Load()
			sent := 0
			b.ResetTimer()
			for b.Loop() {
				if rate > 0 {
					// Paced in steps of 1 ms: sleep until this datagram's
					// time has come.
					if due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second))); time.Until(due) > time.Millisecond {
						time.Sleep(time.Until(due))
					}
				}
				_, _ = conn.Write(msg) // a full queue drops, as the kernel would
				sent++
			}
			b.StopTimer()
			got := sunk.Load() - base
			for last, deadline := int64(-1), time.Now().Add(500*time.Millisecond); got != last && time.Now().Before(deadline); {
				last = got
				time.Sleep(20 * time.Millisecond)
				got = sunk.Load() - base
			}
			b.ReportMetric(float64(got)/time.Since(start).Seconds(), "delivered/s")
			b.ReportMetric(1-float64(got)/float64(b.N), "lost/datagram")
		}
	}
	// kernelDNAT installs the DNAT table on node-1, which forwards
	// nodePorts 30081 (HTTP), 30084 (bulk), 30085 (UDP echo) and 30088
	// (UDP sink) to the pod, and
	// returns the first; the table is deleted when b ends.
	node1 := c.Network().Host("node-1")
	dnatPort := nodeAddr(1, 30081)
	kernelDNAT := func(b *testing.B) netip.AddrPort {
		for _, tool := range []struct{ bin, pkg string }{{"nft", "nftables"}, {"ip", "iproute2"}} {
			if _, err := exec.LookPath(tool.bin); err != nil {
				testenv.Need(b, "nft", fmt.Errorf("%s not installed: apt-get install %s", tool.bin, tool.pkg))
			}
		}
		// kube-proxy's nftables mode marks NodePort traffic for masquerade
		// (0x4000) and masquerades marked packets in postrouting; here to
		// node-1's eth0 address, distinct from the proxy's source.
		script := fmt.Sprintf(`table ip nplab-bench {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %[1]s tcp dport %[2]d meta mark set meta mark | 0x4000 dnat to %[3]s:8080
		ip daddr %[1]s tcp dport %[4]d meta mark set meta mark | 0x4000 dnat to %[3]s:9000
		ip daddr %[1]s udp dport %[5]d meta mark set meta mark | 0x4000 dnat to %[3]s:9001
		ip daddr %[1]s udp dport %[7]d meta mark set meta mark | 0x4000 dnat to %[3]s:9002
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0x4000 snat to %[6]s fully-random
	}
}
`, dnatPort.Addr(), dnatPort.Port(), p.ip, 30084, 30085, dnatPort.Addr(), 30088)
		if err := nft(node1, script); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := nft(node1, "delete table ip nplab-bench\n"); err != nil {
				b.Error(err)
			}
		})
		// One request proves the rule carries the traffic and rewrites the
		// source.
		client, closeIdle := client(false)
		defer closeIdle()
		resp, err := client.Get("http://" + dnatPort.String() + "/clientip")
		if err != nil {
			b.Fatalf("through kernel DNAT: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := dnatPort.Addr().String() + ":"; !strings.HasPrefix(string(body), want) {
			b.Fatalf("through kernel DNAT the pod saw client %q, want %s<port> (source NAT)", body, want)
		}
		return dnatPort
	}
	for _, conn := range []struct {
		name      string
		keepAlive bool
	}{{"keepalive", true}, {"newconn", false}} {
		b.Run(conn.name+"/direct", func(b *testing.B) { run(b, netip.AddrPortFrom(p.ip, 8080), conn.keepAlive) })
		b.Run(conn.name+"/nplab-proxy", func(b *testing.B) { run(b, nodeAddr(1, 30080), conn.keepAlive) })
		b.Run(conn.name+"/kernel-dnat", func(b *testing.B) { run(b, kernelDNAT(b), conn.keepAlive) })
	}
	for _, v := range []struct {
		name string
		run  func(*testing.B, netip.AddrPort)
		port uint16 // the pod's
		np   uint16 // the proxy's nodePort; kernel DNAT's is np+2
	}{{"bulk", bulk, 9000, 30082}, {"udp", udp, 9001, 30083}, {"udpflood", udpflood(0), 9002, 30086}, {"udp10k", udpflood(10000), 9002, 30086}, {"udp20k", udpflood(20000), 9002, 30086}} {
		b.Run(v.name+"/direct", func(b *testing.B) { v.run(b, netip.AddrPortFrom(p.ip, v.port)) })
		b.Run(v.name+"/nplab-proxy", func(b *testing.B) { v.run(b, nodeAddr(1, v.np)) })
		b.Run(v.name+"/kernel-dnat", func(b *testing.B) {
			kernelDNAT(b)
			v.run(b, nodeAddr(1, v.np+2))
		})
		if v.name == "bulk" {
			// The plain Go forwarder: io.Copy each way (splice
			// between two *net.TCPConn), in node-1.
			b.Run("bulk/iocopy", func(b *testing.B) {
				l, err := node1.Listen(context.Background(), "tcp4", ":30092")
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				go func() {
					for {
						in, err := l.Accept()
						if err != nil {
							return
						}
						go func() {
							out, err := node1.Dial(context.Background(), "tcp4", netip.AddrPortFrom(p.ip, 9000).String())
							if err != nil {
								in.Close()
								return
							}
							go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
							io.Copy(in, out)
							in.Close()
							out.Close()
						}()
					}
				}()
				v.run(b, nodeAddr(1, 30092))
			})
		}
	}
}

// nft runs an nftables script in h's namespace:
// ip netns exec <namespace> nft -f -
func nft(h netsim.Host, script string) error {
	cmd := exec.Command("ip", "netns", "exec", h.Namespace(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns exec %s nft -f -: %v: %s\nscript:\n%s", h.Namespace(), err, strings.TrimSpace(string(out)), script)
	}
	return nil
}
