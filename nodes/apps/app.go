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
)

// Host is where an app opens its sockets: the pod's network namespace
// (a netsim.Host satisfies it).
type Host interface {
	Listen(ctx context.Context, network, address string) (net.Listener, error)
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
}

// App is the running servers of one pod's containers.
type App struct {
	hostname string
	specs    []Spec

	terminating atomic.Bool
	udpReady    atomic.Bool

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
	a := &App{hostname: hostname, specs: specs, sctpConn: map[net.Conn]struct{}{}}
	for _, s := range specs {
		for _, p := range s.HTTP {
			l, err := host.Listen(ctx, "tcp4", ":"+strconv.Itoa(int(p)))
			if err != nil {
				a.Stop()
				return nil, fmt.Errorf("container %q (%s): listen on TCP port %d: %w", s.Container, s.Kind, p, err)
			}
			srv := &http.Server{Handler: a.handler(s), ReadHeaderTimeout: 10 * time.Second}
			a.servers = append(a.servers, srv)
			a.addrs = append(a.addrs, Listening{"TCP", p, l.Addr()})
			a.wg.Go(func() { _ = srv.Serve(l) })
		}
		for _, p := range s.UDP {
			pc, err := host.ListenPacket(ctx, "udp4", ":"+strconv.Itoa(int(p)))
			if err != nil {
				a.Stop()
				return nil, fmt.Errorf("container %q (%s): listen on UDP port %d: %w", s.Container, s.Kind, p, err)
			}
			a.closers = append(a.closers, pc)
			a.addrs = append(a.addrs, Listening{"UDP", p, pc.LocalAddr()})
			a.wg.Go(func() { a.serveUDP(pc) })
		}
		for _, p := range s.SCTP {
			l, err := host.Listen(ctx, "sctp", ":"+strconv.Itoa(int(p)))
			if err != nil {
				a.Stop()
				return nil, fmt.Errorf("container %q (%s): listen on SCTP port %d: %w", s.Container, s.Kind, p, err)
			}
			a.closers = append(a.closers, l)
			a.addrs = append(a.addrs, Listening{"SCTP", p, l.Addr()})
			a.wg.Go(func() { a.serveSCTP(l) })
		}
	}
	a.udpReady.Store(true)
	return a, nil
}

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
	a.udpReady.Store(false)
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

func (a *App) handler(s Spec) http.Handler {
	switch s.Kind {
	case KindNginx:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "nginx")
			w.Header().Set("X-Pod-Name", a.hostname)
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, a.hostname)
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
	}
	return a.netexecMux()
}

// netexecMux answers as agnhost netexec's HTTP server does.
func (a *App) netexecMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "NOW: %v", time.Now())
	})
	hostname := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, a.hostname) }
	mux.HandleFunc("/hostname", hostname)
	mux.HandleFunc("/hostName", hostname)
	mux.HandleFunc("/clientip", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		msg := r.FormValue("msg")
		if cs := r.FormValue("code"); cs != "" {
			code, err := strconv.Atoi(cs)
			if err != nil {
				fmt.Fprintf(w, "argument 'code' must be an integer or empty, got %q\n", cs)
				return
			}
			w.WriteHeader(code)
		}
		fmt.Fprint(w, msg)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if a.udpReady.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusPreconditionFailed)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if a.terminating.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
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
			if reply, ok := Command(a.hostname, string(buf[:n]), c.RemoteAddr().String()); ok {
				_, _ = c.Write([]byte(reply))
			}
		})
	}
}
