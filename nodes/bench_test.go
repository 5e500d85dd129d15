package nodes

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
)

// BenchmarkForward compares, in one run, an HTTP request/response through
// nplab's userspace proxy (node-2 → node-1's nodePort → a pod on node-1)
// with the same request sent straight to the pod (node-2 → pod IP), over a
// kept-alive connection and with a new connection per request. Both paths
// cross the bridge and the pod's veth once; the proxy adds node-1's accept,
// dial and copy.
//
// The third baseline, kernel DNAT (what kube-proxy's iptables/nftables
// modes do), needs the iptables or nft tools, which this machine lacks;
// that sub-benchmark skips saying so.
func BenchmarkForward(b *testing.B) {
	c, log := newCluster(b, 2, ProxyRandom)
	p := startPod(b, c, log, 1, 10, agnhost("bench-1"), true)
	c.SyncServices([]ServicePort{{Service: "default/bench", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, p)}})
	from := c.Network().Host("node-2")
	run := func(b *testing.B, target netip.AddrPort, keepAlive bool) {
		tr := &http.Transport{DisableKeepAlives: !keepAlive, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return from.Dial(ctx, "tcp", addr)
		}}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		url := "http://" + target.String() + "/hostname"
		b.ResetTimer()
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
	}
	for _, conn := range []struct {
		name      string
		keepAlive bool
	}{{"keepalive", true}, {"newconn", false}} {
		b.Run(conn.name+"/direct", func(b *testing.B) { run(b, netip.AddrPortFrom(p.ip, 8080), conn.keepAlive) })
		b.Run(conn.name+"/nplab-proxy", func(b *testing.B) { run(b, nodeAddr(1, 30080), conn.keepAlive) })
		b.Run(conn.name+"/kernel-dnat", func(b *testing.B) {
			b.Skip("kernel DNAT baseline needs iptables or nft, which this machine does not have")
		})
	}
}
