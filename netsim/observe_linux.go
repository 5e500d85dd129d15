//go:build linux

package netsim

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Observe opens an AF_PACKET socket (SOCK_DGRAM, so reads start at the
// IPv4 header; bound to ETH_P_IP on every interface) inside the host's
// namespace and reads it from a goroutine. A classic BPF filter (see
// observeFilter) makes the kernel copy to it only the packets the watch
// set matches, and none the host sends (pkttype PACKET_OUTGOING); until
// SetWatch it matches nothing. A packet socket is a tap: it sees a packet
// as it arrives, before routing, so what it sees is delivered, refused
// or dropped exactly as it would be without it.
//
// The socket is created with protocol 0 (it receives nothing), given its
// filter, and only then bound to ETH_P_IP, so no unfiltered packet ever
// queues on it.
// Equivalent to: ip netns exec <ns> tcpdump -i any -Q in '<the watch set as a filter>'
func (h *host) Observe(ctx context.Context) (Observer, error) {
	var fd int
	err := h.do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket AF_PACKET", err)
		}
		return nil
	})
	if err == nil {
		err = attachFilter(fd, nil)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP)})
			err = os.NewSyscallError("bind", err)
		}
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("observe in host %q: %w", h.name, err)
	}
	o := &observer{
		h:       h,
		f:       os.NewFile(uintptr(fd), "observe-"+h.nsName),
		packets: make(chan Packet, ObserveBuffer),
		done:    make(chan struct{}),
		devs:    map[int]string{},
	}
	if o.rc, err = o.f.SyscallConn(); err != nil {
		o.f.Close()
		return nil, fmt.Errorf("observe in host %q: %w", h.name, err)
	}
	go o.read()
	// The AfterFunc may run before it returns: it must not touch o.stop.
	o.stop = context.AfterFunc(ctx, func() { o.shutdown() })
	return o, nil
}

// htons returns v in network byte order, as sockaddr_ll and socket(2)
// take a protocol number.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// attachFilter compiles ws (normalized) behind notOutgoing and attaches
// it to fd, replacing the filter it had.
// Equivalent to: setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, <program>)
func attachFilter(fd int, ws []Watch) error {
	prog, err := observeFilter(ws)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(append(append([]bpf.Instruction{}, notOutgoing...), prog...))
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	err = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
	return os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err)
}

type observer struct {
	h       *host
	f       *os.File
	rc      syscall.RawConn
	packets chan Packet
	done    chan struct{} // closed when read returns
	stop    func() bool   // stops the context's AfterFunc

	mu      sync.Mutex // guards watches and kernel; serializes SetWatch
	watches []Watch
	kernel  unix.TpacketStats // PACKET_STATISTICS summed (reading resets them)

	dropped   atomic.Uint64 // Packets was full
	closeOnce sync.Once
	closeErr  error

	devs map[int]string // ifindex → name; used by read only
}

var _ Observer = (*observer)(nil)

// SetWatch replaces the socket's filter (SO_ATTACH_FILTER replaces
// atomically) and the set read checks packets against, so a packet that
// was queued before the change but no longer matches is not delivered.
func (o *observer) SetWatch(ws []Watch) error {
	nws, err := normalizeWatches(ws)
	if err == nil {
		o.mu.Lock()
		defer o.mu.Unlock()
		var serr error
		err = o.rc.Control(func(fd uintptr) { serr = attachFilter(int(fd), nws) })
		if err == nil {
			err = serr
		}
		if err == nil {
			o.watches = nws
		}
	}
	if err != nil {
		return fmt.Errorf("observe in host %q: set watch: %w", o.h.name, err)
	}
	return nil
}

func (o *observer) Packets() <-chan Packet { return o.packets }

// Dropped is the packets Packets had no room for plus those the kernel
// dropped because the socket's receive buffer was full.
func (o *observer) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pollStatsLocked()
	return o.dropped.Load() + uint64(o.kernel.Drops)
}

// pollStatsLocked adds the kernel's counters since the last call (reading
// PACKET_STATISTICS resets them). Once the socket is closed it does
// nothing.
func (o *observer) pollStatsLocked() {
	o.rc.Control(func(fd uintptr) {
		st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err == nil {
			o.kernel.Packets += st.Packets
			o.kernel.Drops += st.Drops
		}
	})
}

// kernelPackets is how many packets the kernel's filter passed to the
// socket (dropped ones included): tests use it to check that unwatched
// traffic never reaches the socket.
func (o *observer) kernelPackets() uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pollStatsLocked()
	return o.kernel.Packets
}

// Close closes the socket, which wakes the reading goroutine, and waits
// for it to close Packets.
func (o *observer) Close() error {
	o.stop()
	return o.shutdown()
}

// shutdown is Close without stopping the context's AfterFunc (which calls
// it).
func (o *observer) shutdown() error {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.pollStatsLocked()
		o.mu.Unlock()
		o.closeErr = o.f.Close()
	})
	<-o.done
	return o.closeErr
}

// read delivers packets until the socket is closed, then closes Packets.
// It never blocks on Packets: a packet it has no room for is counted in
// dropped.
func (o *observer) read() {
	defer close(o.done)
	defer close(o.packets)
	buf := make([]byte, observeSnapLen)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := o.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			// EINTR, or a socket error the kernel reports once (and
			// clears): neither ends the observer.
			continue
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		proto, src, dst, ok := parseObserved(buf[:n])
		if !ok {
			continue
		}
		o.mu.Lock()
		ok = watched(o.watches, proto, dst)
		o.mu.Unlock()
		if !ok {
			continue
		}
		p := Packet{Time: time.Now(), Protocol: proto, Src: src, Dst: dst, Dev: o.dev(ll.Ifindex)}
		select {
		case o.packets <- p:
		default:
			o.dropped.Add(1)
		}
	}
}

// dev names interface index i in the host, asking netlink once per index.
// Interface indexes are not reused soon within a namespace, so the cache
// does not go stale in a lab's lifetime.
func (o *observer) dev(i int) string {
	if name, ok := o.devs[i]; ok {
		return name
	}
	var name string
	err := o.h.withNetlink(func(nlh netlinksafe.Handle) error {
		l, err := nlh.LinkByIndex(i)
		if err == nil {
			name = l.Attrs().Name
		}
		return err
	})
	if err != nil || name == "" {
		return "if" + strconv.Itoa(i) // not cached: the next packet asks again
	}
	o.devs[i] = name
	return name
}
