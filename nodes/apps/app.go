package apps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nplab/nplab/nodes/loadgen"
)

// Host is where an app opens its sockets: the pod's network namespace
// (a netsim.Host satisfies it). Dial is what netexec's /dial uses, so its
// requests leave from the pod.
type Host interface {
	Listen(ctx context.Context, network, address string) (net.Listener, error)
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
	Dial(ctx context.Context, network, address string) (net.Conn, error)
}

// App is the running servers of one pod's containers.
type App struct {
	hostname string
	specs    []Spec
	host     Host

	// ctx is every request's base context; Stop cancels it, so a /dial in
	// progress gives up when the pod's app is killed.
	ctx    context.Context
	cancel context.CancelFunc

	terminating atomic.Bool
	// ready[i] is netexec's serverReady for container i: true once its
	// UDP (or SCTP) server has started, false once it stopped. A
	// container without either (--udp-port=-1 and no --sctp-port) is
	// never ready, so its /healthz answers 412 for ever, as upstream.
	ready []atomic.Bool

	// exited is closed when the app exits by itself (/exit, /shutdown);
	// exitCode is then its exit code.
	exitOnce sync.Once
	exited   chan struct{}
	exitCode atomic.Int32

	// log is the container's log (netexec's log lines, nginx's access log).
	log *Log

	mu       sync.Mutex
	stopped  bool
	servers  []*http.Server
	closers  []io.Closer
	addrs    []Listening
	wg       sync.WaitGroup
	sctpConn map[net.Conn]struct{}
}

// Listening is one socket an app listens on, with the address the kernel
// gave it.
type Listening struct {
	Protocol string // "TCP", "UDP", "SCTP"
	Port     uint16 // the container port asked for
	Addr     net.Addr
}

// Start opens every server of specs in host and serves them until Stop.
// hostname is what the apps answer as their hostname (the pod's name). If a
// socket cannot be opened, what was opened is closed and the error names
// the container and port.
func Start(ctx context.Context, host Host, hostname string, specs []Spec) (*App, error) {
	a := &App{hostname: hostname, specs: specs, host: host, sctpConn: map[net.Conn]struct{}{},
		ready: make([]atomic.Bool, len(specs)), exited: make(chan struct{}), log: NewLog()}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	for i, s := range specs {
		hosts := []string{""}
		if len(s.Addrs) > 0 {
			hosts = hosts[:0]
			for _, a := range s.Addrs {
				hosts = append(hosts, a.String())
			}
		}
		for _, p := range s.HTTP {
			srv := &http.Server{Handler: a.handler(i, s), ReadHeaderTimeout: 10 * time.Second,
				BaseContext: func(net.Listener) context.Context { return a.ctx }}
			a.mu.Lock() // a request (netexec's /exit) may read servers already
			a.servers = append(a.servers, srv)
			a.mu.Unlock()
			for _, hst := range hosts {
				l, err := host.Listen(ctx, "tcp4", net.JoinHostPort(hst, strconv.Itoa(int(p))))
				if err != nil {
					a.Stop()
					return nil, fmt.Errorf("container %q (%s): listen on TCP port %d: %w", s.Container, s.Kind, p, err)
				}
				a.mu.Lock()
				a.addrs = append(a.addrs, Listening{"TCP", p, l.Addr()})
				a.mu.Unlock()
				a.wg.Go(func() { _ = srv.Serve(l) })
			}
		}
		for _, p := range s.UDP {
			for _, hst := range hosts {
				pc, err := host.ListenPacket(ctx, "udp4", net.JoinHostPort(hst, strconv.Itoa(int(p))))
				if err != nil {
					a.Stop()
					return nil, fmt.Errorf("container %q (%s): listen on UDP port %d: %w", s.Container, s.Kind, p, err)
				}
				a.closers = append(a.closers, pc)
				a.addrs = append(a.addrs, Listening{"UDP", p, pc.LocalAddr()})
				a.wg.Go(func() { a.serveUDP(pc) })
			}
		}
		for _, p := range s.SCTP {
			for _, hst := range hosts {
				l, err := host.Listen(ctx, "sctp", net.JoinHostPort(hst, strconv.Itoa(int(p))))
				if err != nil {
					a.Stop()
					return nil, fmt.Errorf("container %q (%s): listen on SCTP port %d: %w", s.Container, s.Kind, p, err)
				}
				a.closers = append(a.closers, l)
				a.addrs = append(a.addrs, Listening{"SCTP", p, l.Addr()})
				a.wg.Go(func() { a.serveSCTP(l) })
			}
		}
		for _, p := range s.Bench {
			l, err := host.Listen(ctx, "tcp4", ":"+strconv.Itoa(int(p)))
			if err != nil {
				a.Stop()
				return nil, fmt.Errorf("container %q (%s): listen on TCP port %d: %w", s.Container, s.Kind, p, err)
			}
			pc, err := host.ListenPacket(ctx, "udp4", ":"+strconv.Itoa(int(p)))
			if err != nil {
				l.Close()
				a.Stop()
				return nil, fmt.Errorf("container %q (%s): listen on UDP port %d: %w", s.Container, s.Kind, p, err)
			}
			a.mu.Lock()
			a.closers = append(a.closers, loadgen.Serve(hostname, l, pc))
			a.addrs = append(a.addrs, Listening{"TCP", p, l.Addr()}, Listening{"UDP", p, pc.LocalAddr()})
			a.mu.Unlock()
		}
		// netexec's UDP and SCTP servers set serverReady once they listen.
		if len(s.UDP) > 0 || len(s.SCTP) > 0 {
			a.ready[i].Store(true)
		}
		if s.Kind == KindNetexec {
			for _, p := range s.HTTP {
				a.log.goLog("Started HTTP server on port %d", p)
			}
			for _, p := range s.UDP {
				for _, hst := range hosts {
					a.log.goLog("Started UDP server on port %s %d", hst, p)
				}
			}
			if len(s.SCTP) > 0 {
				a.log.goLog("Started SCTP server")
			}
		}
	}
	return a, nil
}

// Log is the container's log.
func (a *App) Log() *Log { return a.log }

// Listening lists the sockets the app opened.
func (a *App) Listening() []Listening {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Listening(nil), a.addrs...)
}

// Specs returns what the app was started from.
func (a *App) Specs() []Spec { return a.specs }

// Terminate is SIGTERM's first half: /readyz starts failing (503) while the
// servers keep answering. It returns the longest --delay-shutdown of the
// pod's containers, after which the caller should Stop.
func (a *App) Terminate() time.Duration {
	a.terminating.Store(true)
	var d time.Duration
	for _, s := range a.specs {
		d = max(d, s.DelayShutdown)
	}
	return d
}

// Stop closes every server and open connection; new connections are
// refused by the pod's kernel from then on. Stop is idempotent.
func (a *App) Stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	a.cancel()
	for i := range a.ready {
		a.ready[i].Store(false)
	}
	for _, s := range a.servers {
		_ = s.Close()
	}
	for _, c := range a.closers {
		_ = c.Close()
	}
	for c := range a.sctpConn {
		_ = c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

func (a *App) handler(i int, s Spec) http.Handler {
	switch s.Kind {
	case KindNginx:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "nginx")
			w.Header().Set("X-Pod-Name", a.hostname)
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, a.hostname)
			a.nginxAccess(r, http.StatusOK, len(a.hostname))
		})
	case KindHTTPEcho:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-App-Name", "http-echo")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, s.Text)
		})
	case KindServeHostname:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, a.hostname)
		})
	case KindEchoserver, KindEchoServer, KindHelloApp, KindHelloGo, KindWhoami:
		return a.tutorialHandler(s)
	}
	mux := a.netexecMux(i)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.netexecLog(r)
		mux.ServeHTTP(w, r)
	})
}

// nginxAccess is nginx's default access log line (log_format combined,
// plus $http_x_forwarded_for as the image's nginx.conf has it).
func (a *App) nginxAccess(r *http.Request, status, size int) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	a.log.Print(fmt.Sprintf("%s - - [%s] %q %d %d %q %q %q", host, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
		r.Method+" "+r.RequestURI+" "+r.Proto, status, size, dash(r.Referer()), dash(r.UserAgent()), dash(r.Header.Get("X-Forwarded-For"))))
}

// Command answers one netexec UDP/SCTP command: "hostname", "echo <text>",
// "clientip". As in netexec, the text is trimmed and lower-cased first, and
// an unknown command gets no answer (ok false).
func Command(hostname, text, client string) (reply string, ok bool) {
	t := strings.ToLower(strings.TrimSpace(text))
	switch {
	case t == "hostname":
		return hostname, true
	case strings.HasPrefix(t, "echo "):
		return strings.SplitN(t, " ", 2)[1], true
	case t == "clientip":
		return client, true
	}
	return "", false
}

func (a *App) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		a.logCommand("UDP", string(buf[:n]), from.String())
		if reply, ok := Command(a.hostname, string(buf[:n]), from.String()); ok {
			_, _ = pc.WriteTo([]byte(reply), from)
		}
	}
}

func (a *App) serveSCTP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			a.mu.Lock()
			stopped := a.stopped
			a.mu.Unlock()
			if stopped {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		a.mu.Lock()
		if a.stopped {
			a.mu.Unlock()
			_ = c.Close()
			return
		}
		a.sctpConn[c] = struct{}{}
		a.mu.Unlock()
		a.wg.Go(func() {
			defer func() {
				a.mu.Lock()
				delete(a.sctpConn, c)
				a.mu.Unlock()
				_ = c.Close()
			}()
			// netexec reads one message, answers it and closes the association.
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			buf := make([]byte, 1024)
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			a.logCommand("SCTP", string(buf[:n]), c.RemoteAddr().String())
			if reply, ok := Command(a.hostname, string(buf[:n]), c.RemoteAddr().String()); ok {
				_, _ = c.Write([]byte(reply))
			}
		})
	}
}

// logCommand logs a UDP or SCTP command as netexec does.
func (a *App) logCommand(proto, text, client string) {
	t := strings.ToLower(strings.TrimSpace(text))
	lower := strings.ToLower(proto)
	if proto == "SCTP" {
		lower = proto
	}
	switch {
	case t == "hostname":
		a.log.goLog("Sending %s hostName response", lower)
	case strings.HasPrefix(t, "echo "):
		a.log.goLog("Echoing %v to %s client %s", strings.SplitN(t, " ", 2)[1], proto, client)
	case t == "clientip":
		a.log.goLog("Sending clientip back to %s client %s", proto, client)
	case t != "":
		a.log.goLog("Unknown %s command received from %s: %v", proto, client, t)
	}
}
