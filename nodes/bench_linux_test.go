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
	"testing"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// BenchmarkForward compares, in one run, an HTTP request/response from
// node-2 to a pod on node-1 over three paths, each with a kept-alive
// connection (keepalive/...) and with a new connection per request
// (newconn/...):
//
//   - direct: straight to the pod IP; node-1 only routes the packets.
//   - nplab-proxy: to node-1's nodePort 30080, where nplab's userspace
//     proxy accepts, dials the pod and copies both ways.
//   - kernel-dnat: to node-1's spare nodePort 30081, where an nftables
//     rule in node-1's namespace rewrites the packets to the pod, as
//     kube-proxy's nftables mode does: table ip nplab-bench, prerouting
//     "dnat to <podIP>:8080" and postrouting masquerade (the pod sees
//     10.244.1.1, as with the proxy under Cluster policy).
//
// All three cross the bridge, node-1 and the pod's veth once each way. Read
// the ratios within one connection variant: nplab-proxy/direct is what the
// userspace proxy costs over plain routing, kernel-dnat/direct what
// conntrack and NAT cost, and nplab-proxy/kernel-dnat how far nplab is from
// real kube-proxy. The nftables table exists only while kernel-dnat runs,
// so the other two paths never pass through conntrack.
//
// kernel-dnat runs nft as `ip netns exec <node-1's namespace> nft -f -`
// and skips when nft is missing ("apt-get install nftables"); with "nft"
// in NPLAB_REQUIRE it fails instead.
func BenchmarkForward(b *testing.B) {
	c, log := newCluster(b, 2, plane.ProxyRandom)
	p := startPod(b, c, log, 1, 10, agnhost("bench-1"), true)
	c.SyncServices([]plane.ServicePort{{Service: "default/bench", Protocol: "TCP", ClusterIP: clusterIP, Port: 80, NodePort: 30080,
		ExternalTrafficPolicy: "Cluster", Endpoints: endpoints(8080, p)}})
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
	// kernelDNAT installs the DNAT table on node-1 and returns the nodePort
	// it serves; the table is deleted when b ends.
	node1 := c.Network().Host("node-1")
	dnatPort := nodeAddr(1, 30081)
	kernelDNAT := func(b *testing.B) netip.AddrPort {
		for _, tool := range []struct{ bin, pkg string }{{"nft", "nftables"}, {"ip", "iproute2"}} {
			if _, err := exec.LookPath(tool.bin); err != nil {
				testenv.Need(b, "nft", fmt.Errorf("%s not installed: apt-get install %s", tool.bin, tool.pkg))
			}
		}
		// kube-proxy's nftables mode marks NodePort traffic for masquerade
		// (0x4000) and masquerades marked packets in postrouting.
		script := fmt.Sprintf(`table ip nplab-bench {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d meta mark set meta mark | 0x4000 dnat to %s
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0x4000 masquerade fully-random
	}
}
`, dnatPort.Addr(), dnatPort.Port(), netip.AddrPortFrom(p.ip, 8080))
		if err := nft(node1, script); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := nft(node1, "delete table ip nplab-bench\n"); err != nil {
				b.Error(err)
			}
		})
		// One request proves the rule carries the traffic and masquerades.
		client, closeIdle := client(false)
		defer closeIdle()
		resp, err := client.Get("http://" + dnatPort.String() + "/clientip")
		if err != nil {
			b.Fatalf("through kernel DNAT: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "10.244.1.1:"; !strings.HasPrefix(string(body), want) {
			b.Fatalf("through kernel DNAT the pod saw client %q, want %s<port> (masquerade)", body, want)
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
