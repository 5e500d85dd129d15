package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/nplab/nplab/netsim"
)

// Request is one use of a traffic tool (curl for TCP, nc for UDP and SCTP)
// from a host of the lab.
type Request struct {
	// From is "client", a node name ("node-1") or a pod name.
	From     string
	Protocol string // "TCP" (HTTP GET), "UDP" or "SCTP"
	Target   netip.AddrPort
	// Message is, for TCP, the HTTP path ("/hostname"); for UDP and SCTP,
	// a netexec command ("hostname", "echo hi", "clientip").
	Message string
	// LocalPort fixes the UDP source port (0: any).
	LocalPort uint16
	// Timeout bounds the whole exchange; 0 means 3 s.
	Timeout time.Duration
}

// Reply is what the tool saw.
type Reply struct {
	Body   string
	Status int         // HTTP status (TCP only)
	Header http.Header // HTTP headers (TCP only)
	// Result is ok, refused (the kernel's TCP RST to the SYN / ICMP port
	// unreachable), reset (accepted by a proxy, then reset: its endpoint
	// refused), timed out, or error (e.g. "network is unreachable").
	Result FlowResult
	Err    error
}

// DefaultSendTimeout is Request.Timeout's default.
const DefaultSendTimeout = 3 * time.Second

// Command is the shell command a student would type for r
// ("ip netns exec nplab-demo-client curl -sS http://172.18.0.2:30080/hostname"):
// curl for TCP, netcat-openbsd's nc -u for UDP, ncat --sctp (Debian
// package ncat) for SCTP.
func (c *Cluster) Command(r Request) string {
	h := c.host(r.From)
	ns := "nplab-" + c.cfg.Topology.Lab + "-" + r.From
	if h != nil {
		ns = h.Namespace()
	}
	msg := r.Message
	switch strings.ToUpper(r.Protocol) {
	case "UDP":
		p := ""
		if r.LocalPort > 0 {
			p = fmt.Sprintf(" -p %d", r.LocalPort)
		}
		return fmt.Sprintf("echo %q | ip netns exec %s nc -u -w1%s %s %d", msg, ns, p, r.Target.Addr(), r.Target.Port())
	case "SCTP":
		// Debian's netcat-openbsd has no SCTP; nmap's ncat (package
		// "ncat") has --sctp.
		return fmt.Sprintf("echo %q | ip netns exec %s ncat --sctp %s %d", msg, ns, r.Target.Addr(), r.Target.Port())
	}
	if !strings.HasPrefix(msg, "/") {
		msg = "/" + msg
	}
	return fmt.Sprintf("ip netns exec %s curl -sS http://%s%s", ns, r.Target, msg)
}

func (c *Cluster) host(name string) netsim.Host {
	if name == ClientHost {
		return c.client
	}
	if n := c.nodes[name]; n != nil {
		return n.host
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pods[name]; p != nil && p.app != nil {
		return p.host
	}
	return nil
}

// Send runs one request from a host and reports what came back. A
// connection refused by a node's kernel (no listener) is FlowRefused; a TCP
// connection or SCTP association the proxy accepted and then reset or
// closed before any answer (its endpoint refused) is FlowReset, as curl
// shows "Connection reset by peer" there.
func (c *Cluster) Send(ctx context.Context, r Request) (Reply, error) {
	h := c.host(r.From)
	if h == nil {
		return Reply{}, fmt.Errorf("send from %q: no such host in lab %q (want %q, a node or a pod)", r.From, c.cfg.Topology.Lab, ClientHost)
	}
	if !r.Target.IsValid() {
		return Reply{}, fmt.Errorf("send from %q: invalid target %v", r.From, r.Target)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultSendTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rep Reply
	switch strings.ToUpper(r.Protocol) {
	case "", "TCP":
		rep = sendHTTP(ctx, h, r)
	case "UDP":
		rep = sendDatagram(ctx, h, r, "udp")
	case "SCTP":
		rep = sendDatagram(ctx, h, r, "sctp")
	default:
		return Reply{}, fmt.Errorf("send from %q: unknown protocol %q", r.From, r.Protocol)
	}
	if rep.Err != nil && rep.Result == FlowOK {
		rep.Result = classify(rep.Err)
	}
	return rep, nil
}

func sendHTTP(ctx context.Context, h netsim.Host, r Request) Reply {
	path := r.Message
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return h.Dial(ctx, "tcp", addr)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Target.String()+path, nil)
	if err != nil {
		return Reply{Result: FlowError, Err: err}
	}
	req.Header.Set("User-Agent", "curl/8 (nplab)")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		res := classify(err)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// Closed before any answer: the proxy accepted, its
			// endpoint refused, and it reset the connection.
			res = FlowReset
		}
		return Reply{Result: res, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	rep := Reply{Body: string(b), Status: resp.StatusCode, Header: resp.Header, Result: FlowOK}
	if err != nil {
		rep.Result, rep.Err = classify(err), err
	}
	return rep
}

func sendDatagram(ctx context.Context, h netsim.Host, r Request, network string) Reply {
	var conn net.Conn
	var err error
	if r.LocalPort > 0 {
		conn, err = h.DialFrom(ctx, netsim.Dial{Network: network, Remote: r.Target,
			Local: netip.AddrPortFrom(netip.IPv4Unspecified(), r.LocalPort)})
	} else {
		conn, err = h.Dial(ctx, network, r.Target.String())
	}
	if err != nil {
		return Reply{Result: classify(err), Err: err}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(r.Message)); err != nil {
		return Reply{Result: classify(err), Err: err}
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			return Reply{Result: FlowTimedOut, Err: fmt.Errorf("no answer from %s within the timeout: %w", r.Target, ctx.Err())}
		}
		if network == "sctp" && errors.Is(err, io.EOF) {
			// The association was accepted and then closed without an
			// answer: the proxy's endpoint refused.
			return Reply{Result: FlowReset, Err: err}
		}
		return Reply{Result: classify(err), Err: err}
	}
	return Reply{Body: string(buf[:n]), Result: FlowOK}
}
