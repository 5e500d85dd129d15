// Package pass is the VM harness self-test's passing package. It proves the
// VM kernel has what nplab needs: an SCTP association over loopback, and a
// netem qdisc. It only runs inside the VM test (go test ./... ignores
// testdata directories); on a kernel without SCTP or netem it skips, and
// fails under NPLAB_REQUIRE=sctp,netem as the VM sets it.
package pass

import (
	"bytes"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ishidawataru/sctp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nplab/nplab/internal/testenv"
)

func TestSCTPAssociationInVM(t *testing.T) {
	testenv.RequireSCTP(t)
	loopback := []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}
	ln, err := sctp.ListenSCTP("sctp4", &sctp.SCTPAddr{IPAddrs: loopback})
	if err != nil {
		t.Fatalf("listen sctp: %v", err)
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*sctp.SCTPAddr)
	if !ok || addr.Port == 0 {
		t.Fatalf("listener address %v has no port", ln.Addr())
	}

	got := make(chan []byte, 1)
	go func() {
		c, err := ln.AcceptSCTP()
		if err != nil {
			got <- []byte("accept: " + err.Error())
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			got <- []byte("read: " + err.Error())
			return
		}
		got <- buf[:n]
	}()

	c, err := sctp.DialSCTP("sctp4", nil, &sctp.SCTPAddr{IPAddrs: loopback, Port: addr.Port})
	if err != nil {
		t.Fatalf("dial sctp %v: %v", addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello over sctp")); err != nil {
		t.Fatalf("write: %v", err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, []byte("hello over sctp")) {
			t.Fatalf("server got %q, want %q", b, "hello over sctp")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no SCTP message within 10s")
	}
	t.Logf("SCTP association on 127.0.0.1:%d carried a message", addr.Port)
}

func TestNetemQdiscInVM(t *testing.T) {
	testenv.RequireRoot(t)
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatalf("lo: %v", err)
	}
	// Equivalent to: tc qdisc add dev lo root netem delay 1ms
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(1, 0)},
		netlink.NetemQdiscAttrs{Latency: 1000})
	testenv.Need(t, "netem", netlink.QdiscAdd(q))
	defer netlink.QdiscDel(q)
	qs, err := netlink.QdiscList(lo)
	if err != nil {
		t.Fatalf("qdisc list: %v", err)
	}
	for _, q := range qs {
		if q.Type() == "netem" {
			t.Logf("netem qdisc on lo: %+v", q.Attrs())
			return
		}
	}
	t.Fatalf("no netem qdisc on lo after adding one: %v", qs)
}

// TestIproute2InVM checks that iproute2's own ip (not busybox's, which has
// no netns) is on PATH in the VM, as tests and students expect.
func TestIproute2InVM(t *testing.T) {
	testenv.RequireRoot(t)
	const ns = "nplab-vmtest-probe"
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ns) {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	out, err = exec.Command("tc", "qdisc", "show", "dev", "lo").CombinedOutput()
	if err != nil {
		t.Fatalf("tc qdisc show: %v\n%s", err, out)
	}
}

// TestSCTPBetweenNamespacesInVM carries an SCTP message between two network
// namespaces joined by a veth pair, the path nplab's proxy uses (loopback
// alone would not exercise checksums or veth).
func TestSCTPBetweenNamespacesInVM(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireSCTP(t)
	runtime.LockOSThread() // the namespace switches below affect this thread only
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	defer netns.Set(orig)

	nsA, err := netns.New() // creates a namespace and switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	defer nsA.Close()
	nsB, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()

	// In B: create the pair, move one end to A, address and raise B's end.
	// Equivalent to: ip link add vb type veth peer name va netns A; ip addr add 10.99.0.2/24 dev vb; ip link set vb up
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vb"}, PeerName: "va", PeerNamespace: netlink.NsFd(nsA)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	up := func(name, cidr string) {
		t.Helper()
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := netlink.ParseAddr(cidr)
		if err := netlink.AddrAdd(l, addr); err != nil {
			t.Fatalf("address %s on %s: %v", cidr, name, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	up("vb", "10.99.0.2/24")
	ln, err := sctp.ListenSCTP("sctp4", &sctp.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.IPv4(10, 99, 0, 2)}}})
	if err != nil {
		t.Fatalf("listen sctp in B: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*sctp.SCTPAddr).Port
	got := make(chan string, 1)
	go func() {
		c, err := ln.AcceptSCTP()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- string(buf[:n])
	}()

	// In A: raise the other end and dial B (the socket belongs to A).
	if err := netns.Set(nsA); err != nil {
		t.Fatal(err)
	}
	up("va", "10.99.0.1/24")
	dialed := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // a fresh thread starts in this process's first namespace: switch to A
		if err := netns.Set(nsA); err != nil {
			dialed <- err
			return
		}
		c, err := sctp.DialSCTP("sctp4", nil, &sctp.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.IPv4(10, 99, 0, 2)}}, Port: port})
		if err != nil {
			dialed <- err
			return
		}
		_, err = c.Write([]byte("hello from A"))
		dialed <- err
		// The thread stays locked and is discarded when this goroutine exits.
	}()
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("dial/write sctp from A to 10.99.0.2:%d: %v", port, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SCTP association from A to B not up within 10s")
	}
	select {
	case s := <-got:
		if s != "hello from A" {
			t.Fatalf("B got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no SCTP message in B within 10s")
	}
	t.Logf("SCTP message carried from namespace A to B over veth (port %d)", port)
}
