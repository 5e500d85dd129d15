//go:build linux

package nodes

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/nplab/nplab/netsim"
)

// observeHost opens a node's observer; tests replace it to see a cluster
// go on without one.
var observeHost = netsim.Observe

// kernelWatch is one node's observer of the attempts its kernel answers
// itself (package netsim's Observe: a packet socket with a BPF filter),
// and the goroutine that turns them into flows (watchKernel).
type kernelWatch struct {
	obs  netsim.Observer
	warn func(msg string)
	done chan struct{} // closed when watchKernel returns

	mu      sync.Mutex // serializes setWatch and close
	closed  bool
	watch   []netsim.Watch // the set in place
	lastErr string         // the SetWatch error last reported ("" after a success)
	// proxyWs are the proxy's watches (setWatch), hostWs the node's
	// hostPorts (setHostPortWatch); the observer watches both.
	proxyWs, hostWs []netsim.Watch
}

// setHostPortWatch makes the observer watch the node's hostPorts too, so
// each attempt on one is a flow (hostport_linux.go). Nil-safe.
func (k *kernelWatch) setHostPortWatch(ws []netsim.Watch) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hostWs = slices.Clone(ws)
	k.applyLocked()
}

// setWatch makes the observer watch exactly ws. An error is reported as
// a Warning once (until a later SetWatch succeeds); the observer then
// keeps its previous watch set. It does nothing on a nil or closed
// kernelWatch.
func (k *kernelWatch) setWatch(ws []netsim.Watch) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.proxyWs = slices.Clone(ws)
	k.applyLocked()
}

// applyLocked sets the observer's watch to the proxy's and the hostPorts'
// watches. k.mu is held.
func (k *kernelWatch) applyLocked() {
	ws := append(slices.Clone(k.proxyWs), k.hostWs...)
	if k.closed || (k.watch != nil && slices.Equal(ws, k.watch)) {
		return // a sync that changed nothing for the kernel
	}
	if err := k.obs.SetWatch(ws); err != nil {
		if msg := err.Error(); msg != k.lastErr {
			k.lastErr = msg
			k.warn(fmt.Sprintf("refused and dropped attempts may not all show as flows: %v", err))
		}
		return
	}
	k.lastErr, k.watch = "", slices.Clone(ws)
	if k.watch == nil {
		k.watch = []netsim.Watch{}
	}
}

// close closes the observer (its socket lives in the node's namespace,
// which must outlive it) and waits for watchKernel to return. Safe on a
// nil kernelWatch and more than once.
func (k *kernelWatch) close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	if !k.closed {
		k.closed = true
		_ = k.obs.Close()
	}
	k.mu.Unlock()
	<-k.done
}

// observeKernels opens one observer per node and starts a goroutine per
// node reading it; every proxy sync then sets what it watches. If any
// node cannot observe (netsim.ErrNotSupported, a kernel without packet
// sockets), it reports one Warning and the cluster goes on without kernel
// flows: what clients see does not change, only those attempts make no
// flow events and Send does not wait for them.
func (c *Cluster) observeKernels() {
	ks := make([]*kernelWatch, 0, len(c.order))
	for _, n := range c.order {
		o, err := observeHost(context.Background(), n.host)
		if err != nil {
			for _, k := range ks {
				_ = k.obs.Close()
			}
			c.ctl.Warning(n.spec.Name, "", fmt.Sprintf("cannot observe the nodes' kernels, so attempts they refuse or drop themselves "+
				"(no listener, externalTrafficPolicy: Local) make no flow events; clients see the same as ever: %v", planeErr(err)))
			return
		}
		name := n.spec.Name
		ks = append(ks, &kernelWatch{obs: o, done: make(chan struct{}),
			warn: func(msg string) { c.ctl.Warning(name, "", msg) }})
	}
	for i, n := range c.order {
		n.kernel = ks[i]
		go c.watchKernel(n, ks[i])
	}
	c.kernelFlows = true
}

// watchKernel turns what a node's observer reports into flows, until the
// observer is closed. A packet to an address the node only forwards (to
// one of its pods) is not an attempt on the node. Retransmissions (the
// SYNs of a client that gets no answer, the next datagrams of a UDP
// client) are one attempt (see attempts); the first packet of each is
// reported through kernelFlow, with the verdict of the plan in force when
// it arrived.
func (c *Cluster) watchKernel(n *node, k *kernelWatch) {
	defer close(k.done)
	seen := newAttempts(kernelAttemptsMax, udpFlowIdle)
	for p := range k.obs.Packets() {
		if !n.proxy.ownAddr(p.Dst.Addr()) {
			continue
		}
		if !seen.first(attemptKey{p.Protocol, p.Src, p.Dst}, p.Time) {
			continue
		}
		c.kernelFlow(n.spec.Name, p.Protocol, p.Src, p.Dst, p.Time)
	}
}

// kernelMayAnswer reports whether some node's plan says its kernel
// refuses or drops proto traffic to target: whether Send should wait for
// a kernel flow of a request no proxy socket saw.
func (c *Cluster) kernelMayAnswer(proto string, target netip.AddrPort) bool {
	if !c.kernelFlows {
		return false
	}
	if ns, ok := c.topo.NodeByIP(target.Addr()); ok {
		if n := c.nodes[ns.Name]; n != nil {
			return n.proxy.knows(proto, target)
		}
		return false
	}
	for _, n := range c.order {
		if n.proxy.knows(proto, target) {
			return true
		}
	}
	return false
}
