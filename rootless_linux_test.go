package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
)

// The rootless tests run nplab (this test binary standing in for it) as an
// unprivileged user, uid 65534 ("nobody"), so they need the machine's root
// to switch to that user; they skip inside the tests' own user namespace.

const nobody = 65534

func requireMachineRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	if testenv.InUserNamespace() {
		t.Skip("skipping: runs nplab as another user, which needs the machine's root (the tests run in a user namespace)")
	}
	if testenv.InVM() {
		t.Skip("skipping in the VM: the host run covers rootless mode (the VM's busybox has no setpriv, curl or nsenter)")
	}
}

// unprivileged is nplab as uid 65534: a copy of the test binary it can
// execute, and a home and $XDG_RUNTIME_DIR of its own.
type unprivileged struct {
	bin, home, xdg string
}

func newUnprivileged(t *testing.T) *unprivileged {
	t.Helper()
	dir, err := os.MkdirTemp("", "nplab-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	u := &unprivileged{bin: filepath.Join(dir, "nplab"), home: filepath.Join(dir, "home"), xdg: filepath.Join(dir, "xdg")}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{u.home, u.xdg} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *unprivileged) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.home, "XDG_RUNTIME_DIR=" + u.xdg, "NPLAB_TEST_MAIN=1"}
}

// cmd is `nplab args...` run as uid 65534.
func (u *unprivileged) cmd(args ...string) *exec.Cmd {
	c := exec.Command(u.bin, args...)
	c.Env = u.env()
	c.Dir = u.home
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	return c
}

// TestRootlessLab: as an unprivileged user, nplab up builds the default
// lab in a user namespace; nplab exec client -- curl through every node's
// NodePort is answered by the lab's pods; nplab ls and nplab kubectl (on
// the host's loopback) see it; SIGINT (Ctrl-C) removes it, leaving no
// process and no record behind, and the host's `ip netns list` never
// showed its namespaces.
func TestRootlessLab(t *testing.T) {
	requireMachineRoot(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipping: no curl here (the test reaches the NodePorts with it, as nplab up's hints say)")
	}
	u := newUnprivileged(t)
	lab := "rl" + randName(6)
	up := u.cmd("up", "--name", lab, "--ready-timeout", "60s")
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	up.Stderr = &stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = up.Process.Kill() // its lab goes with it (PR_SET_PDEATHSIG)
			<-exited
		}
	}()

	// Read nplab up's output up to its event log: the pods, and the
	// commands that reach the NodePorts.
	var out strings.Builder
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var pods []string
	var hints [][]string
	deadline := time.After(90 * time.Second)
ready:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("nplab up ended before the lab was ready:\n%s\nstderr:\n%s", out.String(), stderr.String())
			}
			out.WriteString(line + "\n")
			f := strings.Fields(line)
			switch {
			case len(f) > 0 && strings.HasPrefix(f[0], "pod/"):
				pods = append(pods, strings.TrimPrefix(f[0], "pod/"))
			case len(f) > 2 && f[0] == "nplab" && f[1] == "exec" && slices.Contains(f, "curl"):
				hints = append(hints, f[1:])
			case strings.HasPrefix(line, "Events (Ctrl-C"):
				break ready
			}
		case <-deadline:
			t.Fatalf("the lab was not ready within 90s:\n%s\nstderr:\n%s", out.String(), stderr.String())
		}
	}
	go func() { // keep draining, so nplab never blocks on its output
		for line := range lines {
			_ = line
		}
	}()
	if len(pods) == 0 || len(hints) != 3 {
		t.Fatalf("want the pods and one curl command per node (3) in nplab up's output, got pods %v, commands %v:\n%s", pods, hints, out.String())
	}

	rec, err := os.ReadFile(filepath.Join(u.xdg, "nplab", lab+".up.json"))
	if err != nil {
		t.Fatalf("the lab's record is not in the user's $XDG_RUNTIME_DIR/nplab: %v", err)
	}
	var r upRecord
	if err := json.Unmarshal(rec, &r); err != nil {
		t.Fatal(err)
	}
	inner := r.PID
	if !r.Rootless || inner == 0 || inner == up.Process.Pid || r.Launcher != up.Process.Pid {
		t.Fatalf("the record's pid %d should be the lab's process in the user namespace, not nplab up's %d:\n%s", inner, up.Process.Pid, rec)
	}

	// Every node's NodePort, from the client, answered by a pod.
	for _, h := range hints {
		for range 3 {
			got, err := u.cmd(h...).CombinedOutput()
			name := strings.TrimSpace(string(got))
			if err != nil || !slices.Contains(pods, name) {
				t.Errorf("nplab %s: %q (%v), want one of the pods %v", strings.Join(h, " "), got, err, pods)
			}
		}
	}
	// A host's shell has the host's name, rootless too (its own UTS
	// namespace, inside the lab's user namespace).
	if got, err := u.cmd("exec", "--name", lab, "node-1", "--", "hostname").CombinedOutput(); err != nil || string(got) != "node-1\n" {
		t.Errorf("nplab exec node-1 -- hostname: %q (%v), want node-1", got, err)
	}
	// Exit status and errors as the command's own.
	if err := u.cmd("exec", "--name", lab, "client", "--", "sh", "-c", "exit 3").Run(); err == nil || err.(*exec.ExitError).ExitCode() != 3 {
		t.Errorf("nplab exec client -- sh -c 'exit 3': %v, want exit status 3", err)
	}
	if got, err := u.cmd("exec", "--name", lab, "nosuch", "--", "true").CombinedOutput(); err == nil || !strings.Contains(string(got), "node-1, node-2, node-3") {
		t.Errorf("nplab exec nosuch: %v, %s; want an error listing the hosts", err, got)
	}

	if got, err := u.cmd("ls").CombinedOutput(); err != nil || !strings.Contains(string(got), lab) || !strings.Contains(string(got), "rootless") {
		t.Errorf("nplab ls as the user: %v\n%s\nwant lab %s, rootless", err, got, lab)
	}
	kc := u.cmd("kubectl", "get", "pods", "--no-headers")
	kc.Env = append(kc.Env, "NPLAB_LAB="+lab)
	if got, err := kc.CombinedOutput(); err != nil || !strings.Contains(string(got), pods[0]) {
		t.Errorf("nplab kubectl get pods as the user (the API on the host's loopback): %v\n%s", err, got)
	}
	if ns := labNamespaces(t, lab); len(ns) != 0 {
		t.Errorf("a rootless lab's namespaces are its own, yet the host's ip netns list shows %v", ns)
	}

	// Ctrl-C.
	if err := up.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the deferred check
		if err != nil {
			t.Errorf("nplab up after SIGINT: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("nplab up did not stop within 60s of SIGINT")
	}
	for start := time.Now(); alive(inner) && time.Since(start) < 10*time.Second; {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(inner) {
		t.Errorf("the lab's process %d outlived nplab up", inner)
	}
	if left, _ := filepath.Glob(filepath.Join(u.xdg, "nplab", lab+"*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if got, _ := u.cmd("ls").CombinedOutput(); !strings.Contains(string(got), "No labs are running.") {
		t.Errorf("nplab ls after Ctrl-C:\n%s", got)
	}
}

// withoutUserNamespaces is nplab args run as an unprivileged user where
// the kernel allows no user namespace: user.max_user_namespaces=0, set in
// a user namespace of the test's own (so the machine's setting is
// untouched), whose uid 1000 is nobody outside.
func (u *unprivileged) withoutUserNamespaces(args ...string) *exec.Cmd {
	const inner = 1000
	sh := exec.Command("sh", append([]string{"-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid=1000 --regid=1000 --clear-groups "$@"`, "sh", u.bin}, args...)...)
	sh.Env = u.env()
	sh.Dir = u.home
	sh.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: inner, HostID: nobody, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: inner, HostID: nobody, Size: 1}},
		GidMappingsEnableSetgroups: true, // setpriv --clear-groups
	}
	return sh
}

// TestRootlessDisabled: where the kernel allows no user namespace (here
// user.max_user_namespaces=0, set in a user namespace of the test's own so
// the machine's setting is untouched), nplab up as an unprivileged user
// fails with an error naming the setting and saying that sudo works.
func TestRootlessDisabled(t *testing.T) {
	requireMachineRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: no setpriv (util-linux) here to switch to an unprivileged user")
	}
	u := newUnprivileged(t)
	out, err := u.withoutUserNamespaces("up", "--name", "rloff").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("nplab up with user namespaces disabled: %v, want exit status 1:\n%s", err, out)
	}
	t.Logf("nplab up said:\n%s", out)
	for _, want := range []string{"user.max_user_namespaces = 0", "sudo", "no space left on device"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
}

// TestExecInLabHosts: nplab exec runs a command in the client, a node and a
// pod (by its name) of a running lab, with the command's own output and
// exit status, and an unknown host is an error listing the hosts. As root,
// or in the tests' user namespace (where the lab is as a rootless one sees it).
func TestExecInLabHosts(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipping: no curl here")
	}
	lab := "ex" + randName(6)
	up := nplabCmd("up", "--name", lab, "--ready-timeout", "60s")
	var out bytes.Buffer
	up.Stdout, up.Stderr = &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	t.Cleanup(func() {
		_ = up.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = up.Process.Kill()
		}
	})
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if rec, err := readRecord(lab); err == nil && alive(rec.PID) {
			break
		}
		if time.Since(start) > 90*time.Second {
			t.Fatalf("lab %s not ready:\n%s", lab, out.String())
		}
	}
	run := func(args ...string) (string, error) {
		b, err := nplabCmd(append([]string{"exec", "--name", lab}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}
	pod, err := run("client", "--", "curl", "-sS", "http://172.18.0.2:30080/hostname")
	if err != nil || !strings.HasPrefix(pod, "web-") {
		t.Fatalf("nplab exec client -- curl: %q, %v", pod, err)
	}
	if got, err := run("node-1", "--", "ip", "-br", "-4", "addr", "show", "eth0"); err != nil || !strings.Contains(got, "172.18.0.2/") {
		t.Errorf("nplab exec node-1 -- ip addr: %q, %v", got, err)
	}
	if got, err := run(pod, "--", "ip", "-br", "-4", "addr", "show", "eth0"); err != nil || !strings.Contains(got, "10.244.") {
		t.Errorf("nplab exec %s -- ip addr: %q, %v", pod, got, err)
	}
	if _, err := run("client", "--", "sh", "-c", "exit 4"); err == nil || err.(*exec.ExitError).ExitCode() != 4 {
		t.Errorf("nplab exec client -- sh -c 'exit 4': %v, want exit status 4", err)
	}
	if got, err := run("nosuch", "--", "true"); err == nil || !strings.Contains(got, `no host "nosuch"`) || !strings.Contains(got, pod) {
		t.Errorf("nplab exec nosuch: %q, %v; want an error listing the hosts, pods by name", got, err)
	}
}

// TestRootlessDetached: as an unprivileged user, nplab up -d returns once
// the lab (in its user namespace) is ready; nplab down stops it and nothing
// of it is left.
func TestRootlessDetached(t *testing.T) {
	requireMachineRoot(t)
	u := newUnprivileged(t)
	lab := "rd" + randName(6)
	t.Cleanup(func() { _ = u.cmd("down", "--name", lab).Run() })
	if out, err := u.cmd("up", "-d", "--name", lab, "--ready-timeout", "60s").CombinedOutput(); err != nil || !strings.Contains(string(out), "is ready") {
		t.Fatalf("nplab up -d as the user: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(u.xdg, "nplab", lab+".up.json"))
	var r upRecord
	if err != nil || json.Unmarshal(b, &r) != nil || !r.Rootless {
		t.Fatalf("the lab's record: %v\n%s", err, b)
	}
	if out, err := u.cmd("exec", "--name", lab, "client", "--", "true").CombinedOutput(); err != nil {
		t.Errorf("nplab exec client -- true: %v\n%s", err, out)
	}
	// A second lab of that name is refused as running, naming its
	// process, in the foreground or not; not told it was stopped and may
	// be resumed (a running lab's objects are stored as it runs).
	want := fmt.Sprintf("error: lab %q is already running (pid %d): stop it first, or start this one with another --name\n", lab, r.PID)
	for _, args := range [][]string{{"up", "--name", lab}, {"up", "-d", "--name", lab}} {
		if out, err := u.cmd(args...).CombinedOutput(); err == nil || string(out) != want {
			t.Errorf("nplab %s while it runs: %v, printed %q; want exit 1 and %q", strings.Join(args, " "), err, out, want)
		}
	}
	if out, err := u.cmd("down", "--name", lab).CombinedOutput(); err != nil {
		t.Fatalf("nplab down: %v\n%s", err, out)
	}
	for start := time.Now(); (alive(r.PID) || alive(r.Launcher)) && time.Since(start) < 10*time.Second; {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(r.PID) {
		t.Errorf("the lab's process %d outlived nplab down", r.PID)
	}
	if left, _ := filepath.Glob(filepath.Join(u.xdg, "nplab", lab+"*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
