//go:build linux

package nodes

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// TestProxyTCPAttributesResets checks what the proxy's TCP flows say when
// one end resets an established connection: a pod's reset is the pod's
// (reset, pod-reset) and the client gets a reset too, as kernel DNAT
// would pass the RST on; a client's reset while the pod streams is not
// blamed on the pod; and an orderly exchange counts its bytes both ways.
func TestProxyTCPAttributesResets(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 16)
				n, err := c.Read(buf)
				if err != nil {
					c.Close()
					return
				}
				switch string(buf[:n]) {
				case "reset":
					// The pod resets an established connection.
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				case "stream":
					// The pod streams until the client goes.
					chunk := make([]byte, 32<<10)
					for {
						if _, err := c.Write(chunk); err != nil {
							c.Close()
							return
						}
					}
				default:
					_, _ = c.Write([]byte("pong:" + string(buf[:n])))
					c.(*net.TCPConn).CloseWrite()
					_, _ = io.Copy(io.Discard, c)
					c.Close()
				}
			}()
		}
	}()
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	p.sync([]plane.ServicePort{{Service: "default/tcp", Protocol: "TCP", NodePort: 30080, ExternalTrafficPolicy: "Cluster",
		Endpoints: []plane.Endpoint{{Pod: "pod-a", Node: "node-1", Addr: unmap(l.Addr().(*net.TCPAddr).AddrPort()), Ready: true, Serving: true}}}})
	front := h.real("0.0.0.0:30080", "tcp4")
	flowOf := func(c net.Conn) plane.Flow {
		t.Helper()
		client := unmap(c.LocalAddr().(*net.TCPAddr).AddrPort())
		return log.wait(t, 3*time.Second, "the flow of "+client.String(), func(r record) bool {
			return r.Kind == recFlow && r.Flow.Client == client
		}).Flow
	}
	dial := func(msg string) *net.TCPConn {
		t.Helper()
		c, err := net.Dial("tcp4", front)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		return c.(*net.TCPConn)
	}

	t.Run("orderly", func(t *testing.T) {
		c := dial("ping")
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "pong:ping" {
			t.Fatalf("answer %q, %v", got, err)
		}
		f := flowOf(c)
		if f.Result != plane.FlowOK || f.BytesIn != 4 || f.BytesOut != 9 {
			t.Errorf("flow %s, %d B in, %d B out; want ok, 4 and 9", f.Result, f.BytesIn, f.BytesOut)
		}
	})
	t.Run("the pod resets", func(t *testing.T) {
		c := dial("reset")
		if _, err := io.ReadAll(c); classify(err) != plane.FlowReset {
			t.Errorf("the client read %v, want a reset passed on", err)
		}
		if f := flowOf(c); f.Result != plane.FlowReset || f.Reason != plane.ReasonPodReset {
			t.Errorf("flow %s (%s: %s), want reset (pod reset)", f.Result, f.Reason, f.Detail)
		}
	})
	t.Run("the client resets", func(t *testing.T) {
		c := dial("stream")
		if _, err := io.ReadFull(c, make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		c.SetLinger(0)
		c.Close()
		if f := flowOf(c); f.Result != plane.FlowOK || f.BytesOut < 64<<10 {
			t.Errorf("flow %s (%s: %s), %d B out; want ok (the pod did nothing wrong) and at least 64 KiB", f.Result, f.Reason, f.Detail, f.BytesOut)
		}
	})
}
