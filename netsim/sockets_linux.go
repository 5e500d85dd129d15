//go:build linux

package netsim

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Listen opens a stream listener inside the host: network "tcp", "tcp4" or
// "sctp" (IPv4 only), address "ip:port" or ":port" (port 0 picks one; see
// Addr). The socket is created on a thread in the host's namespace and
// then used from any goroutine.
// Equivalent to: ip netns exec <ns> nc -l <port>
func (h *host) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var l net.Listener
	var err error
	switch network {
	case "tcp", "tcp4":
		err = h.do(func() error {
			var lc net.ListenConfig
			l, err = lc.Listen(ctx, network, address)
			return err
		})
	case "sctp":
		l, err = listenSCTP(h, address)
	default:
		err = &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	if err != nil {
		return nil, fmt.Errorf("in host %q: %w", h.name, err)
	}
	return l, nil
}

// ListenPacket opens a UDP socket inside the host: network "udp" or "udp4".
// Equivalent to: ip netns exec <ns> nc -u -l <port>
func (h *host) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	var err error
	switch network {
	case "udp", "udp4":
		err = h.do(func() error {
			var lc net.ListenConfig
			pc, err = lc.ListenPacket(ctx, network, address)
			return err
		})
	default:
		err = &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	if err != nil {
		return nil, fmt.Errorf("in host %q: %w", h.name, err)
	}
	return pc, nil
}

// Dial connects from inside the host: network "tcp", "tcp4", "udp", "udp4"
// or "sctp", address "ip:port". The dial gives up at ctx's deadline.
// Equivalent to: ip netns exec <ns> nc <ip> <port>
func (h *host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if err := h.checkDialNetwork(network); err != nil {
		return nil, fmt.Errorf("in host %q: %w", h.name, err)
	}
	remote, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("in host %q: %w", h.name, &net.OpError{Op: "dial", Net: network, Err: err})
	}
	return h.DialFrom(ctx, Dial{Network: network, Remote: remote})
}

func (h *host) checkDialNetwork(network string) error {
	switch network {
	case "tcp", "tcp4", "udp", "udp4", "sctp":
		return nil
	}
	return &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
}

// DialFrom is Dial with a fixed local address (SO_REUSEADDR is set when it
// has a port, so a proxy can reuse a client's source port towards several
// backends) and optionally IP_TRANSPARENT, set before bind, so the local
// address need not be one of this host's.
//
// A transparent connection's replies are addressed to an address this host
// does not have; they reach the socket only if policy routing delivers them
// locally. The complete recipe, in the dialing host, for backends at
// <backend> and port <port>:
//
//	ip rule add from <backend> ipproto tcp sport <port> lookup 100
//	ip route add local 0.0.0.0/0 dev lo table 100
//
// and the backend must route the spoofed address back through this host.
// Equivalent to: a socket with setsockopt(IP_TRANSPARENT), bind(Local), connect(Remote)
func (h *host) DialFrom(ctx context.Context, d Dial) (net.Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	err := h.checkDialNetwork(d.Network)
	if err == nil && !d.Remote.IsValid() {
		err = &net.OpError{Op: "dial", Net: d.Network, Err: fmt.Errorf("invalid remote address %v", d.Remote)}
	}
	var c net.Conn
	if err == nil && d.Network == "sctp" {
		c, err = dialSCTP(ctx, h, d)
	} else if err == nil {
		c, err = dialInet(ctx, h, d)
	}
	if err != nil {
		return nil, fmt.Errorf("in host %q: %w", h.name, err)
	}
	return c, nil
}

func setDialOpts(fd int, d Dial) error {
	if d.Transparent {
		var err error
		if d.Remote.Addr().Unmap().Is4() {
			err = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		} else {
			err = unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
		}
		if err != nil {
			return fmt.Errorf("setsockopt IP_TRANSPARENT: %w", err)
		}
	}
	if d.Local.IsValid() && d.Local.Port() != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("setsockopt SO_REUSEADDR: %w", err)
		}
	}
	return nil
}
