package netsim

// The parts of Host.Observe that need no kernel: checking a watch set,
// compiling it to the classic BPF filter the Linux backend attaches to its
// packet socket, and parsing what that socket reads. They build on every
// platform so their tests run without root.

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
)

// observeSnapLen is how many bytes of each matching packet the kernel
// copies to an observer: the longest IPv4 header (60 bytes) and the
// transport header as far as the parser reads (TCP flags at 13, SCTP's
// first chunk type at 12).
const observeSnapLen = 96

// bpfMaxInstructions is the kernel's limit on a classic BPF program
// (BPF_MAXINSNS).
const bpfMaxInstructions = 4096

// IPv4 protocol numbers.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

var observedProtocols = []struct {
	name  string
	proto uint8
}{{"TCP", protoTCP}, {"UDP", protoUDP}, {"SCTP", protoSCTP}}

func protocolNumber(name string) (uint8, bool) {
	for _, p := range observedProtocols {
		if p.name == name {
			return p.proto, true
		}
	}
	return 0, false
}

// normalizeWatches checks ws and returns it sorted (by protocol, port,
// address) without duplicates, every address IPv4 and an unspecified one
// as 0.0.0.0. A watch made redundant by a 0.0.0.0 one of the same protocol
// and port is dropped.
func normalizeWatches(ws []Watch) ([]Watch, error) {
	out := make([]Watch, 0, len(ws))
	for _, w := range ws {
		if _, ok := protocolNumber(w.Protocol); !ok {
			return nil, fmt.Errorf("watch %s %s: unknown protocol %q (want TCP, UDP or SCTP)", w.Protocol, w.Dst, w.Protocol)
		}
		if w.Dst.Port() == 0 {
			return nil, fmt.Errorf("watch %s %s: port 0", w.Protocol, w.Dst)
		}
		a := w.Dst.Addr().Unmap()
		switch {
		case !a.IsValid() || a.IsUnspecified():
			a = netip.IPv4Unspecified()
		case !a.Is4():
			return nil, fmt.Errorf("watch %s %s: only IPv4 is observed", w.Protocol, w.Dst)
		}
		out = append(out, Watch{Protocol: w.Protocol, Dst: netip.AddrPortFrom(a, w.Dst.Port())})
	}
	slices.SortFunc(out, func(x, y Watch) int {
		return cmp.Or(cmp.Compare(x.Protocol, y.Protocol), cmp.Compare(x.Dst.Port(), y.Dst.Port()), x.Dst.Addr().Compare(y.Dst.Addr()))
	})
	out = slices.Compact(out)
	type protoPort struct {
		proto string
		port  uint16
	}
	anyAddr := map[protoPort]bool{}
	for _, w := range out {
		if w.Dst.Addr().IsUnspecified() {
			anyAddr[protoPort{w.Protocol, w.Dst.Port()}] = true
		}
	}
	return slices.DeleteFunc(out, func(w Watch) bool {
		return !w.Dst.Addr().IsUnspecified() && anyAddr[protoPort{w.Protocol, w.Dst.Port()}]
	}), nil
}

// watched reports whether a packet of protocol to dst matches ws.
func watched(ws []Watch, protocol string, dst netip.AddrPort) bool {
	for _, w := range ws {
		if w.Protocol == protocol && w.Dst.Port() == dst.Port() && (w.Dst.Addr().IsUnspecified() || w.Dst.Addr() == dst.Addr()) {
			return true
		}
	}
	return false
}

// observeFilter compiles normalized watches to a classic BPF program that
// runs on the network header (a SOCK_DGRAM packet socket's view: offset 0
// is the IPv4 header) and accepts observeSnapLen bytes of a matching
// packet, nothing of any other. In tcpdump's words, for ws = TCP 0.0.0.0:P
// and UDP A:Q:
//
//	ip and ip[6:2] & 0x1fff == 0 and (
//	  (tcp and tcp[13] & 0x12 == 0x02 and tcp dst port P) or
//	  (udp and udp dst port Q and ip dst A))
//
// (SCTP: ip[9] == 132 and the byte after its 12-byte common header, the
// first chunk's type, is 1, INIT). The transport header starts after the
// IPv4 header's IHL words: ldxb 4*([0]&0xf). The Linux backend puts a
// check of the packet type (not PACKET_OUTGOING) in front (see
// notOutgoing). An empty ws gives a program that accepts nothing.
func observeFilter(ws []Watch) ([]bpf.Instruction, error) {
	if len(ws) == 0 {
		return []bpf.Instruction{bpf.RetConstant{Val: 0}}, nil
	}
	var a bpfAsm
	// IPv4, and the first (or only) fragment: later ones have no
	// transport header.
	a.add(bpf.LoadAbsolute{Off: 0, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.ifNot(0x40, "reject")
	a.add(bpf.LoadAbsolute{Off: 6, Size: 2})
	a.ifSet(0x1fff, "reject")
	a.add(bpf.LoadMemShift{Off: 0}, bpf.LoadAbsolute{Off: 9, Size: 1})
	for _, p := range observedProtocols {
		if slices.ContainsFunc(ws, func(w Watch) bool { return w.Protocol == p.name }) {
			a.ifEqual(uint32(p.proto), p.name)
		}
	}
	a.goTo("reject")
	for _, p := range observedProtocols {
		// ws is normalized: sorted, and a port watched for any address
		// has no other watch.
		var anyAddr, specific []uint16
		for _, w := range ws {
			switch {
			case w.Protocol != p.name:
			case w.Dst.Addr().IsUnspecified():
				anyAddr = append(anyAddr, w.Dst.Port())
			case !slices.Contains(specific, w.Dst.Port()):
				specific = append(specific, w.Dst.Port())
			}
		}
		if len(anyAddr)+len(specific) == 0 {
			continue
		}
		a.mark(p.name)
		switch p.proto {
		case protoTCP: // SYN set, ACK clear
			a.add(bpf.LoadIndirect{Off: 13, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12})
			a.ifNot(0x02, "reject")
		case protoSCTP: // first chunk INIT
			a.add(bpf.LoadIndirect{Off: 12, Size: 1})
			a.ifNot(1, "reject")
		}
		a.add(bpf.LoadIndirect{Off: 2, Size: 2}) // destination port
		// Ports watched for any address: runs of "jeq #port, accept",
		// each run ending in its own copy of the accept so the
		// conditional jumps stay short (one instruction per port).
		for run := range slices.Chunk(anyAddr, bpfRun) {
			label := fmt.Sprintf("%s/run%d", p.name, run[0])
			for _, port := range run {
				a.jeqNear(uint32(port), label)
			}
			next := label + "/next"
			a.goTo(next)
			a.mark(label)
			a.add(bpf.RetConstant{Val: observeSnapLen})
			a.mark(next)
		}
		// Ports watched for some addresses: a far jump to a block that
		// compares the destination address.
		for _, port := range specific {
			a.ifEqual(uint32(port), fmt.Sprintf("%s/%d", p.name, port))
		}
		a.goTo("reject")
		for _, port := range specific {
			a.mark(fmt.Sprintf("%s/%d", p.name, port))
			a.add(bpf.LoadAbsolute{Off: 16, Size: 4}) // destination address
			for _, w := range ws {
				if w.Protocol == p.name && w.Dst.Port() == port {
					a.ifEqual(binary.BigEndian.Uint32(w.Dst.Addr().AsSlice()), "accept")
				}
			}
			a.goTo("reject")
		}
	}
	a.mark("accept")
	a.add(bpf.RetConstant{Val: observeSnapLen})
	a.mark("reject")
	a.add(bpf.RetConstant{Val: 0})
	prog, err := a.program()
	if err == nil && len(prog)+len(notOutgoing) > bpfMaxInstructions {
		err = fmt.Errorf("%d watches need a filter of %d instructions; the kernel allows %d", len(ws), len(prog)+len(notOutgoing), bpfMaxInstructions)
	}
	return prog, err
}

// notOutgoing is the start of the filter the Linux backend attaches: it
// rejects packets the host sends (a packet socket on all interfaces sees
// both directions). It loads the kernel's skb->pkt_type, which
// golang.org/x/net/bpf's VM does not implement, so observeFilter's tests
// run the program without it.
var notOutgoing = []bpf.Instruction{
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 4 /* PACKET_OUTGOING */, SkipTrue: 1},
	bpf.RetConstant{Val: 0},
}

// bpfRun is how many ports one run of short conditional jumps compares
// (a conditional jump skips at most 255 instructions).
const bpfRun = 200

// bpfAsm assembles a BPF program with named jump targets. Conditional
// jumps skip at most 255 instructions, so a branch to a far target is a
// conditional jump over an unconditional one (whose 32-bit offset reaches
// anywhere); jeqNear is for targets known to be near, and program checks
// that they are.
type bpfAsm struct {
	ins    []bpf.Instruction
	labels map[string]int
	jumps  map[int]string // index of a bpf.Jump, or a near bpf.JumpIf → its target
}

func (a *bpfAsm) add(ins ...bpf.Instruction) { a.ins = append(a.ins, ins...) }

func (a *bpfAsm) mark(label string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[label] = len(a.ins)
}

func (a *bpfAsm) goTo(label string) {
	if a.jumps == nil {
		a.jumps = map[int]string{}
	}
	a.jumps[len(a.ins)] = label
	a.add(bpf.Jump{})
}

// jeqNear jumps to label, at most 255 instructions ahead, when A == v.
func (a *bpfAsm) jeqNear(v uint32, label string) {
	if a.jumps == nil {
		a.jumps = map[int]string{}
	}
	a.jumps[len(a.ins)] = label
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v})
}

// ifEqual jumps to label when A == v.
func (a *bpfAsm) ifEqual(v uint32, label string) {
	a.add(bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: v, SkipTrue: 1})
	a.goTo(label)
}

// ifNot jumps to label when A != v.
func (a *bpfAsm) ifNot(v uint32, label string) {
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: 1})
	a.goTo(label)
}

// ifSet jumps to label when A & mask != 0.
func (a *bpfAsm) ifSet(mask uint32, label string) {
	a.add(bpf.JumpIf{Cond: bpf.JumpBitsNotSet, Val: mask, SkipTrue: 1})
	a.goTo(label)
}

func (a *bpfAsm) program() ([]bpf.Instruction, error) {
	for i, label := range a.jumps {
		to, ok := a.labels[label]
		if !ok || to <= i {
			return nil, fmt.Errorf("bpf: jump from %d to %q (%d, %v)", i, label, to, ok)
		}
		skip := to - i - 1
		switch ins := a.ins[i].(type) {
		case bpf.JumpIf:
			if skip > 255 {
				return nil, fmt.Errorf("bpf: conditional jump from %d to %q (%d) is too far", i, label, to)
			}
			ins.SkipTrue = uint8(skip)
			a.ins[i] = ins
		default:
			a.ins[i] = bpf.Jump{Skip: uint32(skip)}
		}
	}
	return a.ins, nil
}

// parseObserved parses an IPv4 packet (from its network header, possibly
// cut at observeSnapLen) and returns its protocol and addresses if it is
// one an observer reports: a TCP SYN without ACK, an SCTP packet whose
// first chunk is INIT, or a UDP datagram, not a later fragment. Anything
// short, garbled or else returns ok false.
func parseObserved(b []byte) (protocol string, src, dst netip.AddrPort, ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return "", src, dst, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl || binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return "", src, dst, false
	}
	l4 := b[ihl:]
	switch b[9] {
	case protoTCP:
		if len(l4) < 14 || l4[13]&0x12 != 0x02 {
			return "", src, dst, false
		}
		protocol = "TCP"
	case protoUDP:
		if len(l4) < 8 {
			return "", src, dst, false
		}
		protocol = "UDP"
	case protoSCTP:
		if len(l4) < 13 || l4[12] != 1 {
			return "", src, dst, false
		}
		protocol = "SCTP"
	default:
		return "", src, dst, false
	}
	srcIP := netip.AddrFrom4([4]byte(b[12:16]))
	dstIP := netip.AddrFrom4([4]byte(b[16:20]))
	src = netip.AddrPortFrom(srcIP, binary.BigEndian.Uint16(l4[0:2]))
	dst = netip.AddrPortFrom(dstIP, binary.BigEndian.Uint16(l4[2:4]))
	return protocol, src, dst, true
}
