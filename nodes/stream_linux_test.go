//go:build linux

package nodes

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"strings"
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
	backend := serveLoopback(t, func(c net.Conn) {
		// The command is one line: a bulk upload follows it at
		// once, and may arrive in the same read.
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return
		}
		cmd := strings.TrimSuffix(line, "\n")
		switch cmd {
		case "reset":
			// The pod resets an established connection.
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		case "sum":
			// The pod hashes everything after the line (a bulk upload).
			h := sha256.New()
			_, _ = io.Copy(h, r)
			_, _ = c.Write([]byte(hex.EncodeToString(h.Sum(nil))))
			c.Close()
		case "give":
			// The pod sends 4 MiB of a known pattern (a download).
			_, _ = c.Write(pattern(4 << 20))
			c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		case "rst1M":
			// The pod reads 1 MiB of an upload, then resets.
			_, _ = io.CopyN(io.Discard, r, 1<<20)
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
			_, _ = c.Write([]byte("pong:" + cmd))
			c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	})
	h, log := newFakeHost(), &recorder{}
	p := newTestProxy(t, h, log)
	p.sync([]plane.ServicePort{{Service: "default/tcp", Protocol: "TCP", NodePort: 30080, ExternalTrafficPolicy: "Cluster",
		Endpoints: []plane.Endpoint{{Pod: "pod-a", Node: "node-1", Addr: backend, Ready: true, Serving: true}}}})
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
		c := dial("ping\n")
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "pong:ping" {
			t.Fatalf("answer %q, %v", got, err)
		}
		f := flowOf(c)
		if f.Result != plane.FlowOK || f.BytesIn != 5 || f.BytesOut != 9 {
			t.Errorf("flow %s, %d B in, %d B out; want ok, 5 and 9", f.Result, f.BytesIn, f.BytesOut)
		}
	})
	t.Run("the pod resets", func(t *testing.T) {
		c := dial("reset\n")
		if _, err := io.ReadAll(c); classify(err) != plane.FlowReset {
			t.Errorf("the client read %v, want a reset passed on", err)
		}
		if f := flowOf(c); f.Result != plane.FlowReset || f.Reason != plane.ReasonPodReset {
			t.Errorf("flow %s (%s: %s), want reset (pod reset)", f.Result, f.Reason, f.Detail)
		}
	})
	// A bulk transfer is spliced once a read fills the copy buffer
	// (copyThenSplice): it arrives intact, and its flow counts it all.
	t.Run("a bulk upload", func(t *testing.T) {
		before := splicedBytes.Load()
		defer func() {
			if splicedBytes.Load()-before < 3<<20 {
				t.Errorf("%d bytes of the 4 MiB upload were spliced, want most of them", splicedBytes.Load()-before)
			}
		}()
		c := dial("sum\n")
		data := pattern(4 << 20)
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		got, err := io.ReadAll(c)
		sum := sha256.Sum256(data)
		if err != nil || string(got) != hex.EncodeToString(sum[:]) {
			t.Fatalf("the pod's sha256 of the upload: %q, %v; want %x", got, err, sum)
		}
		if f := flowOf(c); f.Result != plane.FlowOK || f.BytesIn != 4+4<<20 || f.BytesOut != 64 {
			t.Errorf("flow %s, %d B in, %d B out; want ok, %d and 64", f.Result, f.BytesIn, f.BytesOut, 4+4<<20)
		}
	})
	t.Run("a bulk download", func(t *testing.T) {
		before := splicedBytes.Load()
		defer func() {
			if splicedBytes.Load()-before < 3<<20 {
				t.Errorf("%d bytes of the 4 MiB download were spliced, want most of them", splicedBytes.Load()-before)
			}
		}()
		c := dial("give\n")
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, pattern(4<<20)) {
			t.Fatalf("downloaded %d bytes (%v), want the pod's 4 MiB intact", len(got), err)
		}
		if f := flowOf(c); f.Result != plane.FlowOK || f.BytesIn != 5 || f.BytesOut != 4<<20 {
			t.Errorf("flow %s, %d B in, %d B out; want ok, 5 and %d", f.Result, f.BytesIn, f.BytesOut, 4<<20)
		}
	})
	t.Run("the pod resets a bulk upload", func(t *testing.T) {
		c := dial("rst1M\n")
		_, werr := c.Write(pattern(8 << 20))
		_, rerr := io.ReadAll(c)
		if classify(werr) != plane.FlowReset && classify(rerr) != plane.FlowReset {
			t.Errorf("the client wrote (%v) and read (%v), want a reset passed on", werr, rerr)
		}
		if f := flowOf(c); f.Result != plane.FlowReset || f.Reason != plane.ReasonPodReset {
			t.Errorf("flow %s (%s: %s), want reset (pod reset)", f.Result, f.Reason, f.Detail)
		}
	})
	t.Run("the client resets", func(t *testing.T) {
		c := dial("stream\n")
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

// pattern is n bytes that are not all alike, the same on every call.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}
