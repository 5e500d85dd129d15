//go:build linux

package netsim

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
)

// TestRunOpensSocketsInTheHost: a socket f opens with the plain net
// package belongs to the host, so it reaches what only the host reaches.
func TestRunOpensSocketsInTheHost(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	addr := tcpEcho(t, b, "10.0.0.2:0")
	err := Run(a, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second) // no netsim: this thread is in a
		if err != nil {
			return err
		}
		defer c.Close()
		return roundTrip(c, 2*time.Second)
	})
	if err != nil {
		t.Fatalf("a dial inside Run(a): %v", err)
	}
}

// TestDelRoute: a route the bench added goes, and deleting it again is
// not an error.
func TestDelRoute(t *testing.T) {
	n := newLab(t)
	a, b, _ := pair(t, n)
	if err := b.AddAddr("lo", pfx("10.9.9.9/32")); err != nil {
		t.Fatal(err)
	}
	target := tcpEcho(t, b, "10.9.9.9:0")
	r := Route{Dst: pfx("10.9.9.0/24"), Via: netip.MustParseAddr("10.0.0.2")}
	if err := a.AddRoute(r); err != nil {
		t.Fatal(err)
	}
	if err := tcpRoundTrip(a, target, 2*time.Second); err != nil {
		t.Fatalf("through the route: %v", err)
	}
	for range 2 {
		if err := DelRoute(a, r); err != nil {
			t.Fatalf("DelRoute: %v", err)
		}
	}
	if err := tcpRoundTrip(a, target, 500*time.Millisecond); err == nil {
		t.Fatal("reached 10.9.9.9 after its route was deleted")
	}
}

// TestCommandAndNamespaces: a program run with Command sees the host's
// interfaces; Namespaces lists the lab's namespaces as ip netns does.
func TestCommandAndNamespaces(t *testing.T) {
	n := newLab(t)
	a, _, _ := pair(t, n)
	got, err := Namespaces(n.Lab())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{a.Namespace(), NamespaceName(n.Lab(), "b")}; !slices.Equal(got, want) {
		t.Errorf("Namespaces = %v, want %v", got, want)
	}
	if testenv.InVM() || exec.Command("ip", "netns", "list").Run() != nil {
		t.Skip("skipping Command: this ip has no netns command (busybox's, in the VM test)")
	}
	cmd, err := Command(context.Background(), a, "ip", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.0.0.1/24") {
		t.Fatalf("ip addr in host a: %v\n%s", err, out)
	}
}
