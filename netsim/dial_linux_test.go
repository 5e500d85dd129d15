//go:build linux

package netsim

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// osThreads reads the process's OS thread count (Threads: in
// /proc/self/status).
func osThreads(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// Pending dials wait in the netpoller, not on threads locked in the
// host's namespace: 1,000 dials to an address nobody answers (ARP goes
// unanswered) add a handful of threads, not a thousand.
func TestPendingDialsHoldNoThreads(t *testing.T) {
	n := newLab(t)
	a, _, _ := pair(t, n)
	const dials = 1000
	before := osThreads(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, dials)
	for i := range dials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			network := "tcp"
			if i%2 == 1 {
				network = "tcp4"
			}
			c, err := a.Dial(ctx, network, "10.0.0.99:9")
			if c != nil {
				c.Close()
			}
			errs <- err
		}()
	}
	time.Sleep(500 * time.Millisecond) // every dial has sent its SYN (or queued it behind ARP)
	during := osThreads(t)
	cancel()
	wg.Wait()
	close(errs)
	t.Logf("OS threads: %d before, %d with %d dials pending", before, during, dials)
	if during-before > 100 {
		t.Errorf("%d pending dials raised the thread count from %d to %d", dials, before, during)
	}
	for err := range errs {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("a cancelled dial: %v, want context.Canceled (or EHOSTUNREACH)", err)
			break
		}
	}
}

// The dial's errors keep the net package's shape: a *net.OpError naming
// the remote address, wrapping the kernel's errno or a timeout.
func TestDialErrorShape(t *testing.T) {
	n := newLab(t)
	a, _, _ := pair(t, n)

	_, err := a.Dial(context.Background(), "tcp", "10.0.0.2:9") // b listens on nothing
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" || op.Net != "tcp" || op.Addr == nil || op.Addr.String() != "10.0.0.2:9" {
		t.Errorf("refused dial: %v (%#v), want a *net.OpError dial tcp 10.0.0.2:9", err, op)
	}
	var se *os.SyscallError
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &se) || se.Syscall != "connect" {
		t.Errorf("refused dial: %v, want connect: ECONNREFUSED", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = a.Dial(ctx, "tcp", "10.0.0.99:9")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &op) {
		t.Errorf("dial to a silent address: %v, want a *net.OpError that is a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the dial took %v with a 300ms deadline", d)
	}

	if _, err := a.Dial(context.Background(), "tcp4", "[fd00::1]:9"); !errors.As(err, &op) {
		t.Errorf("tcp4 dial to an IPv6 address: %v, want a *net.OpError", err)
	}

	// UDP: connect succeeds at once; the conn is a *net.UDPConn from a.
	c, err := a.Dial(context.Background(), "udp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*net.UDPConn); !ok || c.LocalAddr().(*net.UDPAddr).IP.String() != "10.0.0.1" {
		t.Errorf("UDP dial gave %T from %v, want a *net.UDPConn from 10.0.0.1", c, c.LocalAddr())
	}
}
