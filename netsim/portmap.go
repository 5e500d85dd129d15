package netsim

import (
	"fmt"
	"net/netip"
)

// PortMap is one hostPort mapping of a node, as the CNI portmap plugin
// makes it: a connection or datagram to any of the host's own addresses
// (or to HostIP, when set) on HostPort is DNATed to Pod. The pod sees the
// client's own address.
type PortMap struct {
	Protocol string // "TCP", "UDP" or "SCTP"
	HostIP   netip.Addr
	HostPort uint16
	Pod      netip.AddrPort
}

func (m PortMap) String() string {
	host := "*"
	if m.HostIP.IsValid() {
		host = m.HostIP.String()
	}
	return fmt.Sprintf("%s %s:%d → %s", m.Protocol, host, m.HostPort, m.Pod)
}

// PortMapTable is the nftables table SetPortMaps keeps in a host's
// namespace: `ip netns exec <ns> nft list table ip nplab-hostport` shows it.
const PortMapTable = "nplab-hostport"
