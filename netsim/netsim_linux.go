//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// New creates an empty network for lab and its state file
// /run/nplab/<lab>.json. It refuses an invalid lab name (see
// ValidateLabName) and a lab that already exists: one whose state file lists
// a namespace that still exists, or whose recorded process is still alive.
// A state file left by a killed lab with nothing left behind is replaced.
//
// Equivalent to: mkdir -p /run/nplab && echo '{"lab":"<lab>"}' > /run/nplab/<lab>.json
func New(lab string) (Network, error) {
	if err := ValidateLabName(lab); err != nil {
		return nil, err
	}
	st, err := readState(lab)
	switch {
	case err == nil:
		// A live owner first: its lab is running, not left over, and
		// nplab clean would refuse it.
		if pid, ok := runningOwner(st); ok {
			return nil, fmt.Errorf("lab %q is already running (pid %d): stop it first, or use another lab name", lab, pid)
		}
		for _, name := range st.Namespaces {
			if namespaceExists(name) {
				return nil, fmt.Errorf("lab %q already exists (its namespace %q is still there); if it is left over from a lab that was killed, remove it with: nplab clean --name %s", lab, name, lab)
			}
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("create lab %q: %w (remove it with: nplab clean --name %s)", lab, err, lab)
	}
	n := &network{
		lab:     lab,
		hosts:   map[string]*host{},
		links:   map[string]*link{},
		pending: map[string]chan struct{}{},
		state:   newStateFile(lab),
	}
	if err := n.state.snapshot(); err != nil {
		return nil, fmt.Errorf("create lab %q: %w", lab, err)
	}
	return n, nil
}

type network struct {
	lab string

	mu    sync.Mutex // guards everything below; taken before any host.mu
	hosts map[string]*host
	links map[string]*link
	// pending: hosts and links ("link/<name>") being built or removed
	// outside mu; the channel closes when that is done. building counts
	// them, for Close.
	pending  map[string]chan struct{}
	building sync.WaitGroup
	state    *stateFile
	// closing: Close has started, nothing new may be added. closed: Close
	// removed everything; until then another Close retries what is left.
	closing, closed bool
}

var _ Network = (*network)(nil)

func (n *network) Lab() string { return n.lab }

// own returns h as this network's host, or an error naming what is wrong.
func (n *network) own(h Host) (*host, error) {
	lh, ok := h.(*host)
	if !ok || lh == nil {
		return nil, fmt.Errorf("host %v is not a host of lab %q", h, n.lab)
	}
	if lh.net != n {
		return nil, fmt.Errorf("host %q belongs to lab %q, not lab %q", lh.name, lh.net.lab, n.lab)
	}
	return lh, nil
}

func (n *network) checkOpen() error {
	if n.closed || n.closing {
		return fmt.Errorf("lab %q is closed", n.lab)
	}
	return nil
}

// reserve waits (with mu held, released while waiting) until nothing is
// pending under key, then marks key pending; the caller does its work
// outside mu and calls the returned release. It fails once the lab is
// closing.
func (n *network) reserve(key string) (release func(), err error) {
	for {
		if err := n.checkOpen(); err != nil {
			return nil, err
		}
		ch, busy := n.pending[key]
		if !busy {
			break
		}
		n.mu.Unlock()
		<-ch
		n.mu.Lock()
	}
	ch := make(chan struct{})
	n.pending[key] = ch
	n.building.Add(1)
	return func() {
		delete(n.pending, key)
		close(ch)
		n.building.Done()
	}, nil
}

// AddHost creates host name as the namespace nplab-<lab>-<name> with lo up.
// A host that this network already has is returned as it is. Hosts are
// made in parallel when AddHost is called from several goroutines.
func (n *network) AddHost(name string) (Host, error) {
	if err := validateHostName(name); err != nil {
		return nil, fmt.Errorf("add host to lab %q: %w", n.lab, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	release, err := n.reserve("host/" + name)
	if err != nil {
		return nil, fmt.Errorf("add host %q: %w", name, err)
	}
	defer release()
	if h, ok := n.hosts[name]; ok {
		return h, nil
	}
	nsName := NamespaceName(n.lab, name)
	if namespaceExists(nsName) {
		return nil, fmt.Errorf("add host %q to lab %q: namespace %q already exists and is not this lab's (remove it with: ip netns del %s)", name, n.lab, nsName, nsName)
	}
	// Record first: a crash between creating and recording must not leave
	// a namespace that Clean does not know about.
	if err := n.state.add(nsName); err != nil {
		return nil, fmt.Errorf("add host %q: %w", name, err)
	}
	n.mu.Unlock()
	h, err := newHost(n, name, nsName)
	n.mu.Lock()
	if err == nil && n.closing {
		h.destroy()
		err = fmt.Errorf("lab %q was closed meanwhile", n.lab)
	}
	if err != nil {
		n.state.del(nsName)
		return nil, fmt.Errorf("add host %q to lab %q: %w", name, n.lab, err)
	}
	n.hosts[name] = h
	return h, nil
}

func (n *network) Host(name string) Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h, ok := n.hosts[name]; ok {
		return h
	}
	return nil
}

// RemoveHost deletes the host's links, then its namespace's name and
// handles. Sockets still open in the host keep the (now nameless)
// namespace alive in the kernel until they are closed.
//
// The links are deleted one by one (each costs the kernel an RCU grace
// period) rather than left to the namespace's end, because the kernel
// frees a namespace in the background: a veth left to it would still
// hold its name in the other host (a pod's node) for a while, and a pod
// started again at once with the same name would find it taken.
func (n *network) RemoveHost(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	release, err := n.reserve("host/" + name)
	if err != nil {
		if n.closed || n.closing {
			return nil // Close removes it
		}
		return err
	}
	defer release()
	h, ok := n.hosts[name]
	if !ok {
		return nil
	}
	var links []*link
	for _, l := range n.links {
		if l.a.h == h || l.b.h == h {
			links = append(links, l)
		}
	}
	n.mu.Unlock()
	var first error
	for _, l := range links {
		if err := l.remove(); err != nil && first == nil {
			first = err
		}
	}
	rerr := h.destroy()
	n.mu.Lock()
	for _, l := range links {
		if n.links[l.name] == l {
			delete(n.links, l.name)
		}
	}
	if rerr != nil {
		if first == nil {
			first = fmt.Errorf("remove host %q: %w", h.name, rerr)
		}
		return first
	}
	delete(n.hosts, h.name)
	if err := n.state.del(h.nsName); err != nil && first == nil {
		first = err
	}
	return first
}

// remove deletes the veth pair l (deleting one end deletes both), from
// whichever end's host is still open; an already gone link is success,
// and so is one whose hosts were both removed (the namespaces took the
// veth with them).
func (l *link) remove() error {
	var err error
	for _, e := range []linkEnd{l.a, l.b} {
		err = e.h.withNetlink(func(nlh netlinksafe.Handle) error {
			return deleteLink(nlh, e.dev)
		})
		if err == nil {
			l.a.h.forgetDev(l.a.dev)
			l.b.h.forgetDev(l.b.dev)
		}
		if err == nil || !e.h.isClosed() {
			if err != nil {
				err = fmt.Errorf("remove link %q (%s in host %q): %w", l.name, e.dev, e.h.name, err)
			}
			break
		}
		err = nil // this end's host is gone: try the other end
	}
	return err
}

// Close removes every host of the lab, keeps going after a failure and
// returns the first error. The state file goes last, and only when
// everything is gone; otherwise it keeps listing what is left, for
// `nplab clean`.
//
// It removes each namespace's name and closes the lab's handles on it,
// and nothing more: once the caller's sockets are closed too, nothing
// holds the namespaces and the kernel frees them, with every veth in
// them, in the background and in batches. (Deleting each veth first, as
// `ip link del` does, costs an RCU grace period per link: tens of
// seconds for a big lab, where freeing the namespaces costs next to
// nothing.)
// Equivalent to: ip netns del <ns>, for every namespace of the lab
func (n *network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closing = true
	n.mu.Unlock()
	// Hosts and links being built see closing and undo themselves.
	n.building.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	var first error
	var gone []string
	for _, name := range sortedKeys(n.hosts) {
		h := n.hosts[name]
		if err := h.destroy(); err != nil {
			if first == nil {
				first = fmt.Errorf("remove host %q: %w", h.name, err)
			}
			continue
		}
		delete(n.hosts, name)
		gone = append(gone, h.nsName)
	}
	clear(n.links)
	if first != nil {
		// Not closed: a second Close retries what is left, which the
		// state file keeps listing for `nplab clean` meanwhile.
		n.state.del(gone...)
		n.state.snapshot()
		return fmt.Errorf("close lab %q: %w", n.lab, first)
	}
	if err := n.state.remove(); err != nil {
		return fmt.Errorf("close lab %q: %w", n.lab, err)
	}
	n.closed = true
	return nil
}

// abandon drops every handle without removing anything, as if the process
// had been killed. Tests use it to make a lab for Clean.
func (n *network) abandon() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	n.state.closeFile()
	for _, h := range n.hosts {
		h.close()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AddBridge creates a bridge in host and sets it up; an existing bridge of
// that name is success.
func (n *network) AddBridge(hh Host, name string) error {
	h, err := n.own(hh)
	if err != nil {
		return fmt.Errorf("add bridge %q: %w", name, err)
	}
	if err := validateDev(name); err != nil {
		return fmt.Errorf("add bridge to host %q: %w", h.name, err)
	}
	err = h.withNetlink(func(nlh netlinksafe.Handle) error {
		l, err := nlh.LinkByName(name)
		if err == nil {
			if l.Type() != "bridge" {
				return fmt.Errorf("an interface of type %s with that name exists", l.Type())
			}
		} else {
			if !isNotFound(err) {
				return err
			}
			br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
			br.Name = name
			if err := nlh.LinkAdd(br); err != nil {
				return err
			}
			if l, err = nlh.LinkByName(name); err != nil {
				return err
			}
		}
		return nlh.LinkSetUp(l)
	})
	if err != nil {
		return fmt.Errorf("add bridge %q to host %q: %w", name, h.name, err)
	}
	return nil
}

// AddLink creates the veth pair in one netlink request from one end's
// namespace with the peer placed straight into the other's (as CNI's
// makeVeth does): the end that joins a bridge is made there, already
// enslaved and up; then each end gets its addresses and the peer is set
// up. On any error the pair is deleted again. Links are made in parallel
// when AddLink is called from several goroutines.
func (n *network) AddLink(spec LinkSpec) (Link, error) {
	if spec.Name == "" {
		return nil, fmt.Errorf("add link to lab %q: the link needs a name", n.lab)
	}
	a, err := n.own(spec.A.Host)
	if err != nil {
		return nil, fmt.Errorf("add link %q: end A: %w", spec.Name, err)
	}
	b, err := n.own(spec.B.Host)
	if err != nil {
		return nil, fmt.Errorf("add link %q: end B: %w", spec.Name, err)
	}
	for _, dev := range []string{spec.A.Dev, spec.B.Dev} {
		if err := validateDev(dev); err != nil {
			return nil, fmt.Errorf("add link %q: %w", spec.Name, err)
		}
	}
	if a == b && spec.A.Dev == spec.B.Dev {
		return nil, fmt.Errorf("add link %q: both ends are %q in host %q", spec.Name, spec.A.Dev, a.name)
	}
	desc := fmt.Sprintf("veth %q (%s in host %q, %s in host %q)", spec.Name, spec.A.Dev, a.name, spec.B.Dev, b.name)

	n.mu.Lock()
	defer n.mu.Unlock()
	release, err := n.reserve("link/" + spec.Name)
	if err != nil {
		return nil, fmt.Errorf("add %s: %w", desc, err)
	}
	defer release()
	if _, ok := n.links[spec.Name]; ok {
		return nil, fmt.Errorf("add %s: lab %q already has a link of that name", desc, n.lab)
	}
	n.mu.Unlock()
	l := &link{name: spec.Name, a: linkEnd{h: a, dev: spec.A.Dev}, b: linkEnd{h: b, dev: spec.B.Dev}}
	err = makeLink(a, spec.A, b, spec.B)
	if err != nil && !errors.Is(err, errNotMade) {
		if derr := l.remove(); derr != nil {
			err = fmt.Errorf("%w (and undoing it: %v)", err, derr)
		}
	}
	n.mu.Lock()
	if err == nil && n.closing {
		err = fmt.Errorf("lab %q was closed meanwhile", n.lab) // Close removes the hosts, and the veth with them
	}
	if err != nil {
		return nil, fmt.Errorf("add %s: %w", desc, err)
	}
	n.links[spec.Name] = l
	return l, nil
}

// errNotMade marks a makeLink error after which there is nothing to undo.
var errNotMade = errors.New("veth not made")

type notMadeError struct{ err error }

func (e notMadeError) Error() string   { return e.err.Error() }
func (e notMadeError) Unwrap() []error { return []error{e.err, errNotMade} }

// makeLink makes the veth pair a–b in one netlink request: one end up
// and, in a bridge's host, already enslaved, each with the interface index
// netsim picked (so nothing has to be looked up by name after); then it
// gives each end its addresses, sets the other end up and waits until
// both carry traffic. Five to seven requests in all. The pair is made from B's namespace (a pod's
// node, a node's bridge), unless only A joins a bridge.
// Equivalent to: ip -n <m> link add <m.Dev> index <i> master <br> up type veth peer <p.Dev> index <j> netns <p>;
// ip -n <ns> addr add ... dev ...; ip -n <p> link set <p.Dev> up
func makeLink(a *host, ae LinkEnd, b *host, be LinkEnd) error {
	m, me, p, pe := b, be, a, ae
	if be.Bridge == "" && ae.Bridge != "" {
		m, me, p, pe = a, ae, b, be
	}
	var master int
	if me.Bridge != "" {
		err := m.withNetlink(func(nlh netlinksafe.Handle) error {
			var err error
			master, err = m.devIndexLocked(nlh, me.Bridge)
			return err
		})
		if err != nil {
			return notMadeError{fmt.Errorf("find bridge %q in host %q: %w", me.Bridge, m.name, err)}
		}
	}
	mi, pi := m.takeIndex(), p.takeIndex()
	err := newVeth(m, me.Dev, mi, master, p, pe.Dev, pi)
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
		// An index was taken (by an interface someone else made), or a
		// name: let the kernel pick the indexes and try once more.
		mi, pi = 0, 0
		err = newVeth(m, me.Dev, 0, master, p, pe.Dev, 0)
	}
	if errors.Is(err, unix.EEXIST) {
		err = fmt.Errorf("%w: %s already exists in host %q or %s in host %q", err, ae.Dev, a.name, be.Dev, b.name)
	}
	if err != nil {
		return notMadeError{err}
	}
	if mi, err = m.learnDev(me.Dev, mi); err != nil {
		return err
	}
	if pi, err = p.learnDev(pe.Dev, pi); err != nil {
		return err
	}
	if err := addAddrs(m, me, mi); err != nil {
		return err
	}
	if err := addAddrs(p, pe, pi); err != nil {
		return err
	}
	if pe.Bridge != "" {
		err := p.withNetlink(func(nlh netlinksafe.Handle) error {
			br, err := p.devIndexLocked(nlh, pe.Bridge)
			if err != nil {
				return fmt.Errorf("find bridge %q in host %q: %w", pe.Bridge, p.name, err)
			}
			if err := nlh.LinkSetMasterByIndex(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: pi}}, br); err != nil {
				return fmt.Errorf("enslave %s to bridge %q in host %q: %w", pe.Dev, pe.Bridge, p.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	err = p.withNetlink(func(nlh netlinksafe.Handle) error {
		return nlh.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: pi, Name: pe.Dev}})
	})
	if err != nil {
		return fmt.Errorf("set %s up in host %q: %w", pe.Dev, p.name, err)
	}
	if err := waitOperUp(p, pe.Dev); err != nil {
		return err
	}
	return waitOperUp(m, me.Dev)
}

// newVeth sends the one RTM_NEWLINK request that makes the pair, from m's
// namespace (so that an index names an interface there), with the peer
// placed in p's; index 0 lets the kernel pick. netlink's Veth cannot ask
// for the peer's index and flags, so the request is built here.
func newVeth(m *host, dev string, index, master int, p *host, peerDev string, peerIndex int) error {
	return m.withNetlink(func(netlinksafe.Handle) error {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: m.raw}}
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(index)
		msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
		req.AddData(msg)
		req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(dev)))
		if master != 0 {
			req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(master))))
		}
		info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
		data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
		peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
		// The peer cannot be set up in the same request: the kernel
		// opens it before its partner exists, and veth_open refuses
		// (ENOTCONN). setUp does it next.
		pmsg := nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
		pmsg.Index = int32(peerIndex)
		peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(peerDev))
		peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(p.netns.Fd())))
		req.AddData(info)
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}

// takeIndex returns the next interface index to ask for in h.
func (h *host) takeIndex() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := h.nextIndex
	h.nextIndex++
	return i
}

// learnDev records that dev has index i in h; i == 0 (the kernel picked
// it) looks it up.
func (h *host) learnDev(dev string, i int) (int, error) {
	err := h.withNetlink(func(nlh netlinksafe.Handle) error {
		if i == 0 {
			l, err := nlh.LinkByName(dev)
			if err != nil {
				return fmt.Errorf("find %s in host %q: %w", dev, h.name, err)
			}
			i = l.Attrs().Index
		}
		h.devIndex[dev] = i
		return nil
	})
	return i, err
}

// devIndexLocked returns dev's index, from what netsim made or else by
// asking the kernel; h.mu is held.
func (h *host) devIndexLocked(nlh netlinksafe.Handle, dev string) (int, error) {
	if i, ok := h.devIndex[dev]; ok {
		return i, nil
	}
	l, err := nlh.LinkByName(dev)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// forgetDev drops what h knows of dev (it was deleted).
func (h *host) forgetDev(dev string) {
	h.mu.Lock()
	delete(h.devIndex, dev)
	h.mu.Unlock()
}

// addAddrs gives the veth end e (index i in h) its addresses.
func addAddrs(h *host, e LinkEnd, i int) error {
	if len(e.Addrs) == 0 {
		return nil
	}
	return h.withNetlink(func(nlh netlinksafe.Handle) error {
		l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: i, Name: e.Dev}}
		for _, p := range e.Addrs {
			if err := addAddr(nlh, l, p); err != nil {
				return fmt.Errorf("add address %s to %s in host %q: %w", p, e.Dev, h.name, err)
			}
		}
		return nil
	})
}

// operUpTimeout bounds how long a link end may take to become
// operationally up after it is set up.
const operUpTimeout = 3 * time.Second

// waitOperUp waits until dev in h is operationally up. The kernel turns a
// veth's carrier on asynchronously (linkwatch) and until then drops what
// is sent through it, which would cost the first connection over a new
// link a one-second SYN retransmission.
func waitOperUp(h *host, dev string) error {
	deadline := time.Now().Add(operUpTimeout)
	for {
		var state netlink.LinkOperState
		err := h.withNetlink(func(nlh netlinksafe.Handle) error {
			var l netlink.Link
			var err error
			if i, ok := h.devIndex[dev]; ok {
				l, err = nlh.LinkByIndex(i)
			} else {
				l, err = nlh.LinkByName(dev)
			}
			if err == nil {
				state = l.Attrs().OperState
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("%s in host %q: %w", dev, h.name, err)
		}
		if state == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s in host %q is still %s %v after it was set up", dev, h.name, state, operUpTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func (n *network) Link(name string) Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l, ok := n.links[name]; ok {
		return l
	}
	return nil
}

// host is one named network namespace.
type host struct {
	net          *network
	name, nsName string
	netns        ns.NetNS // kept open: it keeps the namespace alive, and sockets are created on a thread switched into it

	mu         sync.Mutex // guards everything below
	nl         netlinksafe.Handle
	raw        *nl.NetlinkSocket // for the requests netlink's API cannot make (makeLink)
	closed     bool
	localMoved bool
	routes     []Route        // added routes, replayed when a link comes back up
	devIndex   map[string]int // interfaces netsim made here: name → ifindex
	nextIndex  int            // the ifindex makeLink asks for next

	pool sockPool // ProxyDial's sockets, made ahead of time
}

var _ Host = (*host)(nil)

// firstIndex is the first interface index makeLink asks the kernel for in
// a host (lo is 1; the kernel numbers interfaces others make from 2 up).
const firstIndex = 10

// newHost creates and names the namespace, with its handles and lo up,
// without switching the caller's thread (see createNamespace).
func newHost(n *network, name, nsName string) (*host, error) {
	hs, err := createNamespace(nsName)
	if err != nil {
		return nil, err
	}
	return &host{net: n, name: name, nsName: nsName, netns: hs.ns, nl: hs.nl, raw: hs.raw,
		devIndex: map[string]int{}, nextIndex: firstIndex}, nil
}

// close releases the host's handles; the namespace's name stays.
func (h *host) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.pool.close()
	nsHandles{ns: h.netns, nl: h.nl, raw: h.raw}.close()
}

// destroy removes the namespace's name, then closes the host's handles
// (in that order: the name points at a handle's file descriptor, whose
// number may be reused once it is closed). Sockets still open in the
// namespace keep it alive until they are closed.
func (h *host) destroy() error {
	if err := removeNamespace(h.nsName); err != nil {
		return err
	}
	h.close()
	return nil
}

func (h *host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// withNetlink runs f with the host's netlink handle, one request at a time.
func (h *host) withNetlink(f func(netlinksafe.Handle) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("host %q has been removed", h.name)
	}
	return f(h.nl)
}

func (h *host) Name() string      { return h.name }
func (h *host) Namespace() string { return h.nsName }
func (h *host) String() string    { return h.nsName }

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// deleteLink deletes dev; a missing one is success.
func deleteLink(nlh netlinksafe.Handle, dev string) error {
	l, err := nlh.LinkByName(dev)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := nlh.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}

// Clean removes what lab's state file lists — the names of its
// namespaces — and then the state file. The namespaces themselves, and
// the veths in them, died with the lab's process (see createNamespace);
// a name made as a bind mount (by an older nplab) is unmounted, which
// lets the kernel free that namespace. A lab without a state file is
// already gone: success. Nothing that the state file does not list is
// touched, whatever its name. A lab whose recorded process is still alive
// (and is not the caller) is refused with a *RunningError, which wraps
// ErrLabRunning.
// Equivalent to: ip netns del <ns>...; rm /run/nplab/<lab>.json
func Clean(lab string) error {
	if err := ValidateLabName(lab); err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	st, err := readState(lab)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean lab %q: %w", lab, err)
	}
	if pid, ok := runningOwner(st); ok {
		return &RunningError{Lab: lab, PID: pid}
	}
	var first error
	for _, name := range st.Namespaces {
		if err := removeNamespace(name); err != nil && first == nil {
			first = fmt.Errorf("clean lab %q: namespace %q: %w", lab, name, err)
		}
	}
	if first != nil {
		return first
	}
	if err := os.Remove(statePath(lab)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("clean lab %q: %w", lab, err)
	}
	return nil
}

// runningOwner returns the PID recorded in st when that process is alive
// and is not this one (a process may clean its own abandoned labs).
func runningOwner(st *labState) (int, bool) {
	if st.PID <= 0 || st.PID == os.Getpid() {
		return 0, false
	}
	err := unix.Kill(st.PID, 0)
	return st.PID, err == nil || errors.Is(err, unix.EPERM)
}

// CleanAll cleans every lab that has a state file (see Clean) and returns
// the labs it removed. Labs still running are skipped; the error then
// names each of them (errors.Is(err, ErrLabRunning)). It keeps going after
// a failure and returns every error, joined.
// Equivalent to: nplab clean --name <lab>, for each lab in /run/nplab
func CleanAll() ([]string, error) {
	labs, err := Labs()
	if err != nil {
		return nil, err
	}
	var cleaned []string
	var errs []error
	for _, lab := range labs {
		if err := Clean(lab); err != nil {
			errs = append(errs, err)
			continue
		}
		cleaned = append(cleaned, lab)
	}
	return cleaned, errors.Join(errs...)
}
