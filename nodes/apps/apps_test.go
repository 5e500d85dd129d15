package apps

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// loopback is a Host that opens every socket on 127.0.0.1 with a port the
// kernel picks, so unit tests never bind fixed ports.
type loopback struct{}

func (loopback) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, network, "127.0.0.1:0")
}

func (loopback) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var lc net.ListenConfig
	return lc.ListenPacket(ctx, network, "127.0.0.1:0")
}

func (loopback) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func TestFromContainer(t *testing.T) {
	tests := []struct {
		name       string
		c          corev1.Container
		kind       Kind
		http, udp  []uint16
		text       string
		delay      time.Duration
		wantNotice string // substring of one notice; "" = no notice
	}{
		{
			name: "agnhost netexec defaults",
			c:    corev1.Container{Name: "c", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"netexec"}},
			kind: KindNetexec, http: []uint16{8080}, udp: []uint16{8081},
		},
		{
			name: "old registry, flags with spaces and equals, udp off",
			c: corev1.Container{Name: "c", Image: "k8s.gcr.io/e2e-test-images/agnhost:2.32",
				Command: []string{"/agnhost"}, Args: []string{"netexec", "--http-port", "9000", "--udp-port=-1", "--delay-shutdown=3"}},
			kind: KindNetexec, http: []uint16{9000}, delay: 3 * time.Second,
		},
		{
			name: "nginx behind 8080 gets a notice",
			c: corev1.Container{Name: "web", Image: "nginx:1.27",
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			kind: KindNginx, http: []uint16{80}, wantNotice: "nginx listens on 80, not 8080",
		},
		{
			name: "http-echo",
			c:    corev1.Container{Name: "e", Image: "hashicorp/http-echo", Args: []string{"-listen=:5680", "-text=hello world"}},
			kind: KindHTTPEcho, http: []uint16{5680}, text: "hello world",
		},
		{
			name: "curl runs nothing",
			c:    corev1.Container{Name: "c", Image: "curlimages/curl:8.10.1"},
			kind: KindNone,
		},
		{
			name: "unknown image without ports runs nothing (a Warning, below)",
			c:    corev1.Container{Name: "x", Image: "example.com/team/app:v1"},
			kind: KindNone,
		},
		{
			name: "unknown image runs netexec on its ports",
			c: corev1.Container{Name: "x", Image: "example.com/team/app:v1",
				Ports: []corev1.ContainerPort{{ContainerPort: 7000}, {ContainerPort: 7001, Protocol: corev1.ProtocolUDP}}},
			kind: KindNetexec, http: []uint16{7000}, udp: []uint16{7001}, wantNotice: "not in nplab's catalog",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, notices := FromContainer(tt.c)
			if s.Kind != tt.kind || !slices.Equal(s.HTTP, tt.http) || !slices.Equal(s.UDP, tt.udp) || s.Text != tt.text || s.DelayShutdown != tt.delay {
				t.Errorf("FromContainer = %+v, want kind %s http %v udp %v text %q delay %v", s, tt.kind, tt.http, tt.udp, tt.text, tt.delay)
			}
			got := strings.Join(notices, "\n")
			if tt.wantNotice == "" && got != "" {
				t.Errorf("unexpected notices: %s", got)
			}
			if tt.wantNotice != "" && !strings.Contains(got, tt.wantNotice) {
				t.Errorf("notices %q do not contain %q", got, tt.wantNotice)
			}
		})
	}
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"registry.k8s.io/e2e-test-images/agnhost:2.53": "registry.k8s.io/e2e-test-images/agnhost",
		"localhost:5000/nginx":                         "localhost:5000/nginx",
		"nginx@sha256:abc":                             "nginx",
		"nginx":                                        "nginx",
	} {
		if got := Repository(in); got != want {
			t.Errorf("Repository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hostname", "web-1"},
		{" HostName\n", "web-1"},
		{"echo Hello There", "hello there"}, // netexec lower-cases the whole command
		{"clientip", "10.0.0.1:5000"},
	}
	for _, tt := range tests {
		got, ok := Command("web-1", tt.in, "10.0.0.1:5000")
		if !ok || got != tt.want {
			t.Errorf("Command(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
	if _, ok := Command("web-1", "shell ls", ""); ok {
		t.Errorf("an unknown command must get no answer")
	}
}

func get(t *testing.T, addr net.Addr, path string) (int, http.Header, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestNetexecServes(t *testing.T) {
	spec, _ := FromContainer(corev1.Container{Name: "c", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"netexec", "--delay-shutdown=2"}})
	a, err := Start(context.Background(), loopback{}, "web-abc", []Spec{spec})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	httpAddr, udpAddr := tcpUDP(a)
	if _, _, body := get(t, httpAddr, "/hostname"); body != "web-abc" {
		t.Errorf("/hostname = %q", body)
	}
	if _, _, body := get(t, httpAddr, "/clientip"); !strings.HasPrefix(body, "127.0.0.1:") {
		t.Errorf("/clientip = %q, want 127.0.0.1:port", body)
	}
	if _, _, body := get(t, httpAddr, "/echo?msg=hi%20there"); body != "hi there" {
		t.Errorf("/echo = %q", body)
	}
	if code, _, _ := get(t, httpAddr, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d before SIGTERM", code)
	}
	c, err := net.Dial("udp", udpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hostname")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "web-abc" {
		t.Errorf("UDP hostname = %q, %v", buf[:n], err)
	}
	if d := a.Terminate(); d != 2*time.Second {
		t.Errorf("Terminate = %v, want the 2s delay", d)
	}
	if code, _, _ := get(t, httpAddr, "/readyz"); code != 503 {
		t.Errorf("/readyz = %d after SIGTERM, want 503", code)
	}
	if _, _, body := get(t, httpAddr, "/hostname"); body != "web-abc" {
		t.Errorf("still serving during delay-shutdown: /hostname = %q", body)
	}
	a.Stop()
	if _, err := net.DialTimeout("tcp", httpAddr.String(), time.Second); err == nil {
		t.Errorf("after Stop, %s still accepts", httpAddr)
	}
}

func TestNginxAndHTTPEcho(t *testing.T) {
	ng, _ := FromContainer(corev1.Container{Name: "n", Image: "nginx"})
	he, _ := FromContainer(corev1.Container{Name: "e", Image: "hashicorp/http-echo:1.0", Args: []string{"-text=apple"}})
	a, err := Start(context.Background(), loopback{}, "mix", []Spec{ng, he})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	ls := a.Listening()
	_, h, body := get(t, ls[0].Addr, "/")
	if h.Get("X-Pod-Name") != "mix" || body != "mix" {
		t.Errorf("nginx: header %q body %q, want the pod name in both", h.Get("X-Pod-Name"), body)
	}
	if _, _, body := get(t, ls[1].Addr, "/anything"); body != "apple\n" {
		t.Errorf("http-echo body = %q", body)
	}
}

func TestUnknownImageWithoutPortWarns(t *testing.T) {
	s, notices := FromContainer(corev1.Container{Name: "x", Image: "example.com/team/app:v1"})
	if len(notices) != 0 {
		t.Errorf("notices %q; the remark is a Warning", notices)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "not in nplab's catalog and declares no containerPort") {
		t.Errorf("Warnings = %q", s.Warnings)
	}
	// With a port it runs netexec there: a Notice, no Warning.
	s, notices = FromContainer(corev1.Container{Name: "x", Image: "example.com/team/app:v1", Ports: []corev1.ContainerPort{{ContainerPort: 80}}})
	if len(s.Warnings) != 0 || len(notices) != 1 {
		t.Errorf("with a port: warnings %q notices %q", s.Warnings, notices)
	}
}

// TestLogs: what kubectl logs shows of an app: netexec's start-up lines
// and a line per request in its own words (Go's log format), nginx's
// access log.
func TestLogs(t *testing.T) {
	stamp := `^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d `
	spec, _ := FromContainer(corev1.Container{Name: "c", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"netexec"}})
	a, err := Start(context.Background(), loopback{}, "web-abc", []Spec{spec})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	httpAddr, udpAddr := tcpUDP(a)
	get(t, httpAddr, "/hostname")
	get(t, httpAddr, "/echo?msg=hi&code=201")
	get(t, httpAddr, "/readyz") // the kubelet's probe: not logged
	get(t, httpAddr, "/nope")
	c, err := net.Dial("udp", udpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range []string{"hostname", "echo Hello", "bogus"} {
		if _, err := c.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
		if cmd != "bogus" {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Read(make([]byte, 64))
		}
	}
	client := c.LocalAddr().String()
	want := []string{
		"Started HTTP server on port 8080",
		"Started UDP server on port  8081",
		"GET /hostname",
		"GET /echo?msg=hi&code=201",
		"GET /",
		"Sending udp hostName response",
		"Echoing hello to UDP client " + client,
		"Unknown UDP command received from " + client + ": bogus",
	}
	var lines []LogLine
	for i := 0; i < 100; i++ { // the last UDP line has no reply to wait for
		if lines = a.Log().Lines(); len(lines) >= len(want) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i, w := range want {
		if !regexp.MustCompile(stamp+regexp.QuoteMeta(w)+"$").MatchString(lines[i].Text) || lines[i].Seq != uint64(i+1) {
			t.Errorf("line %d = %d %q, want %q", i, lines[i].Seq, lines[i].Text, w)
		}
	}

	ng, _ := FromContainer(corev1.Container{Name: "n", Image: "nginx"})
	n, err := Start(context.Background(), loopback{}, "ng", []Spec{ng})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	get(t, n.Listening()[0].Addr, "/index.html")
	if l := n.Log().Lines(); len(l) != 1 || !regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [-+]\d{4}\] "GET /index\.html HTTP/1\.1" 200 2 "-" "Go-http-client/1\.1" "-"$`).MatchString(l[0].Text) {
		t.Errorf("nginx log = %+v", l)
	}
}

func TestLogKeepsTheLastLines(t *testing.T) {
	l := NewLog()
	for i := range MaxLogLines + 10 {
		l.Print(strconv.Itoa(i))
	}
	lines := l.Lines()
	if len(lines) != MaxLogLines || lines[0].Text != "10" || lines[0].Seq != 11 || lines[len(lines)-1].Seq != MaxLogLines+10 {
		t.Errorf("kept %d lines, first %+v, last %+v", len(lines), lines[0], lines[len(lines)-1])
	}
}

// tcpUDP are the addresses an app's TCP and UDP servers listen on.
func tcpUDP(a *App) (tcp, udp net.Addr) {
	for _, l := range a.Listening() {
		switch l.Protocol {
		case "TCP":
			tcp = l.Addr
		case "UDP":
			udp = l.Addr
		}
	}
	return tcp, udp
}
