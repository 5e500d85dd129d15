//go:build linux

package netsim

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// SetPortMaps makes maps the complete set of hostPort mappings of host h,
// in one nftables transaction in h's namespace (nothing else of the host's
// is touched): table ip nplab-hostport, whose chains hook prerouting
// (traffic from other hosts and from the pods) and output (from h itself)
// at the dstnat priority, like the portmap plugin's CNI-HOSTPORT-DNAT, and
// postrouting at srcnat for the one case portmap masquerades, a pod that
// reaches its own hostPort (hairpin). An empty maps leaves the table empty.
//
// Equivalent to:
//
//	ip netns exec <ns> nft -f - <<EOF
//	table ip nplab-hostport {
//	  chain prerouting { type nat hook prerouting priority dstnat;
//	    fib daddr type local tcp dport 8080 dnat to 10.244.1.2:80 }
//	  chain output { type nat hook output priority dstnat;
//	    fib daddr type local tcp dport 8080 dnat to 10.244.1.2:80 }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr 10.244.1.2 ip daddr 10.244.1.2 tcp dport 80 masquerade }
//	}
//	EOF
func SetPortMaps(h Host, maps []PortMap) error {
	ns, err := netns.GetFromPath(filepath.Join(netnsDir, h.Namespace()))
	if err != nil {
		return fmt.Errorf("hostPort mappings on %s: open its namespace: %w", h.Name(), err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("hostPort mappings on %s: %w", h.Name(), err)
	}
	defer c.CloseLasting()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: PortMapTable})
	c.FlushTable(t)
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	for _, m := range maps {
		proto, err := l4proto(m.Protocol)
		if err != nil {
			return fmt.Errorf("hostPort mappings on %s: %s: %w", h.Name(), m, err)
		}
		if !m.Pod.Addr().Is4() || (m.HostIP.IsValid() && !m.HostIP.Is4()) {
			return fmt.Errorf("hostPort mappings on %s: %s: IPv4 only", h.Name(), m)
		}
		var match []expr.Any
		if m.HostIP.IsValid() {
			// ip daddr <hostIP>
			match = append(match,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m.HostIP.AsSlice()})
		} else {
			// fib daddr type local
			match = append(match,
				&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)})
		}
		match = append(match, l4port(proto, 2, m.HostPort)...)
		dnat := append(match,
			&expr.Immediate{Register: 1, Data: m.Pod.Addr().AsSlice()},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, m.Pod.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true})
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: dnat})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: dnat})
		// Hairpin: ip saddr <pod> ip daddr <pod> <proto> dport <port> masquerade
		pod := m.Pod.Addr().AsSlice()
		hair := []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: pod},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: pod},
		}
		hair = append(hair, l4port(proto, 2, m.Pod.Port())...)
		hair = append(hair, &expr.Masq{})
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: hair})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("hostPort mappings on %s: nftables: %w", h.Name(), err)
	}
	return nil
}

func l4proto(p string) (byte, error) {
	switch strings.ToUpper(p) {
	case "", "TCP":
		return unix.IPPROTO_TCP, nil
	case "UDP":
		return unix.IPPROTO_UDP, nil
	case "SCTP":
		return unix.IPPROTO_SCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q", p)
}

// l4port matches `meta l4proto <proto> th dport <port>` (TCP, UDP and
// SCTP all keep the destination port at offset 2), clobbering register 1.
func l4port(proto byte, _ uint32, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}
