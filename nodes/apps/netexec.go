package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Exited is closed when the app exits by itself: netexec's /exit or
// /shutdown. Its sockets are closed by then; ExitCode says how it exited.
// Stop (the kubelet killing the app) does not close it.
func (a *App) Exited() <-chan struct{} { return a.exited }

// ExitCode is the code the app exited with, once Exited is closed.
func (a *App) ExitCode() int { return int(a.exitCode.Load()) }

// exit is the process exiting with code: with a timeout, netexec's HTTP
// servers first finish the requests in flight (http.Server.Shutdown, at
// most timeout), as /exit's graceful path does; then every socket closes.
func (a *App) exit(code int, timeout time.Duration) {
	a.exitOnce.Do(func() {
		if timeout > 0 {
			ctx, cancel := context.WithTimeout(a.ctx, timeout)
			a.mu.Lock()
			servers := append([]*http.Server(nil), a.servers...)
			a.mu.Unlock()
			var wg sync.WaitGroup
			for _, s := range servers {
				wg.Go(func() { _ = s.Shutdown(ctx) })
			}
			wg.Wait()
			cancel()
		}
		a.Stop()
		a.exitCode.Store(int32(code))
		close(a.exited)
	})
}

// dropConnection ends the request without an answer, as a process that
// calls os.Exit in a handler does: the client sees the connection close
// ("Empty reply from server").
func dropConnection(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = c.Close()
	}
}

// netexecLog logs a request as netexec's handlers do; /readyz and
// /header are not logged.
func (a *App) netexecLog(r *http.Request) {
	q := r.URL.Query()
	switch p := r.URL.Path; p {
	case "/readyz", "/header":
	case "/hostname", "/hostName", "/clientip", "/healthz", "/shutdown":
		a.log.goLog("GET %s", p)
	case "/echo":
		a.log.goLog("GET /echo?msg=%s&code=%s", q.Get("msg"), q.Get("code"))
	case "/exit":
		a.log.goLog("GET /exit?code=%s&timeout=%s&wait=%s", q.Get("code"), q.Get("timeout"), q.Get("wait"))
	case "/dial":
		a.log.goLog("GET /dial?host=%s&protocol=%s&port=%s&request=%s&tries=%s", q.Get("host"), q.Get("protocol"), q.Get("port"), q.Get("request"), q.Get("tries"))
	case "/redirect":
		a.log.goLog("%s /redirect?msg=%s&code=%s", r.Method, q.Get("location"), q.Get("code"))
	default: // the root handler answers every other path (/shell and
		// /upload included: nplab's pods have no shell or disk)
		a.log.goLog("GET /")
	}
}

// netexecMux answers as agnhost netexec's HTTP server does (container i).
func (a *App) netexecMux(i int) http.Handler {
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
	mux.HandleFunc("/header", func(w http.ResponseWriter, r *http.Request) {
		if key := r.FormValue("key"); key != "" {
			fmt.Fprint(w, r.Header.Get(key))
			return
		}
		b, err := json.Marshal(r.Header)
		if err != nil {
			fmt.Fprintf(w, "error marshalling header, err: %v", err)
			return
		}
		w.Write(b)
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
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusFound
		if cs := r.FormValue("code"); cs != "" {
			var err error
			if code, err = strconv.Atoi(cs); err != nil {
				fmt.Fprintf(w, "argument 'code' must be an integer or empty, got %q\n", cs)
				return
			}
		}
		http.Redirect(w, r, r.FormValue("location"), code)
	})
	// /healthz: 200 once the UDP (or SCTP) server runs, else 412.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if a.ready[i].Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusPreconditionFailed)
	})
	// /readyz: 503 "shutting down" after SIGTERM, "ok" when ready, else 412.
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case a.terminating.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "shutting down")
		case a.ready[i].Load():
			io.WriteString(w, "ok")
		default:
			w.WriteHeader(http.StatusPreconditionFailed)
		}
	})
	mux.HandleFunc("/exit", a.exitHandler)
	mux.HandleFunc("/shutdown", func(w http.ResponseWriter, r *http.Request) {
		dropConnection(w)
		go a.exit(0, 0)
	})
	mux.HandleFunc("/dial", a.dialHandler)
	return mux
}

// exitHandler is netexec's /exit?code=C&timeout=D&wait=W.
func (a *App) exitHandler(w http.ResponseWriter, r *http.Request) {
	ws, ts, cs := r.FormValue("wait"), r.FormValue("timeout"), r.FormValue("code")
	timeout, err := time.ParseDuration(ts)
	if err != nil && ts != "" {
		fmt.Fprintf(w, "argument 'timeout' must be a valid golang duration or empty, got %q\n", ts)
		return
	}
	wait, err := time.ParseDuration(ws)
	if err != nil && ws != "" {
		fmt.Fprintf(w, "argument 'wait' must be a valid golang duration or empty, got %q\n", ws)
		return
	}
	code, err := strconv.Atoi(cs)
	if err != nil && cs != "" {
		fmt.Fprintf(w, "argument 'code' must be an integer [0-127] or empty, got %q\n", cs)
		return
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the app was killed meanwhile
			t.Stop()
			return
		}
	}
	if timeout <= 0 {
		dropConnection(w)
		go a.exit(code, 0)
		return
	}
	// Graceful: this request is answered (200, empty), then the servers
	// shut down.
	go a.exit(code, timeout)
}

// dialHandler is netexec's /dial: tries requests to host:port and
// answers {"responses":[...],"errors":[...]}; see agnhost-netexec.md.
func (a *App) dialHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	host, port, request, protocol, tryParam := q.Get("host"), q.Get("port"), q.Get("request"), q.Get("protocol"), q.Get("tries")
	tries := 1
	var err error
	if len(tryParam) > 0 {
		tries, err = strconv.Atoi(tryParam)
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("tries parameter is invalid. %v", err), http.StatusBadRequest)
		return
	}
	if len(request) == 0 {
		http.Error(w, fmt.Sprintf("request parameter not specified. %v", err), http.StatusBadRequest)
		return
	}
	var dial func(ctx context.Context, request, addr string) (string, error)
	switch strings.ToLower(protocol) {
	case "", "http":
		dial = a.dialHTTP
	case "udp":
		dial = a.dialUDP
	case "sctp":
		dial = a.dialSCTP
	default:
		http.Error(w, fmt.Sprintf("unsupported protocol. %s", protocol), http.StatusBadRequest)
		return
	}
	addr, err := resolve(host, port)
	if err != nil {
		http.Error(w, fmt.Sprintf("host and/or port param are invalid. %v", err), http.StatusBadRequest)
		return
	}
	errs := make([]string, 0)
	responses := make([]string, 0)
	var response string
	// netexec runs every try; this loop also ends when the client goes
	// away or the app is killed, so a huge tries cannot outlive either.
	for i := 0; i < tries && r.Context().Err() == nil; i++ {
		response, err = dial(r.Context(), request, addr)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%v", err))
		} else {
			responses = append(responses, response)
		}
	}
	output := map[string][]string{}
	if len(response) > 0 {
		output["responses"] = responses
	}
	if len(errs) > 0 {
		output["errors"] = errs
	}
	b, err := json.Marshal(output)
	if err != nil {
		http.Error(w, fmt.Sprintf("response could not be serialized. %v", err), http.StatusExpectationFailed)
		return
	}
	w.Write(b)
}

// resolve is net.ResolveTCPAddr for an IP literal. A pod in nplab has no
// cluster DNS, so a name does not resolve, as in a pod whose resolver
// knows no such host.
func resolve(host, port string) (string, error) {
	hostPort := net.JoinHostPort(host, port)
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
	}
	a, err := net.ResolveTCPAddr("tcp", hostPort)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// dialErr strips the namespace wrapping of a Host's dial error, leaving
// the *net.OpError a process in the pod would see.
func dialErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}

// dialTimeout is netexec's: the HTTP client's timeout, and how long UDP
// and SCTP wait for a reply.
const dialTimeout = 5 * time.Second

func (a *App) dialHTTP(ctx context.Context, request, addr string) (string, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := a.host.Dial(ctx, "tcp", address)
		return c, dialErr(err)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: dialTimeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/%s", addr, request), nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	return string(body), nil
}

func (a *App) dialUDP(ctx context.Context, request, addr string) (string, error) {
	c, err := a.host.Dial(ctx, "udp", addr)
	if err != nil {
		return "", fmt.Errorf("udp dial failed. err:%v", dialErr(err))
	}
	defer c.Close()
	if _, err := c.Write([]byte(request)); err != nil {
		return "", fmt.Errorf("udp connection write failed. err:%v", err)
	}
	return readReply(ctx, c, 2048, "udp")
}

func (a *App) dialSCTP(ctx context.Context, request, addr string) (string, error) {
	c, err := a.host.Dial(ctx, "sctp", addr)
	if err != nil {
		return "", fmt.Errorf("sctp dial failed. err:%v", dialErr(err))
	}
	defer c.Close()
	if _, err := c.Write([]byte(request)); err != nil {
		return "", fmt.Errorf("sctp connection write failed. err:%v", err)
	}
	return readReply(ctx, c, 1024, "sctp")
}

// readReply reads one reply of at most size bytes within dialTimeout (or
// until ctx ends).
func readReply(ctx context.Context, c net.Conn, size int, proto string) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(dialTimeout))
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, size)
	n, err := c.Read(buf)
	if err != nil || n == 0 {
		return "", fmt.Errorf("reading from %s connection failed. err:'%v'", proto, err)
	}
	return string(buf[:n]), nil
}
