package apps

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
)

// Kind is which program a container runs, as the catalog recognises it.
type Kind string

const (
	// KindNetexec is agnhost netexec, the Kubernetes e2e backend.
	KindNetexec Kind = "netexec"
	// KindServeHostname is agnhost serve-hostname: HTTP, the hostname on every path.
	KindServeHostname Kind = "serve-hostname"
	// KindNginx is nginx's default server: HTTP on port 80.
	KindNginx Kind = "nginx"
	// KindHTTPEcho is hashicorp/http-echo: the -text on every path.
	KindHTTPEcho Kind = "http-echo"
	// KindNone runs no server (curlimages/curl, busybox, agnhost pause).
	KindNone Kind = "none"

	// The images of the Kubernetes, minikube and GKE Service tutorials
	// (tutorial.go).

	// KindEchoserver is registry.k8s.io/echoserver (minikube's classic
	// hello-minikube): nginx and Lua on 8080, echoing the request.
	KindEchoserver Kind = "echoserver"
	// KindEchoServer is kicbase/echo-server (today's hello-minikube) and
	// jmalloc/echo-server: "Request served by <hostname>" and the request,
	// on $PORT (8080).
	KindEchoServer Kind = "echo-server"
	// KindHelloApp is GKE's hello-app: "Hello, world!", the version and
	// the hostname, on $PORT (8080).
	KindHelloApp Kind = "hello-app"
	// KindHelloGo is gcr.io/google-samples/hello-go-gke, the backend of
	// "Connect a Frontend to a Backend Using Services": {"message":"Hello"}
	// on 80.
	KindHelloGo Kind = "hello-go-gke"
	// KindWhoami is traefik/whoami: the hostname, IPs and request, on
	// --port or $WHOAMI_PORT_NUMBER (80).
	KindWhoami Kind = "whoami"

	// KindLoadgen is nplab's own bench server (plane.BenchImage,
	// "nplab/loadgen", package nodes/loadgen): `nplab bench` runs it. It
	// listens on each containerPort for TCP and UDP (5201 when none is
	// declared). It is no registry's image.
	KindLoadgen Kind = "loadgen"
)

// Spec is what one container's app listens on and how it answers. Ports are
// container ports inside the pod's network namespace.
type Spec struct {
	Container string
	Image     string
	Kind      Kind
	HTTP      []uint16 // TCP ports serving HTTP
	UDP       []uint16 // UDP ports answering netexec commands
	SCTP      []uint16 // SCTP ports answering netexec commands
	// Bench are the ports of nplab's bench server (KindLoadgen), each
	// for TCP and UDP.
	Bench []uint16
	// Text is http-echo's -text.
	Text string
	// DelayShutdown is netexec's --delay-shutdown: after SIGTERM the servers
	// keep running this long while /readyz fails.
	DelayShutdown time.Duration
	// Version is what the image reports as its version (hello-app's
	// "Version:", echoserver's server_version).
	Version string
	// Name is whoami's --name (WHOAMI_NAME).
	Name string
	// Env is the container's literal environment (env entries with a
	// value; valueFrom is not resolved).
	Env map[string]string
	// Warnings are what the kubelet would complain about (an image
	// outside the catalog that declares no port): Warning events, where
	// FromContainer's notices are Notices.
	Warnings []string
	// Addrs are the addresses the app listens on; empty means every
	// address (0.0.0.0), as a program in its own pod does. A hostNetwork
	// pod's app listens on its node's own addresses only, so it never
	// collides with the lab's proxy sockets on a ClusterIP:port of the
	// same node (kube-proxy's DNAT takes no socket).
	Addrs []netip.Addr
	// Exit is set when the real program refuses to start with these
	// arguments (http-echo without -text, a flag value that does not
	// parse): it exits at once, and the kubelet restarts it as
	// restartPolicy says, into CrashLoopBackOff.
	Exit *Exit
}

// Exit is how a program that refuses to start ends: its exit code and the
// line it prints (the container's termination message).
type Exit struct {
	Code    int32
	Message string
}

// Listens reports whether the app serves protocol ("TCP", "UDP", "SCTP") on port.
func (s Spec) Listens(protocol string, port uint16) bool {
	switch strings.ToUpper(protocol) {
	case "", "TCP":
		return slices.Contains(s.HTTP, port) || slices.Contains(s.Bench, port)
	case "UDP":
		return slices.Contains(s.UDP, port) || slices.Contains(s.Bench, port)
	case "SCTP":
		return slices.Contains(s.SCTP, port)
	}
	return false
}

// Describe is a short human description ("netexec: HTTP 8080, UDP 8081").
func (s Spec) Describe() string {
	var parts []string
	add := func(proto string, ports []uint16) {
		if len(ports) == 0 {
			return
		}
		ps := make([]string, len(ports))
		for i, p := range ports {
			ps[i] = strconv.Itoa(int(p))
		}
		parts = append(parts, proto+" "+strings.Join(ps, ","))
	}
	add("HTTP", s.HTTP)
	add("UDP", s.UDP)
	add("SCTP", s.SCTP)
	add("TCP and UDP", s.Bench)
	if len(parts) == 0 {
		return string(s.Kind) + ": no server"
	}
	return string(s.Kind) + ": " + strings.Join(parts, ", ")
}

// Repository returns an image reference without its tag or digest:
// "registry.k8s.io/e2e-test-images/agnhost:2.53" → "registry.k8s.io/e2e-test-images/agnhost".
func Repository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	// A ':' after the last '/' is a tag; before it, a registry port.
	if i := strings.LastIndex(image, ":"); i >= 0 && i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// imageKind maps an image repository to the catalog entry.
func imageKind(repo string) (Kind, bool) {
	r := strings.ToLower(repo)
	for _, p := range []string{"docker.io/", "index.docker.io/"} {
		r = strings.TrimPrefix(r, p)
	}
	r = strings.TrimPrefix(r, "library/")
	base := r[strings.LastIndex(r, "/")+1:]
	switch {
	case base == "agnhost" && (strings.HasPrefix(r, "registry.k8s.io/") || strings.HasPrefix(r, "k8s.gcr.io/") || strings.HasPrefix(r, "gcr.io/kubernetes-e2e-test-images/")):
		return KindNetexec, true
	case r == "nginx":
		return KindNginx, true
	case r == "hashicorp/http-echo":
		return KindHTTPEcho, true
	case r == "curlimages/curl", r == "busybox", r == "alpine":
		return KindNone, true
	case base == "echoserver" && (strings.HasPrefix(r, "registry.k8s.io/") || strings.HasPrefix(r, "k8s.gcr.io/") ||
		strings.HasPrefix(r, "gcr.io/google_containers/") || strings.HasPrefix(r, "gcr.io/google-containers/") || r == "googlecontainer/echoserver"):
		return KindEchoserver, true
	case r == "kicbase/echo-server", r == "jmalloc/echo-server":
		return KindEchoServer, true
	case r == "us-docker.pkg.dev/google-samples/containers/gke/hello-app", r == "gcr.io/google-samples/hello-app":
		return KindHelloApp, true
	case r == "gcr.io/google-samples/hello-go-gke":
		return KindHelloGo, true
	case r == "traefik/whoami", r == "containous/whoami":
		return KindWhoami, true
	case r == plane.BenchImage:
		return KindLoadgen, true
	}
	return "", false
}

// FromContainer reads a container's image, command and args the way the
// real image would and returns what its app listens on, plus notices a
// student should see (unknown image, a declared containerPort nothing
// listens on). It never fails: a bad flag value is a notice and the
// image's default is used, much as the program would refuse to start and
// the lab would rather keep going.
func FromContainer(c corev1.Container) (Spec, []string) {
	s := Spec{Container: c.Name, Image: c.Image}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			if s.Env == nil {
				s.Env = map[string]string{}
			}
			s.Env[e.Name] = e.Value
		}
	}
	var notices []string
	argv := append(slices.Clone(c.Command), c.Args...)
	kind, known := imageKind(Repository(c.Image))
	if !known {
		s.Kind = KindNetexec
		for _, p := range c.Ports {
			switch proto(p.Protocol) {
			case "TCP":
				s.HTTP = appendPort(s.HTTP, p.ContainerPort)
			case "UDP":
				s.UDP = appendPort(s.UDP, p.ContainerPort)
			case "SCTP":
				s.SCTP = appendPort(s.SCTP, p.ContainerPort)
			}
		}
		if len(c.Ports) == 0 {
			s.Kind = KindNone
			s.Warnings = append(s.Warnings, fmt.Sprintf("container %q: image %q is not in nplab's catalog and declares no containerPort; it runs no server, so connections to it are refused (see the README's catalog)", c.Name, c.Image))
		} else {
			notices = append(notices, fmt.Sprintf("container %q: image %q is not in nplab's catalog; nplab runs agnhost netexec on its declared containerPorts (%s)", c.Name, c.Image, s.Describe()))
		}
		return s, notices
	}
	s.Kind = kind
	flag := func(names ...string) (string, bool) { return lookupFlag(argv, names...) }
	intFlag := func(def int, names ...string) int {
		v, ok := flag(names...)
		if !ok {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			// agnhost is a cobra program: a flag value that does
			// not parse ends it with exit code 1 before it serves.
			if s.Exit == nil {
				s.Exit = &Exit{Code: 1, Message: fmt.Sprintf("Error: invalid argument %q for \"--%s\" flag: strconv.ParseInt: parsing %q: invalid syntax", v, names[0], v)}
			}
			notices = append(notices, fmt.Sprintf("container %q: invalid value %q for --%s: the program exits with code 1 and the kubelet restarts it (CrashLoopBackOff)", c.Name, v, names[0]))
			return def
		}
		return n
	}
	switch kind {
	case KindNetexec:
		sub := agnhostSubcommand(argv)
		switch sub {
		case "", "netexec":
			s.HTTP = appendPort(nil, int32(intFlag(8080, "http-port")))
			s.UDP = appendPort(nil, int32(intFlag(8081, "udp-port")))
			s.SCTP = appendPort(nil, int32(intFlag(-1, "sctp-port")))
			if d := intFlag(0, "delay-shutdown"); d > 0 {
				s.DelayShutdown = time.Duration(d) * time.Second
			}
			if sub == "" {
				notices = append(notices, fmt.Sprintf("container %q: agnhost without a subcommand prints its help and exits; nplab runs netexec instead", c.Name))
			}
		case "serve-hostname":
			s.Kind = KindServeHostname
			s.HTTP = appendPort(nil, int32(intFlag(9376, "port")))
		case "pause":
			s.Kind = KindNone
		default:
			s.HTTP = []uint16{8080}
			s.UDP = []uint16{8081}
			notices = append(notices, fmt.Sprintf("container %q: nplab does not emulate agnhost %s; it runs netexec with its defaults (HTTP 8080, UDP 8081)", c.Name, sub))
		}
	case KindNginx:
		s.HTTP = []uint16{80}
	case KindLoadgen:
		for _, p := range c.Ports {
			s.Bench = appendPort(s.Bench, p.ContainerPort)
		}
		if len(s.Bench) == 0 {
			s.Bench = []uint16{5201}
		}
	case KindEchoserver, KindEchoServer, KindHelloApp, KindHelloGo, KindWhoami:
		notices = append(notices, tutorialSpec(&s, argv, imageTag(c.Image))...)
	case KindHTTPEcho:
		listen, ok := flag("listen")
		if !ok {
			listen = ":5678"
		}
		port := 5678
		if i := strings.LastIndex(listen, ":"); i >= 0 {
			if n, err := strconv.Atoi(listen[i+1:]); err == nil {
				port = n
			} else {
				notices = append(notices, fmt.Sprintf("container %q: invalid -listen %q; using :5678", c.Name, listen))
			}
		}
		s.HTTP = appendPort(nil, int32(port))
		s.Text, _ = flag("text")
		if s.Text == "" {
			s.Exit = &Exit{Code: 127, Message: "Missing -text option!"}
			notices = append(notices, fmt.Sprintf("container %q: http-echo needs -text; without it the program prints \"Missing -text option!\" and exits with code 127, and the kubelet restarts it (CrashLoopBackOff)", c.Name))
		}
	}
	for _, p := range c.Ports {
		if !s.Listens(proto(p.Protocol), uint16(p.ContainerPort)) {
			notices = append(notices, portNotice(s, proto(p.Protocol), p.ContainerPort))
		}
	}
	return s, notices
}

// portNotice explains that containerPort is informational.
func portNotice(s Spec, protocol string, port int32) string {
	var ports []uint16
	switch protocol {
	case "UDP":
		ports = s.UDP
	case "SCTP":
		ports = s.SCTP
	default:
		ports = s.HTTP
	}
	if len(ports) == 0 {
		return fmt.Sprintf("container %q: %s does not listen on %s; containerPort %d/%s is informational, connections to it are refused", s.Container, s.Kind, protocol, port, protocol)
	}
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	return fmt.Sprintf("container %q: %s listens on %s, not %d (%s); containerPort is informational, connections to %d are refused", s.Container, s.Kind, strings.Join(ps, ","), port, protocol, port)
}

func proto(p corev1.Protocol) string {
	if p == "" {
		return "TCP"
	}
	return strings.ToUpper(string(p))
}

func appendPort(ps []uint16, p int32) []uint16 {
	if p <= 0 || p > 65535 || slices.Contains(ps, uint16(p)) {
		return ps
	}
	return append(ps, uint16(p))
}

// agnhostSubcommand is the first argument that is not a flag and not the
// agnhost binary itself.
func agnhostSubcommand(argv []string) string {
	for _, a := range argv {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if a == "/agnhost" || a == "agnhost" {
			continue
		}
		return a
	}
	return ""
}

// lookupFlag finds -name=v, --name=v, -name v or --name v in argv (the
// last one wins, as with Go's flag and cobra).
func lookupFlag(argv []string, names ...string) (string, bool) {
	var val string
	found := false
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimLeft(a, "-")
		for _, n := range names {
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				val, found = v, true
			} else if a == n && i+1 < len(argv) {
				val, found = argv[i+1], true
				i++
			}
		}
	}
	return val, found
}
