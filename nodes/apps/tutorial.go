package apps

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The images of the Service tutorials, each answering as the real image
// does (read from its source; the README's catalog lists them):
//
//   - registry.k8s.io/echoserver:1.10 (minikube's classic hello-minikube,
//     kubernetes/contrib's echoheaders: nginx with a Lua page) on 8080;
//   - kicbase/echo-server:1.0 (today's hello-minikube, a build of
//     jmalloc/echo-server) and jmalloc/echo-server on $PORT, 8080;
//   - GKE's hello-app (us-docker.pkg.dev/google-samples/containers/gke/hello-app)
//     on $PORT, 8080;
//   - gcr.io/google-samples/hello-go-gke, the backend of "Connect a
//     Frontend to a Backend Using Services", on 80;
//   - traefik/whoami on --port or $WHOAMI_PORT_NUMBER, 80.

// imageTag is an image reference's tag ("" when it has none).
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return ""
}

// tutorialSpec fills s's ports and settings from the container's flags
// and environment, as the image's program reads them, and returns notices.
func tutorialSpec(s *Spec, argv []string, tag string) []string {
	var notices []string
	port := func(def int, v string, what string) {
		p := def
		if v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65535 {
				notices = append(notices, fmt.Sprintf("container %q: invalid %s %q; the real program would not start, nplab uses %d", s.Container, what, v, def))
			} else {
				p = n
			}
		}
		s.HTTP = appendPort(nil, int32(p))
	}
	switch s.Kind {
	case KindEchoserver:
		s.HTTP = []uint16{8080}
		switch {
		case tag == "1.4":
			s.Version = "nginx: 1.10.0 - lua: 10001"
		case strings.HasPrefix(tag, "2."): // e2e-test-images/echoserver
			s.Version = "nginx: 1.12.2 - lua: 10010"
		default:
			s.Version = "nginx: 1.13.3 - lua: 10008"
		}
	case KindEchoServer:
		port(8080, s.Env["PORT"], "PORT")
		s.Version = tag
	case KindHelloApp:
		port(8080, s.Env["PORT"], "PORT")
		// hello-app:2.0 says "Version: 2.0.0"; 1.0 (and anything else) 1.0.0.
		s.Version = "1.0.0"
		if tag == "2.0" {
			s.Version = "2.0.0"
		}
	case KindHelloGo:
		s.HTTP = []uint16{80}
	case KindWhoami:
		p, ok := lookupFlag(argv, "port")
		if !ok {
			p = s.Env["WHOAMI_PORT_NUMBER"]
		}
		port(80, p, "--port")
		s.Name = s.Env["WHOAMI_NAME"]
		if n, ok := lookupFlag(argv, "name"); ok {
			s.Name = n
		}
	}
	return notices
}

// tutorialHandler answers as the image s runs.
func (a *App) tutorialHandler(s Spec) http.Handler {
	switch s.Kind {
	case KindEchoserver:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.echoserver(s, w, r) })
	case KindEchoServer:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.echoServer(s, w, r) })
	case KindHelloApp:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "Hello, world!\n")
			fmt.Fprintf(w, "Version: %s\n", s.Version)
			fmt.Fprintf(w, "Hostname: %s\n", a.hostname)
		})
	case KindHelloGo:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"message":"Hello"}`+"\n")
		})
	}
	return a.whoami(s)
}

// echoserver is the echoheaders Lua page of registry.k8s.io/echoserver.
func (a *App) echoserver(s Spec, w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	w.Header().Set("Content-Type", "text/plain")
	var b strings.Builder
	fmt.Fprintf(&b, "\n\nHostname: %s\n\n", a.hostname)
	b.WriteString("Pod Information:\n")
	env := s.Env
	if env["NODE_NAME"] != "" || env["POD_NAME"] != "" || env["POD_NAMESPACE"] != "" || env["POD_IP"] != "" {
		fmt.Fprintf(&b, "\tnode name:\t%s\n\tpod name:\t%s\n\tpod namespace:\t%s\n\tpod IP:\t%s\n",
			env["NODE_NAME"], env["POD_NAME"], env["POD_NAMESPACE"], env["POD_IP"])
	} else {
		b.WriteString("\t-no pod information available-\n")
	}
	fmt.Fprintf(&b, "\nServer values:\n\tserver_version=%s\n", s.Version)
	client := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(client); err == nil {
		client = ap.Addr().String()
	}
	// nginx's $host: the Host header without its port, lower-cased.
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	version := strconv.Itoa(r.ProtoMajor) // Lua prints 1.0 as "1"
	if r.ProtoMinor != 0 {
		version += "." + strconv.Itoa(r.ProtoMinor)
	}
	fmt.Fprintf(&b, "\nRequest Information:\n\tclient_address=%s\n\tmethod=%s\n\treal path=%s\n\tquery=%s\n\trequest_version=%s\n\trequest_scheme=http\n\trequest_uri=http://%s:%d%s\n",
		client, r.Method, r.RequestURI, r.URL.RawQuery, version, host, s.HTTP[0], r.RequestURI)
	b.WriteString("\nRequest Headers:\n")
	headers := map[string]string{"host": r.Host}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ", ")
	}
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\t%s=%s\n", k, headers[k])
	}
	b.WriteString("\nRequest Body:\n")
	if len(body) > 0 {
		b.Write(body)
		b.WriteString("\n")
	} else {
		b.WriteString("\t-no body in request-\n")
	}
	io.WriteString(w, b.String())
}

// echoServer is jmalloc/echo-server's plain HTTP answer; kicbase's 1.0
// build prints the request line as "HTTP/1.1 GET /", later jmalloc
// releases as "GET / HTTP/1.1".
func (a *App) echoServer(s Spec, w http.ResponseWriter, r *http.Request) {
	old := strings.HasPrefix(Repository(s.Image), "kicbase/") || strings.Contains(Repository(s.Image), "/kicbase/")
	if !old {
		for k, v := range s.Env {
			if name, ok := strings.CutPrefix(k, "SEND_HEADER_"); ok {
				w.Header().Set(strings.ReplaceAll(name, "_", "-"), v)
			}
		}
	}
	send := s.Env["SEND_SERVER_HOSTNAME"]
	if v := r.Header.Get("X-Send-Server-Hostname"); v != "" {
		send = v
	}
	w.Header().Add("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	var b strings.Builder
	if !strings.EqualFold(send, "false") {
		fmt.Fprintf(&b, "Request served by %s\n\n", a.hostname)
	}
	if old {
		fmt.Fprintf(&b, "%s %s %s\n", r.Proto, r.Method, r.URL)
	} else {
		fmt.Fprintf(&b, "%s %s %s\n", r.Method, r.URL, r.Proto)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Host: %s\n", r.Host)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if len(body) > 0 {
		b.WriteString("\n")
		b.Write(body)
	}
	io.WriteString(w, b.String())
}

// whoami is traefik/whoami's mux: /, /api, /health, /bench and /echo.
func (a *App) whoami(s Spec) http.Handler {
	ips := func(r *http.Request) []string {
		// The pod's addresses: loopback and the pod IP the request came
		// in on (nplab leaves out the IPv6 ones).
		out := []string{"127.0.0.1"}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil && !ap.Addr().IsLoopback() {
				out = append(out, ap.Addr().String())
			}
		}
		return out
	}
	environ := func() []string {
		env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + a.hostname}
		keys := make([]string, 0, len(s.Env))
		for k := range s.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			env = append(env, k+"="+s.Env[k])
		}
		return env
	}
	var healthMu sync.Mutex
	health := http.StatusOK
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if wait := q.Get("wait"); wait != "" {
			if d, err := time.ParseDuration(wait); err == nil && d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
		}
		if s.Name != "" {
			fmt.Fprintln(w, "Name:", s.Name)
		}
		fmt.Fprintln(w, "Hostname:", a.hostname)
		for _, ip := range ips(r) {
			fmt.Fprintln(w, "IP:", ip)
		}
		fmt.Fprintln(w, "RemoteAddr:", r.RemoteAddr)
		if err := r.Write(w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if ok, _ := strconv.ParseBool(q.Get("env")); ok {
			for _, e := range environ() {
				fmt.Fprintln(w, e)
			}
		}
	})
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "*")
		env := map[string]string{}
		if ok, _ := strconv.ParseBool(r.URL.Query().Get("env")); ok {
			for _, e := range environ() {
				k, v, _ := strings.Cut(e, "=")
				env[k] = v
			}
		}
		data := struct {
			Hostname   string            `json:"hostname,omitempty"`
			IP         []string          `json:"ip,omitempty"`
			Headers    http.Header       `json:"headers,omitempty"`
			URL        string            `json:"url,omitempty"`
			Host       string            `json:"host,omitempty"`
			Method     string            `json:"method,omitempty"`
			Name       string            `json:"name,omitempty"`
			RemoteAddr string            `json:"remoteAddr,omitempty"`
			Environ    map[string]string `json:"environ,omitempty"`
		}{a.hostname, ips(r), r.Header, r.URL.RequestURI(), r.Host, r.Method, s.Name, r.RemoteAddr, env}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		healthMu.Lock()
		defer healthMu.Unlock()
		if r.Method == http.MethodPost {
			var code int
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&code); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if code < 100 || code > 999 { // would make net/http panic on the next GET
				http.Error(w, fmt.Sprintf("invalid status code %d", code), http.StatusBadRequest)
				return
			}
			health = code
			return
		}
		w.WriteHeader(health)
	})
	mux.HandleFunc("/bench", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "1")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// A websocket echo; nplab has no websocket, and a plain request
		// gets the upgrader's refusal, as from the real one.
		w.Header().Set("Sec-Websocket-Version", "13")
		http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
	})
	return mux
}
