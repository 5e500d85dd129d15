package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
)

// TestMain lets the test binary stand in for nplab: run with
// NPLAB_TEST_MAIN=1 it is the command itself. So the CLI tests need no Go
// toolchain (they also run in the qemu VM test) and test the same code.
// Otherwise the tests run as root, without sudo in a user namespace
// (testenv.Main).
func TestMain(m *testing.M) {
	if os.Getenv("NPLAB_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	testenv.Enter()
	// The labs the tests start keep their objects in a directory of
	// their own, not in the machine's /var/lib/nplab.
	if os.Getenv("NPLAB_STATE_DIR") == "" {
		dir, err := os.MkdirTemp("", "nplab-state-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Setenv("NPLAB_STATE_DIR", dir)
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// nplabCmd is `nplab args...`, run by the test binary itself.
func nplabCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "NPLAB_TEST_MAIN=1")
	return cmd
}

// labNamespaces lists `ip netns list` entries of lab.
func labNamespaces(t *testing.T, lab string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	var ns []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "nplab-"+lab+"-") {
			ns = append(ns, f[0])
		}
	}
	return ns
}

// hostLinks lists the links of the host's own network namespace by name
// (ip -o link: "2: eth0: <...>"). A lab must never add one.
func hostLinks(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -o link: %v\n%s", err, out)
	}
	links := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.SplitN(line, ": ", 3); len(f) == 3 {
			links[strings.SplitN(f[1], "@", 2)[0]] = true
		}
	}
	return links
}

// newHostLinks reports links in the host namespace that were not in before.
// Other tests may add links at the same time, so only ours count: nplab
// names its veths "veth" + 8 hex digits, "eth0", "node-N" or "client",
// which never appear in the host namespace on their own.
func newHostLinks(t *testing.T, before map[string]bool) []string {
	t.Helper()
	var added []string
	for name := range hostLinks(t) {
		if !before[name] {
			added = append(added, name)
		}
	}
	return added
}

// startUp runs `nplab up --name lab` and waits (bounded) until it prints
// the event log header, i.e. the lab is built, applied and ready.
func startUp(t *testing.T, lab string, extra ...string) (*exec.Cmd, *lockedLog) {
	t.Helper()
	cmd := nplabCmd(append([]string{"up", "--name", lab, "--ready-timeout", "20s"}, extra...)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killed and reaped before clean, which refuses a lab whose
		// process still runs (a failed test left its lab behind).
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		_ = nplabCmd("clean", "--name", lab).Run()
	})
	log := &lockedLog{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			log.add(sc.Text())
			if !once && strings.HasPrefix(sc.Text(), "Events (") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("nplab up did not get ready within 60s")
	}
	return cmd, log
}

// lockedLog collects a command's output lines while the test reads them.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(line + "\n")
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("nplab up did not exit within %s", within)
		return nil
	}
}

// TestUpRemovesEverythingOnSignal: whichever way a foreground lab is told
// to stop (kill, a closed terminal, Ctrl-C), nothing of it stays.
func TestUpRemovesEverythingOnSignal(t *testing.T) {
	testenv.RequireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { testUpStopsOn(t, sig) })
	}
}

func testUpStopsOn(t *testing.T, sig syscall.Signal) {
	lab := "u" + randName(5)
	linksBefore := hostLinks(t)
	cmd, log := startUp(t, lab)
	if added := newHostLinks(t, linksBefore); len(added) != 0 {
		t.Errorf("while up, the host's own namespace gained links %v", added)
	}

	ns := labNamespaces(t, lab)
	// bridge + client + 3 nodes + 3 pods of the default lab.
	if len(ns) != 8 {
		t.Fatalf("while up, ip netns list shows %d namespaces of lab %s, want 8: %v", len(ns), lab, ns)
	}
	// On a pipe, progress is plain milestone lines, no escape codes.
	for _, want := range []string{"Namespaces ready: 3 nodes, the client and the bridge (", "Pods ready: 3/3 (",
		"service/web", "80:30080/TCP,80:30080/UDP", "nplab exec --name " + lab + " client -- curl",
		"export KUBECONFIG=/run/nplab/" + lab + ".kubeconfig\n", "\n$ nplab kubectl get svc\n"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("nplab up output lacks %q:\n%s", want, log.String())
		}
	}
	// The first `nplab kubectl get svc`: kubectl's table, from the lab's API.
	if !regexp.MustCompile(`(?m)^web +NodePort +10\.\S+ +<none> +80:30080/TCP,80:30080/UDP +\S+$`).MatchString(log.String()) {
		t.Errorf("nplab up printed no kubectl get svc table:\n%s", log.String())
	}

	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 30*time.Second); err != nil {
		t.Errorf("nplab up after %s: %v\n%s", sig, err, log.String())
	}
	if ns := labNamespaces(t, lab); len(ns) != 0 {
		t.Errorf("after %s, ip netns list still shows %v", sig, ns)
	}
	if added := newHostLinks(t, linksBefore); len(added) != 0 {
		t.Errorf("after %s, the host's own namespace has new links %v", sig, added)
	}
	for _, f := range []string{".json", ".kubeconfig", ".up.json"} {
		if _, err := os.Stat("/run/nplab/" + lab + f); !os.IsNotExist(err) {
			t.Errorf("after %s the lab's %s file is still there (stat: %v)", sig, f, err)
		}
	}
	if !strings.Contains(log.String(), "Lab \""+lab+"\" removed.") {
		t.Errorf("nplab up did not say it removed the lab:\n%s", log.String())
	}
}

func TestCleanAfterKill(t *testing.T) {
	testenv.RequireRoot(t)
	lab := "k" + randName(5)
	linksBefore := hostLinks(t)
	cmd, _ := startUp(t, lab)

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = waitExit(t, cmd, 10*time.Second)
	if ns := labNamespaces(t, lab); len(ns) == 0 {
		t.Fatalf("after kill -9 the lab's namespaces are gone already; the test proves nothing")
	}
	out, err := nplabCmd("clean", "--name", lab).CombinedOutput()
	if err != nil {
		t.Fatalf("nplab clean --name %s: %v\n%s", lab, err, out)
	}
	if !strings.Contains(string(out), "removed") {
		t.Errorf("nplab clean printed %q", out)
	}
	if ns := labNamespaces(t, lab); len(ns) != 0 {
		t.Errorf("after nplab clean, ip netns list still shows %v", ns)
	}
	if added := newHostLinks(t, linksBefore); len(added) != 0 {
		t.Errorf("after nplab clean, the host's own namespace has new links %v", added)
	}
	// Cleaning again: nothing is left but the objects kept for --resume,
	// and clean says so.
	out, err = nplabCmd("clean", "--name", lab).CombinedOutput()
	if want := "error: lab \"" + lab + "\" left nothing to clean: it is stopped, with its objects kept in "; err == nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("second nplab clean: %v, printed %q; want exit 1 and %q", err, out, want)
	}
}

func TestCleanNeedsATarget(t *testing.T) {
	cmd := newRootCmd()
	cmd.SetArgs([]string{"clean"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--name LAB, or use --all") {
		t.Fatalf("nplab clean with no flags: err = %v", err)
	}
}

func randName(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}
