//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// localRulePriority is where a host's `lookup local` rule moves (from
// priority 0) the first time a rule with a lower priority is added, so that
// such rules (blackholes) are consulted before local delivery.
const localRulePriority = 100

// ipNet converts a prefix to the net package's form, keeping the address
// bits (an interface address is 10.0.0.1/24, not 10.0.0.0/24).
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// AddAddr adds an address to dev; an address that is already there is
// success.
// Equivalent to: ip -n <ns> addr add <p> dev <dev>
func (h *host) AddAddr(dev string, p netip.Prefix) error {
	err := h.withNetlink(func(nlh netlinksafe.Handle) error {
		l, err := nlh.LinkByName(dev)
		if err != nil {
			return err
		}
		return addAddr(nlh, l, p)
	})
	if err != nil {
		return fmt.Errorf("add address %s to %s in host %q: %w", p, dev, h.name, err)
	}
	return nil
}

func addAddr(nlh netlinksafe.Handle, l netlink.Link, p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("invalid prefix")
	}
	err := nlh.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)})
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// DelAddr removes an address from dev; an address that is not there is
// success.
// Equivalent to: ip -n <ns> addr del <p> dev <dev>
func (h *host) DelAddr(dev string, p netip.Prefix) error {
	err := h.withNetlink(func(nlh netlinksafe.Handle) error {
		l, err := nlh.LinkByName(dev)
		if err != nil {
			return err
		}
		err = nlh.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)})
		if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete address %s from %s in host %q: %w", p, dev, h.name, err)
	}
	return nil
}

// AddRoute adds r, replacing a route to the same destination in the same
// table (so adding twice is harmless). A Local route delivers matching
// packets to this host, which is what a transparent proxy needs.
// Equivalent to: ip -n <ns> route replace <Dst> [via <Via>] [dev <Dev>] [src <Src>] [table <Table>]
// or, Local: ip -n <ns> route replace local <Dst> dev lo table <Table>
//
// The kernel deletes every route through an interface that is set down;
// the host remembers its routes and adds them back when one of its links
// is set up again with Link.SetUp(true).
func (h *host) AddRoute(r Route) error {
	err := h.withNetlink(func(nlh netlinksafe.Handle) error {
		nr, err := h.netlinkRoute(nlh, r)
		if err != nil {
			return err
		}
		if err := nlh.RouteReplace(nr); err != nil {
			return err
		}
		h.routes = slices.DeleteFunc(h.routes, func(o Route) bool { return o.Dst == r.Dst && o.Table == r.Table })
		h.routes = append(h.routes, r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("add route %s in host %q: %w", describeRoute(r), h.name, err)
	}
	return nil
}

func describeRoute(r Route) string {
	var b strings.Builder
	if r.Local {
		b.WriteString("local ")
	}
	b.WriteString(r.Dst.String())
	if r.Via.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Via)
	}
	if r.Dev != "" {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	if r.Table != 0 {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	return b.String()
}

// netlinkRoute converts r; h.mu is held.
func (h *host) netlinkRoute(nlh netlinksafe.Handle, r Route) (*netlink.Route, error) {
	if !r.Dst.IsValid() {
		return nil, errors.New("a route needs a destination prefix")
	}
	nr := &netlink.Route{Family: family(r.Dst.Addr()), Dst: ipNet(r.Dst.Masked()), Table: r.Table}
	dev := r.Dev
	if r.Local && dev == "" {
		dev = "lo"
	}
	if dev == "" && !r.Via.IsValid() {
		return nil, errors.New("a route needs a gateway (Via) or an interface (Dev)")
	}
	if dev != "" {
		i, err := h.devIndexLocked(nlh, dev)
		if err != nil {
			return nil, err
		}
		nr.LinkIndex = i
	}
	if r.Via.IsValid() {
		nr.Gw = net.IP(r.Via.AsSlice())
	}
	if r.Src.IsValid() {
		nr.Src = net.IP(r.Src.AsSlice())
	}
	switch {
	case r.Local:
		nr.Type = unix.RTN_LOCAL
		nr.Scope = netlink.SCOPE_HOST
	case !r.Via.IsValid():
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr, nil
}

// replayRoutes adds the host's routes again (after a link came back up:
// the kernel dropped those through it). Routes that still cannot be added
// (their link is still down) are skipped.
func (h *host) replayRoutes() error {
	return h.withNetlink(func(nlh netlinksafe.Handle) error {
		var first error
		kept := h.routes[:0]
		for _, r := range h.routes {
			nr, err := h.netlinkRoute(nlh, r)
			var gone netlink.LinkNotFoundError
			if errors.As(err, &gone) {
				// Its device went with a removed host (a pod's veth):
				// the route is gone for good, forget it.
				continue
			}
			kept = append(kept, r)
			if err == nil {
				err = nlh.RouteReplace(nr)
			}
			if err != nil && !errors.Is(err, unix.ENETUNREACH) && !errors.Is(err, unix.ENETDOWN) && first == nil {
				first = fmt.Errorf("restore route %s in host %q: %w", describeRoute(r), h.name, err)
			}
		}
		h.routes = kept
		return first
	})
}

// netlinkRule converts r; it is also the filter DelRule deletes by.
func netlinkRule(r Rule) (*netlink.Rule, error) {
	nr := netlink.NewRule()
	nr.Family = unix.AF_INET
	if r.Priority < 0 {
		return nil, fmt.Errorf("negative priority %d", r.Priority)
	}
	if r.Priority > 0 {
		nr.Priority = r.Priority
	}
	nr.IifName = r.IIF
	if r.From.IsValid() {
		nr.Family = family(r.From.Addr())
		nr.Src = ipNet(r.From.Masked())
	}
	switch r.Proto {
	case "":
	case "tcp":
		nr.IPProto = unix.IPPROTO_TCP
	case "udp":
		nr.IPProto = unix.IPPROTO_UDP
	case "sctp":
		nr.IPProto = unix.IPPROTO_SCTP
	default:
		return nil, fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", r.Proto)
	}
	if r.SPort != 0 {
		nr.Sport = netlink.NewRulePortRange(r.SPort, r.SPort)
	}
	if r.DPort != 0 {
		nr.Dport = netlink.NewRulePortRange(r.DPort, r.DPort)
	}
	if r.Blackhole {
		nr.Type = unix.RTN_BLACKHOLE // FR_ACT_BLACKHOLE
	} else {
		nr.Table = r.Table
		if nr.Table == 0 {
			nr.Table = unix.RT_TABLE_MAIN
		}
	}
	return nr, nil
}

func describeRule(r Rule) string {
	var b strings.Builder
	if r.Priority > 0 {
		fmt.Fprintf(&b, "pref %d ", r.Priority)
	}
	if r.IIF != "" {
		fmt.Fprintf(&b, "iif %s ", r.IIF)
	}
	if r.From.IsValid() {
		fmt.Fprintf(&b, "from %s ", r.From)
	}
	if r.Proto != "" {
		fmt.Fprintf(&b, "ipproto %s ", r.Proto)
	}
	if r.SPort != 0 {
		fmt.Fprintf(&b, "sport %d ", r.SPort)
	}
	if r.DPort != 0 {
		fmt.Fprintf(&b, "dport %d ", r.DPort)
	}
	if r.Blackhole {
		b.WriteString("blackhole")
	} else {
		table := r.Table
		if table == 0 {
			table = unix.RT_TABLE_MAIN
		}
		fmt.Fprintf(&b, "lookup %d", table)
	}
	return b.String()
}

// AddRule adds a policy-routing rule; a rule that is already there is
// success. Priority 0 lets the kernel choose (just before the main table's
// rule, as `ip rule add` does).
// Equivalent to: ip -n <ns> rule add [pref P] [iif I] [from F] [ipproto X] [sport S] [dport D] (lookup T | blackhole)
//
// Every namespace starts with `lookup local` at priority 0, which no other
// rule can precede. The first time a rule with a priority below 100 is
// added, the host moves it to 100:
//
//	ip -n <ns> rule add pref 100 lookup local
//	ip -n <ns> rule del pref 0 lookup local
//
// so that, say, a blackhole rule at priority 10 drops packets for the
// host's own addresses before they are delivered.
func (h *host) AddRule(r Rule) error {
	nr, err := netlinkRule(r)
	if err == nil {
		err = h.withNetlink(func(nlh netlinksafe.Handle) error {
			if r.Priority > 0 && r.Priority < localRulePriority && !h.localMoved {
				if err := moveLocalRule(nlh, nr.Family); err != nil {
					return fmt.Errorf("move the local table's rule to priority %d: %w", localRulePriority, err)
				}
				h.localMoved = true
			}
			err := nlh.RuleAdd(nr)
			if errors.Is(err, unix.EEXIST) {
				return nil
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("add rule %q in host %q: %w", describeRule(r), h.name, err)
	}
	return nil
}

func moveLocalRule(nlh netlinksafe.Handle, fam int) error {
	local := netlink.NewRule()
	local.Family = fam
	local.Priority = localRulePriority
	local.Table = unix.RT_TABLE_LOCAL
	if err := nlh.RuleAdd(local); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	local.Priority = 0
	if err := nlh.RuleDel(local); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// DelRule deletes a rule added by AddRule; a missing rule is success.
// Equivalent to: ip -n <ns> rule del <the same selectors>
func (h *host) DelRule(r Rule) error {
	nr, err := netlinkRule(r)
	if err == nil {
		err = h.withNetlink(func(nlh netlinksafe.Handle) error {
			err := nlh.RuleDel(nr)
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("delete rule %q in host %q: %w", describeRule(r), h.name, err)
	}
	return nil
}

// Sysctl writes /proc/sys/<key with dots as slashes> from a thread inside
// the host's namespace: the net.* keys under /proc/sys are per network
// namespace, resolved for the thread that opens them.
// Equivalent to: ip netns exec <ns> sysctl -w <key>=<value>
func (h *host) Sysctl(key, value string) error {
	rel := strings.ReplaceAll(key, ".", "/")
	if key == "" || strings.HasPrefix(rel, "/") || slices.Contains(strings.Split(rel, "/"), "..") {
		return fmt.Errorf("sysctl %q in host %q: invalid key", key, h.name)
	}
	err := h.do(func() error {
		return os.WriteFile("/proc/sys/"+rel, []byte(value), 0)
	})
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in host %q: %w", key, value, h.name, err)
	}
	return nil
}

// do runs f on a fresh locked OS thread switched into the host's namespace
// (doIn: CNI's ns.Do, without reopening the namespace to go back to); the
// caller's thread never changes namespace.
func (h *host) do(f func() error) error {
	h.mu.Lock()
	closed, netNS := h.closed, h.netns
	h.mu.Unlock()
	if closed {
		return fmt.Errorf("host %q has been removed", h.name)
	}
	return doIn(netNS, f)
}

// link is one veth pair.
type link struct {
	name string
	a, b linkEnd

	mu   sync.Mutex // serializes SetUp, SetRate and SetImpairment
	rate uint64
	im   Impairment
}

type linkEnd struct {
	h   *host
	dev string
}

var _ Link = (*link)(nil)

func (l *link) Name() string { return l.name }

// SetUp sets both ends up or down. Setting a link down makes the kernel
// drop every route through it; setting it up adds back the routes that
// were added with AddRoute in either host.
// Equivalent to: ip -n <A> link set <A.Dev> up|down; ip -n <B> link set <B.Dev> up|down
func (l *link) SetUp(up bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	word := "down"
	if up {
		word = "up"
	}
	for _, e := range []linkEnd{l.a, l.b} {
		err := e.h.withNetlink(func(nlh netlinksafe.Handle) error {
			nl, err := nlh.LinkByName(e.dev)
			if err != nil {
				return err
			}
			if up {
				return nlh.LinkSetUp(nl)
			}
			return nlh.LinkSetDown(nl)
		})
		if err != nil {
			return fmt.Errorf("set link %q %s (%s in host %q): %w", l.name, word, e.dev, e.h.name, err)
		}
	}
	if up {
		for _, e := range []linkEnd{l.a, l.b} {
			if err := waitOperUp(e.h, e.dev); err != nil {
				return fmt.Errorf("set link %q up: %w", l.name, err)
			}
		}
		if err := l.a.h.replayRoutes(); err != nil {
			return fmt.Errorf("set link %q up: %w", l.name, err)
		}
		if l.b.h != l.a.h {
			if err := l.b.h.replayRoutes(); err != nil {
				return fmt.Errorf("set link %q up: %w", l.name, err)
			}
		}
	}
	return nil
}

// SetRate limits each end's egress with a token bucket filter: a burst of
// 10 ms at the rate (at least 4 KiB, so a full-size frame always fits) and
// a queue of 100 ms at the rate plus the burst. 0 removes the limit.
// Equivalent to: tc -n <ns> qdisc replace dev <dev> root tbf rate <bps>bit burst <b> limit <l>
// on both ends (with an impairment, the tbf is the netem's child, parent 1:1).
func (l *link) SetRate(bitsPerSecond uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.rate
	l.rate = bitsPerSecond
	if err := l.applyQdiscs(); err != nil {
		l.rate = old
		l.applyQdiscs()
		return fmt.Errorf("set rate of link %q to %d bit/s: %w", l.name, bitsPerSecond, err)
	}
	return nil
}

// SetImpairment puts a netem qdisc on each end's egress, so a round trip
// gains twice Delay and a packet crossing the link is lost with
// LossPercent on its way. The zero Impairment removes it. It returns an
// error wrapping ErrNotSupported where the kernel has no netem qdisc.
// Equivalent to: tc -n <ns> qdisc replace dev <dev> root handle 1: netem delay <d> <jitter> loss <p>%
// on both ends.
func (l *link) SetImpairment(im Impairment) error {
	if im.Delay < 0 || im.Jitter < 0 || im.LossPercent < 0 || im.LossPercent > 100 {
		return fmt.Errorf("set impairment of link %q: invalid %+v (durations must not be negative, loss is 0..100)", l.name, im)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.im
	l.im = im
	if err := l.applyQdiscs(); err != nil {
		l.im = old
		l.applyQdiscs()
		return fmt.Errorf("set impairment of link %q: %w", l.name, err)
	}
	return nil
}

// applyQdiscs replaces both ends' root qdisc with what l.rate and l.im ask
// for: nothing, tbf, netem, or netem with a tbf child.
func (l *link) applyQdiscs() error {
	for _, e := range []linkEnd{l.a, l.b} {
		err := e.h.withNetlink(func(nlh netlinksafe.Handle) error {
			return setQdiscs(nlh, e.dev, l.rate, l.im)
		})
		if err != nil {
			return fmt.Errorf("%s in host %q: %w", e.dev, e.h.name, err)
		}
	}
	return nil
}

func setQdiscs(nlh netlinksafe.Handle, dev string, rate uint64, im Impairment) error {
	nl, err := nlh.LinkByName(dev)
	if err != nil {
		return err
	}
	idx := nl.Attrs().Index
	qs, err := nlh.QdiscList(nl)
	if err != nil {
		return err
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_ROOT && (q.Type() == "tbf" || q.Type() == "netem") {
			if err := nlh.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("delete %s qdisc: %w", q.Type(), err)
			}
		}
	}
	parent, handle := uint32(netlink.HANDLE_ROOT), netlink.MakeHandle(1, 0)
	if im != (Impairment{}) {
		q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: idx, Handle: handle, Parent: parent}, netlink.NetemQdiscAttrs{
			Latency: uint32(im.Delay.Microseconds()),
			Jitter:  uint32(im.Jitter.Microseconds()),
			Loss:    float32(im.LossPercent),
		})
		if err := nlh.QdiscAdd(q); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("%w: netem qdisc unavailable (the kernel lacks sch_netem: %v)", ErrNotSupported, err)
			}
			return fmt.Errorf("add netem qdisc: %w", err)
		}
		parent, handle = netlink.MakeHandle(1, 1), netlink.MakeHandle(10, 0)
	}
	if rate > 0 {
		bytesPerSec := rate / 8
		if bytesPerSec == 0 {
			bytesPerSec = 1
		}
		burst := max(bytesPerSec/100, 4096)
		limit := bytesPerSec/10 + burst
		q := &netlink.Tbf{
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: handle, Parent: parent},
			Rate:       bytesPerSec,
			Limit:      uint32(min(limit, 1<<31)),
			Buffer:     netlink.Xmittime(bytesPerSec, uint32(min(burst, 1<<31))),
		}
		if err := nlh.QdiscAdd(q); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("%w: tbf qdisc unavailable (the kernel lacks sch_tbf: %v)", ErrNotSupported, err)
			}
			return fmt.Errorf("add tbf qdisc: %w", err)
		}
	}
	return nil
}
