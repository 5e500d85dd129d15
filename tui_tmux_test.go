//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
)

// The terminal UI end to end: the real program (this test binary standing
// in for nplab) in tmux on a private socket, read with capture-pane, driven
// with send-keys. It needs root (the lab is real namespaces) and tmux.

// tmuxUI is one nplab in a detached tmux session of its own server.
type tmuxUI struct {
	t      *testing.T
	socket string
	lab    string
}

func startTmux(t *testing.T, lab string, args ...string) *tmuxUI {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux)")
	}
	u := &tmuxUI{t: t, socket: "nplab-test-" + randName(8), lab: lab}
	// tmux's socket in a directory of the test's own, removed with it (in
	// /tmp/tmux-0 it outlived the test; and in the tests' user namespace
	// root's /tmp/tmux-0 is not ours: tmux refuses it, "unsafe
	// permissions").
	t.Setenv("TMUX_TMPDIR", t.TempDir())
	// exec, so the pane's process is nplab itself and a signal to it
	// reaches the UI.
	cmdline := fmt.Sprintf("exec env NPLAB_TEST_MAIN=1 GOTRACEBACK=all TERM=xterm-256color %s %s --name %s",
		os.Args[0], strings.Join(args, " "), lab)
	u.tmux("new-session", "-d", "-s", "ui", "-x", "120", "-y", "40", cmdline)
	u.tmux("set-option", "-t", "ui", "remain-on-exit", "on")
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-L", u.socket, "kill-server").Run()
		_ = nplabCmd("clean", "--name", lab).Run() // only if the test failed midway
	})
	return u
}

func (u *tmuxUI) tmux(args ...string) string {
	u.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", u.socket}, args...)...).CombinedOutput()
	if err != nil {
		u.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (u *tmuxUI) screen() string { return u.tmux("capture-pane", "-p", "-t", "ui") }

func (u *tmuxUI) keys(keys ...string) { u.tmux(append([]string{"send-keys", "-t", "ui"}, keys...)...) }

// waitScreen polls the screen until ok says so.
func (u *tmuxUI) waitScreen(what string, within time.Duration, ok func(string) bool) string {
	u.t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := u.screen()
		if ok(s) {
			return s
		}
		if strings.Contains(s, "could not start") {
			u.t.Fatalf("the lab did not start:\n%s", s)
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("waited %v for %s; the screen:\n%s", within, what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (u *tmuxUI) waitText(text string, within time.Duration) string {
	u.t.Helper()
	return u.waitScreen(fmt.Sprintf("%q", text), within, func(s string) bool { return strings.Contains(s, text) })
}

// paneDead waits for the program to exit and returns its exit status.
func (u *tmuxUI) paneDead(within time.Duration) int {
	u.t.Helper()
	deadline := time.Now().Add(within)
	for {
		out := strings.Fields(u.tmux("display-message", "-p", "-t", "ui", "#{pane_dead} #{pane_dead_status}"))
		if len(out) == 2 && out[0] == "1" {
			n, _ := strconv.Atoi(out[1])
			return n
		}
		// Under load the tmux server has been seen not to reap its pane's
		// process for over a minute; an exited process is a zombie, and
		// its exit status is in /proc (stat's field 52, as waitpid has it).
		if status, ok := zombieStatus(u.pid()); ok {
			return status
		}
		if time.Now().After(deadline) {
			// Ask the Go runtime where every goroutine is (SIGQUIT prints
			// them to the pane), so a hang says where it hangs.
			screen := u.screen()
			pid := u.pid()
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			var state string
			for _, l := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(l, "State:") || strings.HasPrefix(l, "Threads:") || strings.HasPrefix(l, "PPid:") {
					state += l + "; "
				}
			}
			u.t.Logf("nplab (pid %d): %s", pid, state)
			if out, err := exec.Command("ps", "-eo", "pid,ppid,stat,wchan:30,cmd", "--forest").Output(); err == nil {
				u.t.Logf("processes:\n%s", out)
			}
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			time.Sleep(2 * time.Second)
			dump := u.tmux("capture-pane", "-p", "-t", "ui", "-S", "-5000")
			u.t.Fatalf("nplab did not exit within %v; the screen:\n%s\ngoroutines after SIGQUIT:\n%s", within, screen, dump)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (u *tmuxUI) pid() int {
	u.t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(u.tmux("display-message", "-p", "-t", "ui", "#{pane_pid}")))
	if err != nil {
		u.t.Fatal(err)
	}
	return n
}

func (u *tmuxUI) noNamespacesLeft() {
	u.t.Helper()
	if ns := labNamespaces(u.t, u.lab); len(ns) > 0 {
		u.t.Errorf("namespaces of lab %s left behind: %v", u.lab, ns)
	}
}

var podsReady = regexp.MustCompile(`(\d+)/(\d+) pods ready`)

// screenAllReady: the header says n/n pods ready, n > 0.
func screenAllReady(s string) bool {
	m := podsReady.FindStringSubmatch(s)
	return m != nil && m[1] == m[2] && m[1] != "0"
}

// fanoutTotals reads the fan-out pane: each pod's total count, from the
// "entry \ pod" header and the "total" row.
func fanoutTotals(s string) map[string]int {
	var head, total []string
	for _, line := range strings.Split(s, "\n") {
		cells := paneCells(line)
		if len(cells) == 0 {
			continue
		}
		switch {
		case cells[0] == `entry \ pod`:
			head = cells
		case strings.HasPrefix(cells[0], "total ") && head != nil:
			total = cells
		}
	}
	out := map[string]int{}
	// The pods' columns come before the failure columns.
	for i := 1; i < len(head) && i < len(total) && head[i] != "refused"; i++ {
		n, _ := strconv.Atoi(strings.Fields(total[i])[0])
		out[head[i]] = n
	}
	return out
}

// paneCells splits the fan-out part of a screen line (after the last box
// edge before it) into cells two or more spaces apart.
func paneCells(line string) []string {
	if i := strings.LastIndex(line, "│entry"); i >= 0 {
		line = line[i:]
	} else if i := strings.LastIndex(line, "│total "); i >= 0 {
		line = line[i:]
	}
	line = strings.Trim(line, "│┃ ")
	return regexp.MustCompile(`\s{2,}`).Split(line, -1)
}

// TestTUIBasicsInTmux is the end-to-end test: open basics from
// the picker, send traffic to every node, watch every pod's count grow,
// delete a pod and see it replaced, quit and find nothing left.
func TestTUIBasicsInTmux(t *testing.T) {
	lab := "t" + randName(5)
	u := startTmux(t, lab) // plain nplab on a terminal: the picker
	s := u.waitText("choose a lesson", 20*time.Second)
	if !strings.Contains(s, "basics") {
		u.keys("q")
		u.paneDead(30 * time.Second)
		t.Skip("the picker has no basics lesson yet (package scenarios, issue 8):\n" + s)
	}
	for i := 0; i < 20 && !strings.Contains(u.screen(), "▸ basics"); i++ {
		u.keys("Down")
		time.Sleep(50 * time.Millisecond)
	}
	u.keys("Enter")
	u.waitScreen("every pod ready", 90*time.Second, screenAllReady)

	before := fanoutTotals(u.screen())
	for round := 0; round < 2; round++ {
		u.keys("T")
		s = u.waitScreen("every pod's count to grow", 60*time.Second, func(s string) bool {
			now := fanoutTotals(s)
			if len(now) < 3 {
				return false
			}
			for pod, n := range now {
				if n <= before[pod] {
					return false
				}
			}
			return true
		})
		before = fanoutTotals(s)
	}

	// Select the first pod (the row under node-1) and delete it.
	u.keys("Down")
	s = u.waitText("▸   ●", 10*time.Second)
	victim := ""
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "▸   ●"); i >= 0 {
			victim = strings.Fields(line[i+len("▸   ●"):])[0]
		}
	}
	if victim == "" {
		t.Fatalf("no pod selected:\n%s", s)
	}
	replicas := podsReady.FindStringSubmatch(s)[2]
	u.keys("x")
	// The topology pane lists a pod as "<state symbol> <name>"; the
	// fan-out keeps a deleted pod's column while it has counts.
	inTopology := regexp.MustCompile(`[●○◌✗…]\s+` + regexp.QuoteMeta(victim) + `\s`)
	u.waitScreen(victim+" replaced", 90*time.Second, func(s string) bool {
		return !inTopology.MatchString(s) && screenAllReady(s) && podsReady.FindStringSubmatch(s)[2] == replicas
	})

	u.keys("q")
	if code := u.paneDead(60 * time.Second); code != 0 {
		t.Errorf("q: exit status %d", code)
	}
	u.noNamespacesLeft()
}

// TestTUIRemovesTheLabOnSignals kills the UI with SIGTERM, and closes its
// terminal (SIGHUP), and finds nothing of the lab left either way.
func TestTUIRemovesTheLabOnSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			lab := "s" + randName(5)
			u := startTmux(t, lab, "tui", "free")
			u.waitScreen("every pod ready", 90*time.Second, screenAllReady)
			if err := syscall.Kill(u.pid(), sig); err != nil {
				t.Fatal(err)
			}
			if code := u.paneDead(60 * time.Second); code == 0 {
				t.Errorf("%v: exit status 0, want the signal reported", sig)
			}
			if s := u.screen(); strings.Contains(s, "┏━ Topology") {
				// The alternate screen was left: the terminal is back.
				t.Errorf("%v: the UI is still on the screen after exit:\n%s", sig, s)
			}
			u.noNamespacesLeft()
		})
	}
}

// fanoutTotals reads what the UI draws (its golden screen).
func TestFanoutTotalsReadsTheScreen(t *testing.T) {
	b, err := os.ReadFile("tui/testdata/running-120x40.golden")
	if err != nil {
		t.Fatal(err)
	}
	got := fanoutTotals(string(b))
	if len(got) != 3 || got["web-44jcr"] != 5 || got["web-8fn4z"] != 2 || got["web-qfgwq"] != 5 {
		t.Errorf("fanoutTotals = %v", got)
	}
	if f := fanoutFailures(string(b)); f["refused"] != 1 || f["dropped"] != 0 || f["timeout"] != 1 {
		t.Errorf("fanoutFailures = %v", f)
	}
	if !screenAllReady("lab demo · 3 nodes · 3/3 pods ready") || screenAllReady("2/3 pods ready") || screenAllReady("0/0 pods ready") {
		t.Error("screenAllReady misreads the header")
	}
}

// zombieStatus is the exit status of pid when it has exited and its parent
// has not reaped it yet.
func zombieStatus(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may contain spaces
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, the state
	if len(f) < 50 || f[0] != "Z" {
		return 0, false
	}
	w, err := strconv.Atoi(f[49]) // field 52: exit_code
	if err != nil {
		return 0, false
	}
	if w&0x7f != 0 { // killed by a signal
		return 128 + w&0x7f, true
	}
	return w >> 8, true
}

// TestTUILinkDownInTheFanout takes node-1's link down with d and sends
// to it with t: no node sees those requests, and the fan-out still counts
// every one as a failure in node-1's row, as plainly as a success; d again
// and t reach the pods.
func TestTUILinkDownInTheFanout(t *testing.T) {
	lab := "d" + randName(5)
	u := startTmux(t, lab, "tui", "free")
	u.waitScreen("every pod ready", 90*time.Second, screenAllReady)
	u.waitText("▸ node-1", 10*time.Second) // the first row is selected
	u.keys("d")
	u.waitText("▼ down", 20*time.Second)
	u.keys("t")
	// Counted from the burst's own replies when no node reports such a
	// request, or from the flows a data plane that reports them makes:
	// either way each of the 30 once.
	u.waitScreen("the fan-out's failure columns to count the 30 requests", 60*time.Second, func(s string) bool {
		failed := 0
		for _, c := range fanoutFailures(s) {
			failed += c
		}
		return failed == 30 && !strings.Contains(s, "sending 30")
	})
	u.keys("d")
	// Wait for the row that says so (absence could be a frame half drawn).
	u.waitScreen("node-1 up again", 20*time.Second, func(s string) bool {
		return regexp.MustCompile(`node-1 172\.18\.0\.2 +▲ up`).MatchString(s)
	})
	u.keys("t")
	u.waitScreen("requests to node-1 answered", 60*time.Second, func(s string) bool {
		n := 0
		for _, c := range fanoutTotals(s) {
			n += c
		}
		return n > 0
	})
	u.keys("q")
	if code := u.paneDead(60 * time.Second); code != 0 {
		t.Errorf("q: exit status %d", code)
	}
	u.noNamespacesLeft()
}

// fanoutFailures reads the fan-out pane's failure columns: each one's
// total ("✗ 16" is 16), from the header and the "total" row.
func fanoutFailures(s string) map[string]int {
	var head, total []string
	for _, line := range strings.Split(s, "\n") {
		cells := paneCells(line)
		switch {
		case len(cells) > 0 && cells[0] == `entry \ pod`:
			head = cells
		case len(cells) > 0 && strings.HasPrefix(cells[0], "total ") && head != nil:
			total = cells
		}
	}
	out := map[string]int{}
	for i := 1; i < len(head) && i < len(total); i++ {
		switch head[i] {
		case "refused", "dropped", "timeout", "error":
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(total[i], "✗")))
			out[head[i]] = n
		}
	}
	return out
}

// TestTUICommandLineErrors: nplab tui's mistakes are one line before the
// screen is taken, including nplab up's flags that the UI's lab has no use
// for (they used to be accepted and ignored) and -f - (stdin is the
// keyboard). Without a terminal it says so instead of hanging.
func TestTUICommandLineErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"tui", "--nodes", "0"}, `error: invalid argument "0" for "--nodes" flag: a lab has 1 to 250 nodes` + "\nSee 'nplab tui --help' for usage."},
		{[]string{"tui", "--name", "NB5"}, `error: invalid argument "NB5" for "--name" flag: a lab name is 1 to 12 lower-case letters, digits and '-', starting and ending with a letter or digit` + "\nSee 'nplab tui --help' for usage."},
		{[]string{"tui", "-d"}, `error: --detach is a flag of nplab up: the terminal UI's lab runs while the UI runs and is removed when it quits (nplab up --detach ... for that)`},
		{[]string{"tui", "--resume"}, `error: --resume is a flag of nplab up: the terminal UI's lab runs while the UI runs and is removed when it quits (nplab up --resume ... for that)`},
		{[]string{"tui", "-f", "-"}, `error: -f -: the terminal UI reads its keys from stdin, so manifests cannot come from there; give files or a directory (or use nplab up -f -)`},
		{[]string{"tui", "-f", "nosuch.yaml"}, `error: the path "nosuch.yaml" does not exist`},
		{[]string{"tui", "basics", "-f", "lab/testdata/default.yaml"}, `error: give a lesson or scenario, or manifests with -f, not both`},
		{[]string{"tui", "basic"}, `error: no lesson "basic" and no such file (lessons: basics, own-port, collision, bands, protocols, readiness, traffic-policy, load-balancer, every-node, docs-examples, free)`},
		// (Its own lab name: were the terminal not checked, a lab would start.)
		{[]string{"tui", "free", "--name", "tf" + randName(5)}, `error: nplab tui needs a terminal for its input and output (nplab up runs a lab without one and logs its events)`},
		// The free lab takes the flags that shape it.
		{[]string{"tui", "free", "--nodes", "2", "--name", "tf" + randName(5)}, `error: nplab tui needs a terminal for its input and output (nplab up runs a lab without one and logs its events)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := runBinary(t, "", tt.args...)
			if code != 1 || stderr != tt.want+"\n" || stdout != "" {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit 1, no stdout, stderr %q", code, stdout, stderr, tt.want)
			}
		})
	}
	// -f takes a directory, as nplab up's does: the UI starts on its
	// files (here it stops at the missing terminal, after reading them).
	if _, stderr, _ := runBinary(t, "", "tui", "-f", "lab/testdata/docs", "--name", "tf"+randName(5)); !strings.Contains(stderr, "needs a terminal") {
		t.Errorf("tui -f DIR: %q", stderr)
	}
	// nplab up's help still has -d; the UI's does not.
	if out, _, _ := runBinary(t, "", "tui", "--help"); strings.Contains(out, "--detach") || strings.Contains(out, "--resume") {
		t.Errorf("nplab tui --help offers nplab up's flags:\n%s", out)
	}
}

// TestPlainNplabOnAPipeRunsUp: plain nplab with stdin and stdout not a
// terminal keeps nplab up's behaviour (the default lab, events logged as
// lines), so pipes and CI work; SIGTERM removes it.
func TestPlainNplabOnAPipeRunsUp(t *testing.T) {
	testenv.RequireRoot(t)
	lab := "p" + randName(5)
	cmd := nplabCmd("--name", lab, "--nodes", "1", "--ready-timeout", "20s")
	cmd.Stdin = strings.NewReader("")
	out := &syncLines{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		_ = nplabCmd("clean", "--name", lab).Run()
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Events (") {
		if time.Now().After(deadline) {
			t.Fatalf("plain nplab on a pipe did not log events as nplab up does:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := out.String(); !strings.Contains(s, fmt.Sprintf("Starting lab %q", lab)) || strings.Contains(s, "\x1b[?1049h") {
		t.Errorf("not nplab up's output, or a full-screen UI:\n%s", s)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd, 30*time.Second); err != nil {
		t.Logf("exit: %v", err)
	}
	if ns := labNamespaces(t, lab); len(ns) > 0 {
		t.Errorf("namespaces left: %v", ns)
	}
}

// syncLines is a command's output, read while it writes.
type syncLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLines) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLines) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTUIOpensAFileAndManifests: nplab tui FILE opens a scenario file at
// its first step, and nplab tui -f DIR a free lab of the directory's
// manifests, with a rejection's exact error in the events pane.
func TestTUIOpensAFileAndManifests(t *testing.T) {
	testenv.RequireRoot(t)
	file := filepath.Join(t.TempDir(), "my-basics.yaml")
	out, err := nplabCmd("show", "basics").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("FILE", func(t *testing.T) {
		lab := "f" + randName(5)
		u := startTmux(t, lab, "tui", file)
		u.waitText("nplab · basics · step 1/", 90*time.Second)
		u.keys("q")
		if code := u.paneDead(60 * time.Second); code != 0 {
			t.Errorf("q: exit status %d", code)
		}
		u.noNamespacesLeft()
	})
	t.Run("-f DIR", func(t *testing.T) {
		lab := "m" + randName(5)
		u := startTmux(t, lab, "tui", "-f", "lab/testdata/docs")
		// backend-service-300081.yaml asks for a nodePort out of range.
		u.waitText("Invalid value: 300081", 90*time.Second)
		u.waitText("Lesson · free lab", 10*time.Second)
		u.keys("q")
		if code := u.paneDead(60 * time.Second); code != 0 {
			t.Errorf("q: exit status %d", code)
		}
		u.noNamespacesLeft()
	})
}

// TestTUILabShapeFlagsOpenTheFreeLab: plain `nplab --nodes 2` on a
// terminal asks for a lab of that shape, which only the free lab can be:
// it opens at once, with two nodes, instead of a picker whose lessons
// would ignore the flag. Quitting takes its kubeconfig and record along.
func TestTUILabShapeFlagsOpenTheFreeLab(t *testing.T) {
	lab := "n" + randName(5)
	u := startTmux(t, lab, "--nodes", "2")
	u.waitScreen("the free lab on 2 nodes, every pod ready", 90*time.Second, func(s string) bool {
		return screenAllReady(s) && strings.Contains(s, "lab "+lab+" · 2 nodes ·")
	})
	files := []string{recordPath(lab), kubeconfigPath(lab)}
	for _, p := range files {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("while the lab runs: %v", err)
		}
	}
	u.keys("q")
	if code := u.paneDead(60 * time.Second); code != 0 {
		t.Errorf("q: exit status %d", code)
	}
	u.noNamespacesLeft()
	for _, p := range files {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("after q, %s is still there (%v)", p, err)
		}
	}
}
