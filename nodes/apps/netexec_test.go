package apps

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// startNetexec runs one agnhost netexec with args on loopback.
func startNetexec(t *testing.T, hostname string, args ...string) (*App, net.Addr, net.Addr) {
	t.Helper()
	spec, _ := FromContainer(corev1.Container{Name: "c", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: append([]string{"netexec"}, args...)})
	a, err := Start(context.Background(), loopback{}, hostname, []Spec{spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	httpAddr, udpAddr := tcpUDP(a)
	return a, httpAddr, udpAddr
}

func TestNetexecHealthzAndReadyz(t *testing.T) {
	t.Run("with UDP", func(t *testing.T) {
		a, h, _ := startNetexec(t, "p")
		if code, _, body := get(t, h, "/healthz"); code != 200 || body != "" {
			t.Errorf("/healthz = %d %q, want 200 and no body", code, body)
		}
		if code, _, body := get(t, h, "/readyz"); code != 200 || body != "ok" {
			t.Errorf("/readyz = %d %q, want 200 ok", code, body)
		}
		a.Terminate()
		if code, _, body := get(t, h, "/readyz"); code != 503 || body != "shutting down" {
			t.Errorf("/readyz after SIGTERM = %d %q, want 503 shutting down", code, body)
		}
		if code, _, _ := get(t, h, "/healthz"); code != 200 {
			t.Errorf("/healthz after SIGTERM = %d, want 200 (healthy, not ready)", code)
		}
	})
	t.Run("--udp-port=-1: never ready", func(t *testing.T) {
		_, h, _ := startNetexec(t, "p", "--udp-port=-1")
		if code, _, _ := get(t, h, "/healthz"); code != 412 {
			t.Errorf("/healthz = %d, want 412: netexec's serverReady is set only by its UDP or SCTP server", code)
		}
		if code, _, body := get(t, h, "/readyz"); code != 412 || body != "" {
			t.Errorf("/readyz = %d %q, want 412", code, body)
		}
	})
}

func TestNetexecDial(t *testing.T) {
	_, client, _ := startNetexec(t, "client")
	_, h, u := startNetexec(t, "server")
	hp := func(a net.Addr) (string, string) {
		host, port, _ := net.SplitHostPort(a.String())
		return host, port
	}
	dial := func(q url.Values) (int, string) {
		code, _, body := get(t, client, "/dial?"+q.Encode())
		return code, body
	}
	hh, hport := hp(h)
	uh, uport := hp(u)
	tests := []struct {
		name string
		q    url.Values
		code int
		body string
	}{
		{"http", url.Values{"request": {"hostname"}, "host": {hh}, "port": {hport}, "tries": {"2"}}, 200, `{"responses":["server","server"]}`},
		{"udp", url.Values{"request": {"hostname"}, "protocol": {"udp"}, "host": {uh}, "port": {uport}, "tries": {"1"}}, 200, `{"responses":["server"]}`},
		{"udp echo is lower-cased", url.Values{"request": {"echo Hi"}, "protocol": {"UDP"}, "host": {uh}, "port": {uport}}, 200, `{"responses":["hi"]}`},
		{"no request", url.Values{"host": {hh}, "port": {hport}}, 400, "request parameter not specified. <nil>\n"},
		{"bad tries", url.Values{"request": {"hostname"}, "host": {hh}, "port": {hport}, "tries": {"x"}}, 400, "tries parameter is invalid. strconv.Atoi: parsing \"x\": invalid syntax\n"},
		{"bad protocol", url.Values{"request": {"hostname"}, "protocol": {"icmp"}, "host": {hh}, "port": {hport}}, 400, "unsupported protocol. icmp\n"},
		{"zero tries", url.Values{"request": {"hostname"}, "host": {hh}, "port": {hport}, "tries": {"0"}}, 200, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := dial(tt.q)
			if code != tt.code || body != tt.body {
				t.Errorf("/dial?%s = %d %q, want %d %q", tt.q.Encode(), code, body, tt.code, tt.body)
			}
		})
	}
	t.Run("refused: 200 with errors, no responses", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closedHost, closedPort := hp(l.Addr())
		l.Close()
		code, body := dial(url.Values{"request": {"hostname"}, "host": {closedHost}, "port": {closedPort}})
		if code != 200 || !strings.HasPrefix(body, `{"errors":["Get \"http://`+closedHost+":"+closedPort+`/hostname\": dial tcp `) || !strings.Contains(body, "connection refused") {
			t.Errorf("/dial to a closed port = %d %s", code, body)
		}
	})
	t.Run("a name does not resolve", func(t *testing.T) {
		code, body := dial(url.Values{"request": {"hostname"}, "host": {"backend"}, "port": {"80"}})
		if code != 400 || body != "host and/or port param are invalid. lookup backend: no such host\n" {
			t.Errorf("/dial to a name = %d %q", code, body)
		}
	})
}

func TestNetexecExit(t *testing.T) {
	t.Run("/exit?code=3 exits at once without an answer", func(t *testing.T) {
		a, h, _ := startNetexec(t, "p")
		c := http.Client{Timeout: 5 * time.Second}
		if _, err := c.Get("http://" + h.String() + "/exit?code=3"); err == nil {
			t.Errorf("/exit answered; netexec exits before it can")
		}
		waitExit(t, a, 3)
		if _, err := net.DialTimeout("tcp", h.String(), time.Second); err == nil {
			t.Errorf("the exited app still accepts")
		}
	})
	t.Run("/exit with a timeout answers, then exits", func(t *testing.T) {
		a, h, _ := startNetexec(t, "p")
		if code, _, body := get(t, h, "/exit?code=2&timeout=1s"); code != 200 || body != "" {
			t.Errorf("/exit?timeout=1s = %d %q, want 200 and no body", code, body)
		}
		waitExit(t, a, 2)
	})
	t.Run("bad values explain and do not exit", func(t *testing.T) {
		a, h, _ := startNetexec(t, "p")
		for q, want := range map[string]string{
			"code=x":    "argument 'code' must be an integer [0-127] or empty, got \"x\"\n",
			"timeout=x": "argument 'timeout' must be a valid golang duration or empty, got \"x\"\n",
			"wait=x":    "argument 'wait' must be a valid golang duration or empty, got \"x\"\n",
		} {
			if _, _, body := get(t, h, "/exit?"+q); body != want {
				t.Errorf("/exit?%s = %q, want %q", q, body, want)
			}
		}
		select {
		case <-a.Exited():
			t.Errorf("exited after bad values")
		default:
		}
	})
	t.Run("/shutdown exits 0", func(t *testing.T) {
		a, h, _ := startNetexec(t, "p")
		c := http.Client{Timeout: 5 * time.Second}
		if resp, err := c.Get("http://" + h.String() + "/shutdown"); err == nil {
			resp.Body.Close()
			t.Errorf("/shutdown answered")
		}
		waitExit(t, a, 0)
	})
	t.Run("Stop is not an exit", func(t *testing.T) {
		a, _, _ := startNetexec(t, "p")
		a.Stop()
		select {
		case <-a.Exited():
			t.Errorf("Exited closed by Stop")
		default:
		}
	})
}

func waitExit(t *testing.T, a *App, code int) {
	t.Helper()
	select {
	case <-a.Exited():
	case <-time.After(5 * time.Second):
		t.Fatalf("the app did not exit")
	}
	if a.ExitCode() != code {
		t.Errorf("exit code %d, want %d", a.ExitCode(), code)
	}
}

func TestNetexecHeader(t *testing.T) {
	_, h, _ := startNetexec(t, "p")
	req, _ := http.NewRequest("GET", "http://"+h.String()+"/header?key=X-Forwarded-For", nil)
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "1.2.3.4" {
		t.Errorf("/header?key= = %q", b)
	}
}
