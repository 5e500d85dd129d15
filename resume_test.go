package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
)

// TestResumeFlagErrors: --resume with --fresh is a flag error, before
// anything is built.
func TestResumeFlagErrors(t *testing.T) {
	stdout, stderr, code := runBinary(t, "", "up", "--resume", "--fresh", "--name", "persistx")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "--resume and --fresh cannot be used together") {
		t.Errorf("nplab up --resume --fresh: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

const resumeManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
`

var podIPRe = regexp.MustCompile(`^10\.244\.\d+\.\d+$`)

// podsWithIPs reads `kubectl get pods -o wide`: "pod/name IP" per pod.
func podsWithIPs(out string) []string {
	var pods []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "pod/") {
			continue
		}
		for _, x := range f[1:] {
			if podIPRe.MatchString(x) {
				pods = append(pods, f[0]+" "+x)
			}
		}
	}
	slices.Sort(pods)
	return pods
}

func stopUp(t *testing.T, cmd *exec.Cmd, log *lockedLog) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, cmd, 30*time.Second); err != nil {
		t.Fatalf("nplab up after Ctrl-C: %v\n%s", err, log.String())
	}
}

// TestUpResume: a lab stopped with Ctrl-C is offered for resuming; on a
// pipe, nplab up says how (--resume or --fresh) and exits at once instead
// of waiting for an answer; --resume brings back the same Service
// (clusterIP, nodePort) and pods (names, IPs), and curl through a node's
// NodePort is answered by one of those pods; after a kill -9, --resume
// removes the leftovers and resumes again; --fresh starts clean;
// --resume of a lab with nothing stored is an error.
func TestUpResume(t *testing.T) {
	testenv.RequireRoot(t)
	name := "persist" + randName(4)
	manifest := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(manifest, []byte(resumeManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, log := startUp(t, name, "-f", manifest)
	svcs1, _ := svcAndPods(log.String())
	pods1 := podsWithIPs(log.String())
	if len(svcs1) != 2 || len(pods1) != 2 {
		t.Fatalf("first run: services %q, pods %q:\n%s", svcs1, pods1, log.String())
	}
	stopUp(t, cmd, log)

	// On a pipe that never ends: no prompt to hang on.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	again := nplabCmd("up", "--name", name)
	again.Env = append(again.Env, "NPLAB_TEST_MAIN=1")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	again.Stdin = pr
	done := make(chan struct{})
	var out []byte
	go func() { out, _ = again.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		again.Process.Kill()
		t.Fatal("nplab up of a stopped lab on a pipe waited for input")
	}
	pr.Close()
	for _, want := range []string{"was stopped, and its objects are kept in", "nplab up --name " + name + " --resume", "nplab up --name " + name + " --fresh"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nplab up of a stopped lab on a pipe: output lacks %q:\n%s", want, out)
		}
	}
	if again.ProcessState.ExitCode() != 1 {
		t.Errorf("nplab up of a stopped lab on a pipe: exit %d, want 1", again.ProcessState.ExitCode())
	}

	cmd, log = startUp(t, name, "--resume")
	svcs2, _ := svcAndPods(log.String())
	pods2 := podsWithIPs(log.String())
	if !slices.Equal(svcs1, svcs2) || !slices.Equal(pods1, pods2) {
		t.Errorf("after --resume:\n%q %q\nbefore:\n%q %q", svcs2, pods2, svcs1, pods1)
	}
	if !strings.Contains(log.String(), "Resumed lab \""+name+"\": 2 Services, 1 Deployments and 2 pods restored") {
		t.Errorf("nplab up --resume does not say what it restored:\n%s", log.String())
	}
	// curl through node-2's NodePort, as the printed command does.
	m := regexp.MustCompile(`nplab exec --name (\S+) client -- curl -sS http://(172\.18\.0\.3:\d+)/hostname`).FindStringSubmatch(log.String())
	if m == nil || m[1] != name {
		t.Fatalf("no curl command for node-2 in:\n%s", log.String())
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl is not installed: the request through the NodePort is left out")
	} else {
		body, err := nplabCmd("exec", "--name", name, "client", "--", "curl", "-sS", "--max-time", "5", "--retry", "5", "--retry-connrefused", "--retry-delay", "1", "http://"+m[2]+"/hostname").Output()
		if err != nil || !slices.ContainsFunc(pods2, func(p string) bool { return strings.HasPrefix(p, "pod/"+string(body)+" ") }) {
			t.Errorf("curl %s/hostname after the resume: %q %v; want a pod of %q", m[2], body, err, pods2)
		}
	}

	// A crash: kill -9 leaves the namespaces behind; --resume removes
	// them and brings the same objects back once more.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = waitExit(t, cmd, 10*time.Second)
	cmd, log = startUp(t, name, "--resume")
	svcs3, _ := svcAndPods(log.String())
	pods3 := podsWithIPs(log.String())
	if !slices.Equal(svcs1, svcs3) || !slices.Equal(pods1, pods3) {
		t.Errorf("--resume after kill -9:\n%q %q\nbefore:\n%q %q", svcs3, pods3, svcs1, pods1)
	}
	if !strings.Contains(log.String(), "Removing what the killed lab") {
		t.Errorf("--resume after kill -9 does not say it removed the killed lab's leftovers:\n%s", log.String())
	}
	stopUp(t, cmd, log)

	cmd, log = startUp(t, name, "--fresh", "-f", manifest)
	if strings.Contains(log.String(), "restored") || !strings.Contains(log.String(), "service/web created") {
		t.Errorf("nplab up --fresh did not start clean:\n%s", log.String())
	}
	stopUp(t, cmd, log)

	stdout, stderr, code := runBinary(t, "", "up", "--name", "nothing"+randName(4), "--resume")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "has nothing to resume: no stored lab in") {
		t.Errorf("nplab up --resume of a lab never stored: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if t.Failed() {
		fmt.Println(log.String())
	}
}

// TestUpResumePromptOnTerminal: on a terminal (a pty, from script(1)),
// `nplab up -d` of a stopped lab asks "Resume it ...? [y/N]"; "y" resumes,
// and the background process, which has no terminal, is told the answer.
func TestUpResumePromptOnTerminal(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("needs script(1) (util-linux) for a pseudo-terminal")
	}
	name := "persist" + randName(4)
	cmd, log := startUp(t, name)
	svcs1, pods1 := svcAndPods(log.String())
	stopUp(t, cmd, log)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	up := exec.CommandContext(ctx, "script", "-qec", os.Args[0]+" up -d --name "+name+" --ready-timeout 20s", "/dev/null")
	up.Env = append(os.Environ(), "NPLAB_TEST_MAIN=1")
	stdin, err := up.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var buf rawLog
	up.Stdout = &buf
	up.Stderr = up.Stdout
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = nplabCmd("down", "--name", name).Run()
		_ = nplabCmd("clean", "--name", name).Run()
	})
	// Answer once asked, as a student would.
	for !strings.Contains(buf.String(), "[y/N]") {
		if ctx.Err() != nil {
			t.Fatalf("no prompt on the terminal:\n%s", buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := stdin.Write([]byte("y\r")); err != nil {
		t.Fatal(err)
	}
	err = up.Wait()
	out := buf.String()
	if err != nil {
		t.Fatalf("nplab up -d on a terminal: %v\n%s", err, out)
	}
	for _, want := range []string{"Resume it (the same Services, nodePorts, ClusterIPs and pods)? [y/N]", "is ready"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nplab up -d on a terminal: output lacks %q:\n%s", want, out)
		}
	}
	bg, err := os.ReadFile(filepath.Join("/run/nplab", name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	svcs2, pods2 := svcAndPods(string(bg))
	if !strings.Contains(string(bg), "Resumed lab") || !slices.Equal(svcs1, svcs2) || !slices.Equal(pods1, pods2) {
		t.Errorf("the background lab did not resume: %q %q, before %q %q\n%s", svcs2, pods2, svcs1, pods1, bg)
	}
	if out, err := nplabCmd("down", "--name", name).CombinedOutput(); err != nil {
		t.Errorf("nplab down: %v\n%s", err, out)
	}
}

// rawLog is a command's output as it comes, safe to read while written.
type rawLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *rawLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *rawLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCleanForget: a stopped lab's kept objects are not something clean
// removes by itself (a crashed lab is resumed from them), but clean says
// where they are, and --forget deletes them without starting a lab.
func TestCleanForget(t *testing.T) {
	testenv.RequireRoot(t)
	name := "forget" + randName(4)
	cmd, log := startUp(t, name)
	stopUp(t, cmd, log)
	dir, err := lab.StateDir(name)
	if err != nil || !lab.HasStoredLab(dir) {
		t.Fatalf("after a stop, no objects kept in %s (%v)", dir, err)
	}
	_, stderr, code := runBinary(t, "", "clean", "--name", name)
	if want := "error: lab \"" + name + "\" left nothing to clean: it is stopped, with its objects kept in " + dir +
		" for nplab up --name " + name + " --resume (nplab clean --name " + name + " --forget deletes them)\n"; code != 1 || stderr != want {
		t.Errorf("clean --name %s: exit %d %q, want exit 1 %q", name, code, stderr, want)
	}
	if !lab.HasStoredLab(dir) {
		t.Fatal("clean without --forget deleted the kept objects")
	}
	stdout, stderr, code := runBinary(t, "", "clean", "--name", name, "--forget")
	if code != 0 || stdout != "lab \""+name+"\": its kept objects ("+dir+") deleted\n" {
		t.Errorf("clean --forget: exit %d %q %q", code, stdout, stderr)
	}
	if lab.HasStoredLab(dir) {
		t.Error("clean --forget left the kept objects")
	}
	if out, _, _ := runBinary(t, "", "ls"); strings.Contains(out, name) {
		t.Errorf("nplab ls still lists %s:\n%s", name, out)
	}
	if _, stderr, code := runBinary(t, "", "clean", "--name", name, "--forget"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("clean --forget of nothing: exit %d %q, want not found", code, stderr)
	}
}
