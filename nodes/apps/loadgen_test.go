package apps

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
)

// TestLoadgenImage: nplab's bench image listens on its containerPort for
// TCP and UDP (5201 without one) and answers a bench connection with the
// pod's hostname.
func TestLoadgenImage(t *testing.T) {
	s, notices := FromContainer(corev1.Container{Name: "bench", Image: plane.BenchImage})
	if s.Kind != KindLoadgen || len(s.Bench) != 1 || s.Bench[0] != 5201 || len(notices) != 0 {
		t.Fatalf("FromContainer(%s) = %+v, %q", plane.BenchImage, s, notices)
	}
	s, notices = FromContainer(corev1.Container{Name: "bench", Image: plane.BenchImage + ":latest",
		Ports: []corev1.ContainerPort{{ContainerPort: 6000}, {ContainerPort: 6000, Protocol: corev1.ProtocolUDP}}})
	if !s.Listens("TCP", 6000) || !s.Listens("UDP", 6000) || s.Listens("TCP", 5201) || len(notices) != 0 {
		t.Fatalf("with containerPort 6000: %+v (%s), %q", s, s.Describe(), notices)
	}
	a, err := Start(context.Background(), loopback{}, "bench-pod", []Spec{s})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	var tcp net.Addr
	for _, l := range a.Listening() {
		if l.Protocol == "TCP" {
			tcp = l.Addr
		}
	}
	c, err := net.DialTimeout("tcp", tcp.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte{'C'})
	b := make([]byte, 1+len("bench-pod"))
	if _, err := io.ReadFull(c, b); err != nil || string(b[1:]) != "bench-pod" {
		t.Fatalf("answer %q, %v; want the hostname bench-pod", b, err)
	}
}
