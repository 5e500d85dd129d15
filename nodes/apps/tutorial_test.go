package apps

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestTutorialImagesFromContainer(t *testing.T) {
	tests := []struct {
		name    string
		c       corev1.Container
		kind    Kind
		http    []uint16
		version string
		who     string
	}{
		{"minikube's echoserver", corev1.Container{Image: "registry.k8s.io/echoserver:1.10"}, KindEchoserver, []uint16{8080}, "nginx: 1.13.3 - lua: 10008", ""},
		{"old registry", corev1.Container{Image: "k8s.gcr.io/echoserver:1.4"}, KindEchoserver, []uint16{8080}, "nginx: 1.10.0 - lua: 10001", ""},
		{"kicbase", corev1.Container{Image: "kicbase/echo-server:1.0"}, KindEchoServer, []uint16{8080}, "1.0", ""},
		{"echo-server on $PORT", corev1.Container{Image: "docker.io/jmalloc/echo-server", Env: []corev1.EnvVar{{Name: "PORT", Value: "9000"}}}, KindEchoServer, []uint16{9000}, "", ""},
		{"hello-app 2.0", corev1.Container{Image: "us-docker.pkg.dev/google-samples/containers/gke/hello-app:2.0"}, KindHelloApp, []uint16{8080}, "2.0.0", ""},
		{"hello-app 1.0 on $PORT", corev1.Container{Image: "gcr.io/google-samples/hello-app:1.0", Env: []corev1.EnvVar{{Name: "PORT", Value: "8081"}}}, KindHelloApp, []uint16{8081}, "1.0.0", ""},
		{"hello-go-gke", corev1.Container{Image: "gcr.io/google-samples/hello-go-gke:1.0"}, KindHelloGo, []uint16{80}, "", ""},
		{"whoami", corev1.Container{Image: "traefik/whoami:v1.10"}, KindWhoami, []uint16{80}, "", ""},
		{"whoami --port --name", corev1.Container{Image: "traefik/whoami", Args: []string{"--port", "8080", "--name=iamfoo"}}, KindWhoami, []uint16{8080}, "", "iamfoo"},
		{"whoami env", corev1.Container{Image: "traefik/whoami", Env: []corev1.EnvVar{{Name: "WHOAMI_PORT_NUMBER", Value: "5678"}, {Name: "WHOAMI_NAME", Value: "w"}}}, KindWhoami, []uint16{5678}, "", "w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Name = "c"
			s, notices := FromContainer(tt.c)
			if s.Kind != tt.kind || !slices.Equal(s.HTTP, tt.http) || s.Version != tt.version || s.Name != tt.who {
				t.Errorf("FromContainer = %+v, want kind %s http %v version %q name %q", s, tt.kind, tt.http, tt.version, tt.who)
			}
			if len(notices) != 0 || len(s.Warnings) != 0 {
				t.Errorf("notices %q warnings %q", notices, s.Warnings)
			}
		})
	}
}

// startImage runs one container of image on loopback, named pod.
func startImage(t *testing.T, pod string, c corev1.Container) net.Addr {
	t.Helper()
	c.Name = "c"
	s, _ := FromContainer(c)
	a, err := Start(context.Background(), loopback{}, pod, []Spec{s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a.Listening()[0].Addr
}

// rawGet sends a request with exactly the headers given (no
// Accept-Encoding or User-Agent of Go's own), as curl would.
func rawGet(t *testing.T, addr net.Addr, path string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr.String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "curl/8.5.0")
	req.Header.Set("Accept", "*/*")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, b.String()
}

func TestTutorialImagesAnswer(t *testing.T) {
	t.Run("hello-app", func(t *testing.T) {
		addr := startImage(t, "hello-7d8f", corev1.Container{Image: "us-docker.pkg.dev/google-samples/containers/gke/hello-app:2.0"})
		if _, _, body := rawGet(t, addr, "/any/path", nil); body != "Hello, world!\nVersion: 2.0.0\nHostname: hello-7d8f\n" {
			t.Errorf("body %q", body)
		}
	})
	t.Run("hello-go-gke", func(t *testing.T) {
		addr := startImage(t, "hello", corev1.Container{Image: "gcr.io/google-samples/hello-go-gke:1.0"})
		if _, h, body := rawGet(t, addr, "/", nil); body != "{\"message\":\"Hello\"}\n" || h.Get("Content-Type") != "application/json" {
			t.Errorf("body %q, type %q", body, h.Get("Content-Type"))
		}
	})
	t.Run("kicbase/echo-server", func(t *testing.T) {
		addr := startImage(t, "hello-minikube-1", corev1.Container{Image: "kicbase/echo-server:1.0"})
		want := fmt.Sprintf("Request served by hello-minikube-1\n\nHTTP/1.1 GET /x?y=1\n\nHost: %s\nAccept: */*\nUser-Agent: curl/8.5.0\n", addr)
		if _, h, body := rawGet(t, addr, "/x?y=1", nil); body != want || h.Get("Content-Type") != "text/plain" {
			t.Errorf("body %q, want %q (type %q)", body, want, h.Get("Content-Type"))
		}
		if _, _, body := rawGet(t, addr, "/", map[string]string{"X-Send-Server-Hostname": "false"}); strings.Contains(body, "Request served by") {
			t.Errorf("X-Send-Server-Hostname: false still names the server: %q", body)
		}
	})
	t.Run("jmalloc/echo-server", func(t *testing.T) {
		addr := startImage(t, "e", corev1.Container{Image: "jmalloc/echo-server"})
		if _, _, body := rawGet(t, addr, "/", nil); !strings.HasPrefix(body, "Request served by e\n\nGET / HTTP/1.1\n\nHost: ") {
			t.Errorf("body %q", body)
		}
	})
	t.Run("echoserver", func(t *testing.T) {
		addr := startImage(t, "hello-minikube-2", corev1.Container{Image: "registry.k8s.io/echoserver:1.10"})
		_, port, _ := net.SplitHostPort(addr.String())
		want := "\n\nHostname: hello-minikube-2\n\n" +
			"Pod Information:\n\t-no pod information available-\n\n" +
			"Server values:\n\tserver_version=nginx: 1.13.3 - lua: 10008\n\n" +
			"Request Information:\n\tclient_address=127.0.0.1\n\tmethod=GET\n\treal path=/a?b=c\n\tquery=b=c\n\trequest_version=1.1\n\trequest_scheme=http\n\trequest_uri=http://127.0.0.1:8080/a?b=c\n\n" +
			"Request Headers:\n\taccept=*/*\n\thost=127.0.0.1:" + port + "\n\tuser-agent=curl/8.5.0\n\n" +
			"Request Body:\n\t-no body in request-\n"
		if _, _, body := rawGet(t, addr, "/a?b=c", nil); body != want {
			t.Errorf("body\n%q\nwant\n%q", body, want)
		}
	})
	t.Run("whoami", func(t *testing.T) {
		addr := startImage(t, "whoami-1", corev1.Container{Image: "traefik/whoami", Args: []string{"--name=iamfoo"}})
		_, _, body := rawGet(t, addr, "/", nil)
		wantHead := "Name: iamfoo\nHostname: whoami-1\nIP: 127.0.0.1\nRemoteAddr: 127.0.0.1:"
		wantTail := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n", addr)
		if !strings.HasPrefix(body, wantHead) || !strings.HasSuffix(body, wantTail) {
			t.Errorf("body %q", body)
		}
		if _, _, body := rawGet(t, addr, "/bench", nil); body != "1" {
			t.Errorf("/bench %q", body)
		}
		if code, _, body := rawGet(t, addr, "/api", nil); code != 200 || !strings.Contains(body, `"hostname":"whoami-1"`) || !strings.Contains(body, `"name":"iamfoo"`) {
			t.Errorf("/api %d %q", code, body)
		}
		if code, _, _ := rawGet(t, addr, "/health", nil); code != 200 {
			t.Errorf("/health %d", code)
		}
	})
}
