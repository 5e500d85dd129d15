//go:build linux

package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// flowWait bounds how long Send waits, after the tool is done, for the
// flow its request made to be reported.
var flowWait = time.Second

// Command is the shell command a student would type for r
// ("nplab exec client -- curl -sS http://172.18.0.2:30080/hostname"):
// curl for TCP, netcat-openbsd's nc -u for UDP, ncat --sctp (Debian
// package ncat) for SCTP, run in r.From's namespace by `nplab exec`, which
// works with and without root (as root it is `ip netns exec
// nplab-<lab>-<host> ...`). A lab other than the default "demo" is named
// with --name.
func (c *Cluster) Command(r plane.Request) string {
	from := r.From
	if from == "" {
		from = plane.ClientHost
	}
	exec := "nplab exec " + from + " --"
	if c.topo.Lab != "demo" {
		exec = "nplab exec --name " + c.topo.Lab + " " + from + " --"
	}
	msg := r.Message
	switch strings.ToUpper(r.Protocol) {
	case "UDP":
		p := ""
		if r.LocalPort > 0 {
			p = fmt.Sprintf(" -p %d", r.LocalPort)
		}
		return fmt.Sprintf("echo %q | %s nc -u -w1%s %s %d", msg, exec, p, r.Target.Addr(), r.Target.Port())
	case "SCTP":
		// Debian's netcat-openbsd has no SCTP; nmap's ncat (package
		// "ncat") has --sctp.
		return fmt.Sprintf("echo %q | %s ncat --sctp %s %d", msg, exec, r.Target.Addr(), r.Target.Port())
	}
	if !strings.HasPrefix(msg, "/") {
		msg = "/" + msg
	}
	return fmt.Sprintf("%s curl -sS http://%s%s", exec, r.Target, msg)
}

func (c *Cluster) host(name string) netsim.Host {
	if name == plane.ClientHost {
		return c.client
	}
	if n := c.nodes[name]; n != nil {
		return n.host
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pods[name]; p != nil && p.started {
		return p.host
	}
	return nil
}

// Send runs one request from a host and reports what came back. A
// connection refused by a node's kernel (no listener) is FlowRefused; a TCP
// connection or SCTP association the proxy accepted and then reset or
// closed before any answer (its endpoint refused) is FlowReset, as curl
// shows "Connection reset by peer" there.
//
// Reply.Local is the tool's source address and port. Reply.Flow is the
// flow a node recorded for exactly that client address and protocol,
// started after the request: Send waits for it up to flowWait after the
// tool is done, when some proxy may have seen the request. It is nil for a
// request no proxy saw: one to a pod IP, one a node's kernel refused or
// dropped, one to a node whose link is down, a TCP connect that failed;
// but the nodes' kernels are observed (see observeKernels), so for a
// request to a frontend a node's plan says its kernel refuses or drops,
// Reply.Flow is the flow the kernel's answer made (Kernel set), waited
// for the same way.
//
// A node sending to a ClusterIP uses its own IP as the source (a ClusterIP
// is a local address of the node, which the kernel would otherwise pick),
// as a real node's traffic to a Service leaves from the node's address.
func (c *Cluster) Send(ctx context.Context, r plane.Request) (plane.Reply, error) {
	c.settle() // pods StartPod is still building (see StartPod)
	h := c.host(r.From)
	if h == nil {
		return plane.Reply{}, fmt.Errorf("send: %w", &plane.NotFoundError{Kind: "host", Name: r.From, Lab: c.topo.Lab})
	}
	if !r.Target.IsValid() {
		return plane.Reply{}, fmt.Errorf("send from %q: invalid target %v", r.From, r.Target)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = plane.DefaultSendTimeout
	}
	var bind netip.Addr
	if n := c.nodes[r.From]; n != nil && c.topo.ServiceCIDR.Contains(r.Target.Addr()) {
		bind = n.spec.IP
	}
	proto := strings.ToUpper(r.Protocol)
	if proto == "" {
		proto = "TCP"
	}
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rep plane.Reply
	// reached: a proxy socket may have seen the request (a TCP connect
	// that succeeded, or was reset by a proxy that accepted it; a
	// datagram the node's kernel did not refuse).
	reached := false
	switch proto {
	case "TCP":
		rep, reached = sendHTTP(tctx, h, r, bind)
	case "UDP":
		rep = sendDatagram(tctx, h, r, "udp", bind)
		reached = rep.Result != plane.FlowRefused
	case "SCTP":
		rep = sendDatagram(tctx, h, r, "sctp", bind)
		reached = rep.Result != plane.FlowRefused
	default:
		return plane.Reply{}, fmt.Errorf("send from %q: unknown protocol %q", r.From, r.Protocol)
	}
	if rep.Err != nil && rep.Result == plane.FlowOK {
		rep.Result = classify(rep.Err)
	}
	if c.proxied(r.Target.Addr()) && rep.Local.IsValid() && (reached || c.kernelMayAnswer(proto, r.Target)) {
		since := start
		if proto == "UDP" && r.LocalPort != 0 {
			// A fixed source port may ride a UDP flow pinned by an
			// earlier request: that flow is this request's too.
			since = time.Time{}
		}
		rep.Flow = c.flows.wait(ctx, flowKey{proto, rep.Local}, since, flowWait)
	}
	return rep, nil
}

// proxied reports whether a request to a may reach a node's proxy: a node
// IP or a ClusterIP.
func (c *Cluster) proxied(a netip.Addr) bool {
	return c.isNodeIP(a) || c.topo.ServiceCIDR.Contains(a)
}

// sendHTTP is curl. reached says whether the TCP connection was set up
// (or reset by whoever accepted it), so some proxy may have seen it.
func sendHTTP(ctx context.Context, h netsim.Host, r plane.Request, bind netip.Addr) (plane.Reply, bool) {
	path := r.Message
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	// The dial runs on the Transport's goroutine, which may outlive Do.
	var mu sync.Mutex
	var local netip.AddrPort
	var connected bool
	// The source port is known before the SYN leaves: a request that
	// times out (its SYNs dropped) returns while the dial still runs.
	picked := func(la netip.AddrPort) {
		mu.Lock()
		local = la
		mu.Unlock()
	}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, la, err := dialTCP(ctx, h, r.Target, bind, picked)
		mu.Lock()
		local = la
		connected = err == nil || errors.Is(err, syscall.ECONNRESET)
		mu.Unlock()
		return conn, err
	}}
	rep := doHTTP(ctx, tr, r, path)
	mu.Lock()
	rep.Local = local
	reached := connected
	mu.Unlock()
	return rep, reached
}

// Ephemeral ports Send picks from for TCP, as Linux's default
// net.ipv4.ip_local_port_range does.
const (
	ephemeralFirst = 32768
	ephemeralLast  = 60999
)

// pickPort is a source port for dialTCP to try: a random one in the
// kernel's default ephemeral range. (A variable, so a test can make it
// pick a port it knows to be taken.)
var pickPort = func() uint16 {
	return uint16(ephemeralFirst + rand.IntN(ephemeralLast-ephemeralFirst+1))
}

// dialTCP connects from h to target from a source address and port it
// picked itself, so the tool's address is known even when the connect
// fails: a proxy that accepts and resets at once (its pod refused, its
// route is gone) can reset the connection before connect returns, and the
// flow of that attempt is still the request's. bind, if valid, is the
// source address; else it is the one the kernel would choose. When a few
// picked ports are taken it lets the kernel pick the port (and knows it
// only on success). picked, if not nil, hears each source address and
// port before the connect from it starts.
func dialTCP(ctx context.Context, h netsim.Host, target netip.AddrPort, bind netip.Addr, picked func(netip.AddrPort)) (net.Conn, netip.AddrPort, error) {
	src := bind
	if !src.IsValid() {
		src = sourceFor(ctx, h, target)
	}
	if src.IsValid() {
		for range 5 {
			local := netip.AddrPortFrom(src, pickPort())
			if picked != nil {
				picked(local)
			}
			conn, err := h.DialFrom(ctx, netsim.Dial{Network: "tcp", Local: local, Remote: target})
			if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) {
				// The port is bound, or (bind reuses it, SO_REUSEADDR)
				// an earlier connection from it to target still holds
				// the four-tuple, closing, and connect refuses it.
				continue
			}
			if err != nil {
				return nil, local, err
			}
			return conn, addrPortOf(conn.LocalAddr()), nil
		}
	}
	conn, err := h.DialFrom(ctx, netsim.Dial{Network: "tcp", Local: netip.AddrPortFrom(bind, 0), Remote: target})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return conn, addrPortOf(conn.LocalAddr()), nil
}

// sourceFor is the source address h's kernel picks to reach target (a
// connected UDP socket sends nothing, but its local address is the
// route's choice), or the invalid address when there is no route.
func sourceFor(ctx context.Context, h netsim.Host, target netip.AddrPort) netip.Addr {
	c, err := h.Dial(ctx, "udp", target.String())
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return addrPortOf(c.LocalAddr()).Addr()
}

func doHTTP(ctx context.Context, tr *http.Transport, r plane.Request, path string) plane.Reply {
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Target.String()+path, nil)
	if err != nil {
		return plane.Reply{Result: plane.FlowError, Err: err}
	}
	req.Header.Set("User-Agent", "curl/8 (nplab)")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		res := classify(err)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// Closed before any answer: the proxy accepted, its
			// endpoint refused, and it reset the connection.
			res = plane.FlowReset
		}
		return plane.Reply{Result: res, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	rep := plane.Reply{Body: string(b), Status: resp.StatusCode, Header: resp.Header, Result: plane.FlowOK}
	if err != nil {
		rep.Result, rep.Err = classify(err), err
	}
	return rep
}

func sendDatagram(ctx context.Context, h netsim.Host, r plane.Request, network string, bind netip.Addr) plane.Reply {
	var conn net.Conn
	var err error
	if r.LocalPort > 0 || bind.IsValid() {
		local := netip.AddrPortFrom(netip.IPv4Unspecified(), r.LocalPort)
		if bind.IsValid() {
			local = netip.AddrPortFrom(bind, r.LocalPort)
		}
		conn, err = h.DialFrom(ctx, netsim.Dial{Network: network, Remote: r.Target, Local: local})
	} else {
		conn, err = h.Dial(ctx, network, r.Target.String())
	}
	if err != nil {
		return plane.Reply{Result: classify(err), Err: err}
	}
	defer conn.Close()
	rep := plane.Reply{Local: addrPortOf(conn.LocalAddr())}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(r.Message)); err != nil {
		rep.Result, rep.Err = classify(err), err
		return rep
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		switch {
		case ctx.Err() != nil && !errors.Is(err, syscall.ECONNREFUSED):
			rep.Result, rep.Err = plane.FlowTimedOut, fmt.Errorf("no answer from %s within the timeout: %w", r.Target, ctx.Err())
		case network == "sctp" && errors.Is(err, io.EOF):
			// The association was accepted and then closed without an
			// answer: the proxy's endpoint refused.
			rep.Result, rep.Err = plane.FlowReset, err
		default:
			rep.Result, rep.Err = classify(err), err
		}
		return rep
	}
	rep.Body, rep.Result = string(buf[:n]), plane.FlowOK
	return rep
}
