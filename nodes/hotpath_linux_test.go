//go:build linux

package nodes

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// The hot-path benchmarks run nplab's proxy on loopback (fakeHost: no
// root, no namespaces), so they measure the proxy's own work per datagram
// and per connection, with b.ReportAllocs: the UDP forward loop must
// report 0 allocs/op in steady state. BenchmarkForward (bench_linux_test.go)
// measures the same paths through real namespaces against direct routing
// and kernel DNAT.

// cpuTime is the CPU time this process has used, user and system: on a
// machine other work shares, CPU per op compares two runs better than
// wall time per op.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per op since start (taken
// with cpuTime when the timed loop began) as cpu-ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// udpEcho is a UDP server on loopback that answers every datagram with
// itself, allocation-free, until the test ends.
func udpEcho(tb testing.TB) netip.AddrPort {
	tb.Helper()
	uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { uc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return unmap(uc.LocalAddr().(*net.UDPAddr).AddrPort())
}

// udpProxyFront starts a test proxy with one UDP NodePort service whose
// only endpoint is backend, and returns the frontend's real address.
func udpProxyFront(tb testing.TB, backend netip.AddrPort) (*proxy, *net.UDPAddr) {
	tb.Helper()
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(tb, h, log)
	p.sync([]plane.ServicePort{{Service: "default/echo", Protocol: "UDP", NodePort: 30081, ExternalTrafficPolicy: "Cluster",
		Endpoints: []plane.Endpoint{{Pod: "echo", Node: "node-1", Addr: backend, Ready: true, Serving: true}}}})
	front, err := net.ResolveUDPAddr("udp4", h.real("0.0.0.0:30081", "udp4"))
	if err != nil {
		tb.Fatal(err)
	}
	return p, front
}

// BenchmarkUDPForward is one 64-byte datagram client → proxy → pod and its
// answer pod → proxy → client per op, on one pinned flow (the steady
// state: the flow exists). allocs/op counts every goroutine's allocations
// (the client's and the echo server's are none), so it is the proxy's per
// forwarded datagram, both ways.
func BenchmarkUDPForward(b *testing.B) {
	for _, bc := range []struct {
		name string
		// window is how many datagrams are in flight at once.
		window int
	}{{"pingpong", 1}, {"window16", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			_, front := udpProxyFront(b, udpEcho(b))
			c, err := net.DialUDP("udp4", nil, front)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := bytes.Repeat([]byte{'x'}, 64)
			buf := make([]byte, 2048)
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			// The flow's first exchange (endpoint choice, socket, flow
			// event) is not the steady state.
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			lost := 0
			cpu := cpuTime(b)
			for b.Loop() {
				for range bc.window {
					if _, err := c.Write(msg); err != nil {
						b.Fatal(err)
					}
				}
				for range bc.window {
					_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					if _, err := c.Read(buf); err != nil {
						lost++ // loopback may drop under a burst
					}
				}
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(lost)/float64(b.N*bc.window), "lost/datagram")
		})
	}
}

// BenchmarkTCPForward is the proxy on loopback per TCP connection
// (newconn: connect, 64 bytes each way, close) and in bulk (bulk: 1 MiB
// through one connection and back, per op).
func BenchmarkTCPForward(b *testing.B) {
	// An echo server: it copies what it reads back (io.Copy from a socket
	// to itself is a buffer copy).
	backend := serveLoopback(b, func(c net.Conn) {
		defer c.Close()
		_, _ = io.Copy(c, c)
	})
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(b, h, log)
	p.sync([]plane.ServicePort{{Service: "default/echo", Protocol: "TCP", NodePort: 30080, ExternalTrafficPolicy: "Cluster",
		Endpoints: []plane.Endpoint{{Pod: "echo", Node: "node-1", Addr: backend, Ready: true, Serving: true}}}})
	front := h.real("0.0.0.0:30080", "tcp4")

	b.Run("newconn", func(b *testing.B) {
		msg := bytes.Repeat([]byte{'x'}, 64)
		buf := make([]byte, 64)
		b.ReportAllocs()
		cpu := cpuTime(b)
		for b.Loop() {
			c, err := net.Dial("tcp4", front)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		reportCPU(b, cpu)
	})
	b.Run("bulk", func(b *testing.B) {
		c, err := net.Dial("tcp4", front)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		const size = 1 << 20
		chunk := make([]byte, 64<<10)
		b.ReportAllocs()
		b.SetBytes(size)
		cpu := cpuTime(b)
		for b.Loop() {
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, c, size)
				done <- err
			}()
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
}

// BenchmarkUDPFlowTable is a frontend's flow table at its cap (1024
// flows): lookup is the forward loop finding a client's flow, insert a new
// flow into the full table (it evicts one, as a flood from new source
// ports makes it do for every datagram), expire a flow's removal when it
// idles out, then its return.
func BenchmarkUDPFlowTable(b *testing.B) {
	ring := 4 * udpMaxFlows
	flows := make([]*udpFlow, ring)
	for i := range flows {
		flows[i] = &udpFlow{client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 18, byte(i >> 8), byte(i)}), uint16(40000+i))}
		flows[i].last.Store(int64(i))
	}
	full := func() *udpFlowTable {
		t := newUDPFlowTable(udpMaxFlows)
		for _, fl := range flows[:udpMaxFlows] {
			t.add(fl)
		}
		return t
	}
	b.Run("lookup", func(b *testing.B) {
		t := full()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if t.get(flows[i%udpMaxFlows].client) == nil {
				b.Fatal("flow missing")
			}
			i++
		}
	})
	b.Run("insert", func(b *testing.B) {
		t := full()
		b.ReportAllocs()
		i := udpMaxFlows
		for b.Loop() {
			fl := flows[i%ring]
			fl.last.Store(int64(i))
			t.add(fl)
			i++
		}
		if n := t.len(); n != udpMaxFlows {
			b.Fatalf("%d flows, want the cap %d", n, udpMaxFlows)
		}
	})
	b.Run("expire", func(b *testing.B) {
		t := full()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			fl := flows[i%udpMaxFlows]
			t.remove(fl)
			t.add(fl)
			i++
		}
	})
}

// TestUDPForwardAllocatesNothing keeps the UDP hot path at zero
// allocations: on a pinned flow, a datagram through the proxy and its
// answer back (both directions) allocate nothing, counted over 200
// exchanges across every goroutine of the process.
func TestUDPForwardAllocatesNothing(t *testing.T) {
	_, front := udpProxyFront(t, udpEcho(t))
	c, err := net.DialUDP("udp4", nil, front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte{'x'}, 64)
	buf := make([]byte, 2048)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	exchange := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	exchange() // the flow's start allocates: its socket, its goroutine, its event
	if n := testing.AllocsPerRun(200, exchange); n != 0 {
		t.Errorf("%v allocations per datagram exchanged through the proxy, want 0", n)
	}
}
