//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted, as `ip netns add`
// does, so `ip netns list` shows them.
const netnsDir = "/run/netns"

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
		for _, name := range st.Namespaces {
			if _, err := os.Lstat(filepath.Join(netnsDir, name)); err == nil {
				return nil, fmt.Errorf("lab %q already exists (its namespace %q is still there); if it is left over from a lab that was killed, remove it with: nplab clean --name %s", lab, name, lab)
			}
		}
		if pid, ok := runningOwner(st); ok {
			return nil, fmt.Errorf("lab %q already exists (process %d is running it); if it is left over from a lab that was killed, remove it with: nplab clean --name %s", lab, pid, lab)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("create lab %q: %w (remove it with: nplab clean --name %s)", lab, err, lab)
	}
	n := &network{
		lab:   lab,
		hosts: map[string]*host{},
		links: map[string]*link{},
		state: labState{Lab: lab, PID: os.Getpid(), Namespaces: []string{}, Links: []stateLink{}},
	}
	if err := n.state.write(); err != nil {
		return nil, fmt.Errorf("create lab %q: %w", lab, err)
	}
	return n, nil
}

type network struct {
	lab string

	mu    sync.Mutex // guards everything below; taken before any host.mu
	hosts map[string]*host
	links map[string]*link
	state labState
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

// AddHost creates host name as the namespace nplab-<lab>-<name> with lo up.
// A host that this network already has is returned as it is.
func (n *network) AddHost(name string) (Host, error) {
	if err := validateHostName(name); err != nil {
		return nil, fmt.Errorf("add host to lab %q: %w", n.lab, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkOpen(); err != nil {
		return nil, fmt.Errorf("add host %q: %w", name, err)
	}
	if h, ok := n.hosts[name]; ok {
		return h, nil
	}
	nsName := NamespaceName(n.lab, name)
	path := filepath.Join(netnsDir, nsName)
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("add host %q to lab %q: namespace %q already exists and is not this lab's (remove it with: ip netns del %s)", name, n.lab, nsName, nsName)
	}
	// Record first: a crash between creating and recording must not leave
	// a namespace that Clean does not know about.
	n.state.addNamespace(nsName)
	if err := n.state.write(); err != nil {
		n.state.removeNamespace(nsName)
		return nil, fmt.Errorf("add host %q: %w", name, err)
	}
	h, err := newHost(n, name, nsName, path)
	if err != nil {
		n.state.removeNamespace(nsName)
		n.state.write()
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

// RemoveHost deletes the host's links, then unmounts and deletes its
// namespace. Sockets still open in the host keep the (now nameless)
// namespace alive in the kernel until they are closed.
func (n *network) RemoveHost(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[name]
	if !ok {
		return nil
	}
	err := n.removeHostLocked(h)
	if werr := n.state.write(); err == nil {
		err = werr
	}
	return err
}

// removeHostLocked removes h and its links, keeping going after a failure.
// The caller writes the state file.
func (n *network) removeHostLocked(h *host) error {
	var first error
	for _, name := range sortedKeys(n.links) {
		l := n.links[name]
		if l.a.h != h && l.b.h != h {
			continue
		}
		if err := n.removeLinkLocked(l); err != nil && first == nil {
			first = err
		}
	}
	h.close()
	if err := removeNamespace(h.path); err != nil {
		if first == nil {
			first = fmt.Errorf("remove host %q: %w", h.name, err)
		}
		return first
	}
	delete(n.hosts, h.name)
	n.state.removeNamespace(h.nsName)
	return first
}

// removeLinkLocked deletes the veth pair l (deleting one end deletes both),
// from whichever end's host is still open; an already gone link is
// success, and so is one whose hosts were both removed (the namespaces
// took the veth with them).
func (n *network) removeLinkLocked(l *link) error {
	var err error
	for _, e := range []linkEnd{l.a, l.b} {
		err = e.h.withNetlink(func(nlh netlinksafe.Handle) error {
			return deleteLink(nlh, e.dev)
		})
		if err == nil || !e.h.isClosed() {
			if err != nil {
				err = fmt.Errorf("remove link %q (%s in host %q): %w", l.name, e.dev, e.h.name, err)
			}
			break
		}
		err = nil // this end's host is gone: try the other end
	}
	if err != nil {
		return err
	}
	delete(n.links, l.name)
	n.state.removeLink(l.name)
	return nil
}

// Close removes every link and host, keeps going after a failure and
// returns the first error. The state file goes last, and only when
// everything is gone; otherwise it keeps listing what is left, for
// `nplab clean`.
func (n *network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closing = true
	var first error
	for _, name := range sortedKeys(n.links) {
		if err := n.removeLinkLocked(n.links[name]); err != nil && first == nil {
			first = err
		}
	}
	for _, name := range sortedKeys(n.hosts) {
		if err := n.removeHostLocked(n.hosts[name]); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		// Not closed: a second Close retries what is left, which the
		// state file keeps listing for `nplab clean` meanwhile.
		n.state.write()
		return fmt.Errorf("close lab %q: %w", n.lab, first)
	}
	if err := os.Remove(statePath(n.lab)); err != nil && !os.IsNotExist(err) {
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

// AddLink creates the veth pair in one netlink request from A's namespace
// with the peer placed straight into B's (as CNI's makeVeth does), then
// gives each end its addresses, enslaves it to its bridge and sets it up.
// On any error the pair is deleted again.
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
	if err := n.checkOpen(); err != nil {
		return nil, fmt.Errorf("add %s: %w", desc, err)
	}
	if _, ok := n.links[spec.Name]; ok {
		return nil, fmt.Errorf("add %s: lab %q already has a link of that name", desc, n.lab)
	}

	err = a.withNetlink(func(nlh netlinksafe.Handle) error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.NewLinkAttrs(),
			PeerName:      spec.B.Dev,
			PeerNamespace: netlink.NsFd(int(b.netns.Fd())),
		}
		veth.Name = spec.A.Dev
		err := nlh.LinkAdd(veth)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%w: %s already exists in host %q or %s in host %q", err, spec.A.Dev, a.name, spec.B.Dev, b.name)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("add %s: %w", desc, err)
	}
	l := &link{name: spec.Name, a: linkEnd{h: a, dev: spec.A.Dev}, b: linkEnd{h: b, dev: spec.B.Dev}}
	n.links[spec.Name] = l
	n.state.addLink(stateLink{Name: spec.Name, Namespace: a.nsName, Dev: spec.A.Dev})
	err = n.state.write()
	if err == nil {
		err = configureEnd(a, spec.A)
	}
	if err == nil {
		err = configureEnd(b, spec.B)
	}
	if err == nil {
		err = waitOperUp(a, spec.A.Dev)
	}
	if err == nil {
		err = waitOperUp(b, spec.B.Dev)
	}
	if err != nil {
		if derr := n.removeLinkLocked(l); derr != nil {
			err = fmt.Errorf("%w (and undoing it: %v)", err, derr)
		}
		n.state.write()
		return nil, fmt.Errorf("add %s: %w", desc, err)
	}
	return l, nil
}

// configureEnd gives one veth end its addresses and bridge, and sets it up.
func configureEnd(h *host, e LinkEnd) error {
	return h.withNetlink(func(nlh netlinksafe.Handle) error {
		l, err := nlh.LinkByName(e.Dev)
		if err != nil {
			return fmt.Errorf("find %s in host %q: %w", e.Dev, h.name, err)
		}
		for _, p := range e.Addrs {
			if err := addAddr(nlh, l, p); err != nil {
				return fmt.Errorf("add address %s to %s in host %q: %w", p, e.Dev, h.name, err)
			}
		}
		if e.Bridge != "" {
			br, err := nlh.LinkByName(e.Bridge)
			if err != nil {
				return fmt.Errorf("find bridge %q in host %q: %w", e.Bridge, h.name, err)
			}
			if err := nlh.LinkSetMaster(l, br); err != nil {
				return fmt.Errorf("enslave %s to bridge %q in host %q: %w", e.Dev, e.Bridge, h.name, err)
			}
		}
		if err := nlh.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up in host %q: %w", e.Dev, h.name, err)
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
			l, err := nlh.LinkByName(dev)
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
		time.Sleep(2 * time.Millisecond)
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
	net                *network
	name, nsName, path string
	netns              ns.NetNS // kept open: sockets are created on a thread switched into it

	mu         sync.Mutex // guards nl, localMoved, routes
	nl         netlinksafe.Handle
	closed     bool
	localMoved bool
	routes     []Route // added routes, replayed when a link comes back up
}

var _ Host = (*host)(nil)

// newHost creates the namespace at path without switching the caller's
// thread, opens it and a netlink handle in it, and sets lo up. On error it
// leaves nothing behind.
func newHost(n *network, name, nsName, path string) (*host, error) {
	if err := createNamespace(path); err != nil {
		return nil, err
	}
	h := &host{net: n, name: name, nsName: nsName, path: path}
	err := func() error {
		var err error
		if h.netns, err = ns.GetNS(path); err != nil {
			return err
		}
		if h.nl, err = netlinksafe.NewHandleAt(netns.NsHandle(int(h.netns.Fd())), unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("open netlink in namespace %q: %w", nsName, err)
		}
		lo, err := h.nl.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if err := h.nl.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		return nil
	}()
	if err != nil {
		h.close()
		removeNamespace(path)
		return nil, err
	}
	return h, nil
}

// close releases the host's handles; the namespace stays mounted.
func (h *host) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.nl.Close()
	if h.netns != nil {
		h.netns.Close()
	}
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

// createNamespace makes a new network namespace and bind-mounts it at path,
// as `ip netns add` does: /run/netns is made a shared mount point first.
// The namespace is entered on a throw-away locked thread that is never
// unlocked, so the Go runtime discards it: no caller's thread ever
// switches namespace.
func createNamespace(path string) error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return err
	}
	// mount --make-shared /run/netns, bind-mounting it onto itself first
	// if it is not yet a mount point (EINVAL), exactly as iproute2 does.
	if err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		if err != unix.EINVAL {
			return fmt.Errorf("mount --make-rshared %s: %w", netnsDir, err)
		}
		if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount --rbind %s %s: %w", netnsDir, netnsDir, err)
		}
		if err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount --make-rshared %s: %w", netnsDir, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mount namespace at %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// removeNamespace unmounts and deletes a named namespace, as `ip netns del`
// does; a namespace that is already gone is success.
func removeNamespace(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

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

// Clean removes what lab's state file lists — its veths, then its
// namespaces — and then the state file. A lab without a state file is
// already gone: success. Nothing that the state file does not list is
// touched, whatever its name. A lab whose recorded process is still alive
// (and is not the caller) is refused with a *RunningError, which wraps
// ErrLabRunning.
// Equivalent to: ip -n <ns> link del <dev>; ip netns del <ns>...; rm /run/nplab/<lab>.json
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
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, l := range st.Links {
		keep(cleanLink(lab, l))
	}
	for _, name := range st.Namespaces {
		if err := removeNamespace(filepath.Join(netnsDir, name)); err != nil {
			keep(fmt.Errorf("clean lab %q: namespace %q: %w", lab, name, err))
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

func cleanLink(lab string, l stateLink) error {
	path := filepath.Join(netnsDir, l.Namespace)
	nsh, err := netns.GetFromPath(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // its namespace is gone, and the veth with it
	}
	if err != nil {
		return fmt.Errorf("clean lab %q: link %q: open namespace %q: %w", lab, l.Name, l.Namespace, err)
	}
	defer nsh.Close()
	nlh, err := netlinksafe.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("clean lab %q: link %q: netlink in namespace %q: %w", lab, l.Name, l.Namespace, err)
	}
	defer nlh.Close()
	if err := deleteLink(nlh, l.Dev); err != nil {
		return fmt.Errorf("clean lab %q: link %q: delete %s in namespace %q: %w", lab, l.Name, l.Dev, l.Namespace, err)
	}
	return nil
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
