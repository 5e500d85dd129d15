//go:build linux

package nodes

import (
	"net/netip"
	"strings"
	"testing"
)

// TestDNATRules: the kernel-dnat path's rules are kube-proxy's: DNAT of
// each nodePort to the pod, a 0x4000 mark, masquerade of marked packets.
func TestDNATRules(t *testing.T) {
	tcpF, udpF := netip.MustParseAddrPort("172.18.0.2:30080"), netip.MustParseAddrPort("172.18.0.2:30081")
	tcpP, udpP := netip.MustParseAddrPort("10.244.1.2:5201"), netip.MustParseAddrPort("10.244.1.2:5202")
	nft := nftDNAT(tcpF, udpF, tcpP, udpP)
	for _, want := range []string{
		"table ip nplab-bench {",
		"ip daddr 172.18.0.2 tcp dport 30080 meta mark set meta mark | 0x4000 dnat to 10.244.1.2:5201",
		"ip daddr 172.18.0.2 udp dport 30081 meta mark set meta mark | 0x4000 dnat to 10.244.1.2:5202",
		"meta mark & 0x4000 == 0x4000 masquerade fully-random",
	} {
		if !strings.Contains(nft, want) {
			t.Errorf("nft script lacks %q:\n%s", want, nft)
		}
	}
	ipt := iptablesDNAT(tcpF, udpF, tcpP, udpP)
	for _, want := range []string{
		"*nat\n",
		"-A NPLAB-BENCH -d 172.18.0.2/32 -p tcp --dport 30080 -j DNAT --to-destination 10.244.1.2:5201\n",
		"-A NPLAB-BENCH -d 172.18.0.2/32 -p udp --dport 30081 -j MARK --set-xmark 0x4000/0x4000\n",
		"-A NPLAB-BENCH-POST -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\n",
		"COMMIT\n",
	} {
		if !strings.Contains(ipt, want) {
			t.Errorf("iptables-restore input lacks %q:\n%s", want, ipt)
		}
	}
}

func TestTailWriter(t *testing.T) {
	var w tailWriter
	w.Write([]byte("[ALERT] cannot\n  bind"))
	w.Write([]byte(strings.Repeat("x", 600)))
	if got := w.String(); len(got) != 512 || strings.Contains(got, "ALERT") {
		t.Errorf("tail = %d bytes %q...", len(got), got[:20])
	}
}
