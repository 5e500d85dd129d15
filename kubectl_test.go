package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/kubectlcmd"
	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/apiserver"
	"github.com/nplab/nplab/lab/plane"
)

// raceNotice is the line a -race build of client-go logs at start.
var raceNotice = regexp.MustCompile(`(?m)^I\d{4} [^\n]*withrace\.go:\d+\] Data race detection enabled\n`)

// TestUpDetachKubectlDown is the issue's script: `nplab up -d`, `nplab
// ls`, the embedded kubectl against the running lab (the docs' 30080
// conflict, a replaced pod streamed by get -w, the tutorial's create +
// expose reached with curl from the outside client, scale to five pods,
// delete a pod and traffic follows, edit moves the nodePort live), a
// kubectl from the PATH with --kubeconfig, the endpoint on 127.0.0.1 only
// and out of the client's reach, then `nplab down`, and nothing is left.
func TestUpDetachKubectlDown(t *testing.T) {
	testenv.RequireRoot(t)
	if testenv.InVM() {
		t.Skip("the VM is for SCTP and netem; the host run covers kubectl")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl, the student's tool (apt-get install curl)")
	}
	lab := "kc" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405")+string(rune('a'+rand.IntN(26))), ":", ""))
	run := func(args ...string) (string, error) {
		c := nplabCmd(args...)
		c.Env = append(c.Env, "NPLAB_LAB="+lab, "HOME="+t.TempDir())
		out, err := c.CombinedOutput()
		// A -race build of client-go logs "Data race detection enabled"
		// (klog, withrace.go) on every run: not kubectl's output.
		return raceNotice.ReplaceAllString(string(out), ""), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("nplab %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	out := must("up", "-d", "--name", lab, "--ready-timeout", "20s")
	t.Cleanup(func() {
		_, _ = run("down", "--name", lab)
		_ = nplabCmd("clean", "--name", lab).Run()
	})
	if !strings.Contains(out, "export KUBECONFIG=/run/nplab/"+lab+".kubeconfig") {
		t.Errorf("up -d output:\n%s", out)
	}
	cfg := apiserver.KubeconfigPath("", lab)
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %s: %v %v", cfg, fi, err)
	}
	if out := must("ls"); !regexp.MustCompile(`(?m)^` + lab + ` +3 +\d+ +(root|rootless) +\S+ +` + regexp.QuoteMeta(cfg) + `$`).MatchString(out) {
		t.Errorf("ls:\n%s", out)
	}

	// The docs' two services on 30080 (web gives its 30080 up first).
	must("kubectl", "delete", "svc", "web")
	docs := filepath.Join("lab", "testdata", "docs")
	if out := must("kubectl", "apply", "-f", filepath.Join(docs, "frontend-service.yaml")); out != "service/frontend-service created\n" {
		t.Errorf("frontend: %q", out)
	}
	out, err := run("kubectl", "apply", "-f", filepath.Join(docs, "backend-service.yaml"))
	if want := "The Service \"backend-service\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated\n"; err == nil || out != want {
		t.Errorf("backend: %v %q", err, out)
	}

	// get pods -w streams a deleted pod's replacement.
	w := nplabCmd("kubectl", "get", "pods", "-w", "--no-headers")
	w.Env = append(w.Env, "NPLAB_LAB="+lab, "HOME="+t.TempDir())
	pipe, _ := w.StdoutPipe()
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Process.Kill(); _ = w.Wait() }()
	sc := bufio.NewScanner(pipe)
	seen := map[string]bool{}
	for len(seen) < 3 && sc.Scan() {
		seen[strings.Fields(sc.Text())[0]] = true
	}
	var victim string
	for n := range seen {
		victim = n
		break
	}
	must("kubectl", "delete", "pod", victim)
	replaced := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if n := strings.Fields(sc.Text())[0]; !seen[n] {
				replaced <- n
				return
			}
		}
	}()
	select {
	case n := <-replaced:
		t.Logf("get pods -w showed %s replacing %s", n, victim)
	case <-time.After(30 * time.Second):
		t.Error("get pods -w showed no replacement pod within 30s")
	}

	// The tutorial's imperative commands, then curl from the client.
	must("kubectl", "create", "deployment", "hello-node", "--image=registry.k8s.io/e2e-test-images/agnhost:2.53", "--", "/agnhost", "netexec", "--http-port=8080")
	must("kubectl", "expose", "deployment", "hello-node", "--type=NodePort", "--port=8080")
	np := must("kubectl", "get", "svc", "hello-node", "-o", "jsonpath={.spec.ports[0].nodePort}")
	must("kubectl", "wait", "--for=condition=Ready", "pod", "-l", "app=hello-node", "--timeout=60s")
	var body []byte
	for i := 0; i < 50; i++ {
		body, err = exec.Command("ip", "netns", "exec", "nplab-"+lab+"-client", "curl", "-sS", "-m", "2", "http://172.18.0.2:"+np+"/hostname").CombinedOutput()
		if err == nil && strings.HasPrefix(string(body), "hello-node-") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.HasPrefix(string(body), "hello-node-") {
		t.Errorf("curl node-1:%s/hostname from the client: %v %s", np, err, body)
	}
	// A pod's shell is named after its pod, a node's after the node, as
	// on a cluster.
	pod := must("kubectl", "get", "pods", "-l", "app=hello-node", "-o", "jsonpath={.items[0].metadata.name}")
	if out := must("exec", pod, "--", "hostname"); out != pod+"\n" {
		t.Errorf("nplab exec %s -- hostname: %q, want the pod's name", pod, out)
	}
	if out := must("exec", "node-2", "--", "hostname"); out != "node-2\n" {
		t.Errorf("nplab exec node-2 -- hostname: %q, want node-2", out)
	}
	// nplab exec finds the lab NPLAB_LAB names, as nplab kubectl does.
	if out := must("exec", "client", "--", "curl", "-sS", "-m", "5", "http://172.18.0.3:"+np+"/hostname"); !strings.HasPrefix(out, "hello-node-") {
		t.Errorf("NPLAB_LAB=%s nplab exec client -- curl node-2:%s/hostname: %q", lab, np, out)
	}

	// kubectl scale: the fan-out reaches five pods.
	if out := must("kubectl", "scale", "deployment", "hello-node", "--replicas=5"); out != "deployment.apps/hello-node scaled\n" {
		t.Errorf("scale: %q", out)
	}
	must("kubectl", "wait", "--for=condition=Ready", "pod", "-l", "app=hello-node", "--timeout=60s")
	must("kubectl", "wait", "--for=jsonpath={.subsets[0].addresses[4].ip}", "endpoints/hello-node", "--timeout=60s")
	pods := map[string]bool{}
	for i := 0; i < 60 && len(pods) < 5; i++ {
		b, err := exec.Command("ip", "netns", "exec", "nplab-"+lab+"-client", "curl", "-sS", "-m", "2", "http://172.18.0.3:"+np+"/hostname").CombinedOutput()
		if err == nil {
			pods[string(b)] = true
		}
	}
	if len(pods) != 5 {
		t.Errorf("after scale --replicas=5, 60 requests reached %d pods: %v", len(pods), pods)
	}

	// kubectl delete pod: get endpoints changes, and traffic follows (the
	// deleted pod never answers again, its replacement does).
	eps := func() string {
		return must("kubectl", "get", "endpoints", "hello-node", "-o", "jsonpath={.subsets[0].addresses[*].targetRef.name}")
	}
	before := eps()
	gone := strings.Fields(before)[0]
	must("kubectl", "delete", "pod", gone)
	must("kubectl", "wait", "--for=jsonpath={.subsets[0].addresses[4].ip}", "endpoints/hello-node", "--timeout=60s")
	after := eps()
	if strings.Contains(after, gone) || after == before {
		t.Errorf("get endpoints after deleting %s: %q, before %q", gone, after, before)
	}
	var replacement string
	for _, n := range strings.Fields(after) {
		if !strings.Contains(before, n) {
			replacement = n
		}
	}
	answered := map[string]int{}
	for i := 0; i < 100 && (i < 30 || answered[replacement] == 0); i++ {
		b, err := exec.Command("ip", "netns", "exec", "nplab-"+lab+"-client", "curl", "-sS", "-m", "2", "http://172.18.0.4:"+np+"/hostname").CombinedOutput()
		if err == nil {
			answered[string(b)]++
		}
	}
	if answered[gone] > 0 || replacement == "" || answered[replacement] == 0 {
		t.Errorf("after deleting %s (replaced by %q), the client reached %v", gone, replacement, answered)
	}

	// kubectl edit through KUBE_EDITOR moves the nodePort live: the new
	// port answers on every node, the old one is refused.
	moved := "30081"
	if np == moved {
		moved = "30082"
	}
	edit := nplabCmd("kubectl", "edit", "svc", "hello-node")
	edit.Env = append(edit.Env, "NPLAB_LAB="+lab, "HOME="+t.TempDir(), "KUBE_EDITOR=sed -i -e s/"+np+"/"+moved+"/g")
	if b, err := edit.CombinedOutput(); err != nil || raceNotice.ReplaceAllString(string(b), "") != "service/hello-node edited\n" {
		t.Errorf("kubectl edit: %v %q", err, b)
	}
	for _, node := range []string{"172.18.0.2", "172.18.0.3", "172.18.0.4"} {
		var b []byte
		for i := 0; i < 50; i++ {
			if b, err = exec.Command("ip", "netns", "exec", "nplab-"+lab+"-client", "curl", "-sS", "-m", "2", "http://"+node+":"+moved+"/hostname").CombinedOutput(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.HasPrefix(string(b), "hello-node-") {
			t.Errorf("after edit, %s:%s: %v %s", node, moved, err, b)
		}
		if b, err := exec.Command("ip", "netns", "exec", "nplab-"+lab+"-client", "curl", "-sS", "-m", "2", "http://"+node+":"+np+"/hostname").CombinedOutput(); err == nil {
			t.Errorf("after edit, the old nodePort %s:%s still answers: %s", node, np, b)
		}
	}

	// A kubectl installed separately works with --kubeconfig.
	if kc, err := exec.LookPath("kubectl"); err == nil {
		c := exec.Command(kc, "--kubeconfig", cfg, "get", "svc", "hello-node", "-o", "jsonpath={.spec.ports[0].nodePort}")
		c.Env = append(os.Environ(), "HOME="+t.TempDir())
		if b, err := c.CombinedOutput(); err != nil || string(b) != moved {
			t.Errorf("%s --kubeconfig %s get svc: %v %q", kc, cfg, err, b)
		}
	} else {
		t.Log("no kubectl on the PATH: the separately installed kubectl is not tried")
	}

	// The endpoint is on the host's loopback only: its one listening
	// socket is bound to 127.0.0.1 (not a wildcard an outside interface
	// would reach), and the client cannot reach it.
	rec, _ := readRecord(lab)
	host := strings.TrimPrefix(rec.Server, "https://")
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Errorf("the API endpoint is %s, want 127.0.0.1", rec.Server)
	}
	port := host[strings.LastIndex(host, ":")+1:]
	if b, err := exec.Command("ss", "-Htln", "sport = :"+port).CombinedOutput(); err != nil {
		t.Errorf("ss: %v %s", err, b)
	} else if f := strings.Fields(string(b)); len(f) < 4 || f[3] != host || strings.Count(string(b), "\n") != 1 {
		t.Errorf("the sockets listening on port %s: %q, want one, on %s", port, b, host)
	}
	if out, err := exec.Command("ip", "netns", "exec", "nplab-"+lab+"-client", "curl", "-sSk", "-m", "2", "https://"+host+"/api").CombinedOutput(); err == nil {
		t.Errorf("the client reached the API endpoint: %s", out)
	}

	must("down", "--name", lab)
	if ns := labNamespaces(t, lab); len(ns) > 0 {
		t.Errorf("after down: namespaces %v", ns)
	}
	left, _ := filepath.Glob(filepath.Join(apiserver.DefaultDir, lab+".*"))
	if len(left) > 0 {
		t.Errorf("after down: files %v", left)
	}
	// Its objects are kept for up --resume, and ls says so.
	if out := must("ls"); !regexp.MustCompile(`(?m)^Stopped, objects kept: (.*, )?`+lab+`(,|$)`).MatchString(out) || !strings.Contains(out, "--resume") {
		t.Errorf("ls after down, want %s among the stopped labs:\n%s", lab, out)
	}
}

// TestKubectlFindsTheLab is how `nplab kubectl` picks its kubeconfig, in a
// run directory of the test's own (other labs may run on this machine):
// NPLAB_LAB's lab, else $KUBECONFIG, else the only running lab, with a
// clear error for none or several. kubectl's own help and client version
// work whatever runs.
func TestKubectlFindsTheLab(t *testing.T) {
	dir := t.TempDir()
	saved := runDir
	runDir = func() string { return dir }
	t.Cleanup(func() { runDir = saved })
	t.Setenv("NPLAB_LAB", "")
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir())

	record := func(name string, pid int) string {
		t.Helper()
		cfg := apiserver.KubeconfigPath(dir, name)
		if err := os.WriteFile(cfg, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := writeRecord(upRecord{Name: name, PID: pid, Nodes: 3, Started: time.Now(), Kubeconfig: cfg}); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// nplab runs the command in-process, as a student types it.
	nplab := func(args ...string) (string, error) {
		var out bytes.Buffer
		c := newRootCmd()
		c.SetArgs(args)
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetIn(strings.NewReader(""))
		err := c.Execute()
		return out.String(), err
	}
	noServer := func(when string) {
		t.Helper()
		for _, args := range [][]string{{"kubectl", "--help"}, {"kubectl"}, {"kubectl", "get", "svc", "-h"}, {"kubectl", "version", "--client"}} {
			out, err := nplab(args...)
			if err != nil || !(strings.Contains(out, "kubectl controls the Kubernetes cluster manager") ||
				strings.Contains(out, "Display one or many resources") || strings.Contains(out, "Client Version: ")) {
				t.Errorf("%s: nplab %s: %v\n%.300s", when, strings.Join(args, " "), err, out)
			}
		}
	}

	_, err := labKubeconfig()
	if want := "no lab is running: start one with `nplab up -d` (or name a kubeconfig with --kubeconfig)"; err == nil || err.Error() != want {
		t.Errorf("no lab: %v, want %q", err, want)
	}
	noServer("no lab")
	if _, err := nplab("kubectl", "get", "svc"); err == nil || !strings.Contains(err.Error(), "no lab is running") {
		t.Errorf("nplab kubectl get svc with no lab: %v", err)
	}

	// A record whose process is gone is not a running lab.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	record("gone", dead.Process.Pid)
	a := record("alpha", os.Getpid())
	if got, err := labKubeconfig(); err != nil || got != a {
		t.Errorf("one lab: %q, %v; want %q", got, err, a)
	}

	b := record("beta", os.Getpid())
	_, err = labKubeconfig()
	if want := "2 labs are running (alpha, beta): choose one with NPLAB_LAB=<name> or --kubeconfig"; err == nil || err.Error() != want {
		t.Errorf("two labs: %v, want %q", err, want)
	}
	noServer("two labs")

	t.Setenv("NPLAB_LAB", "beta")
	if got, err := labKubeconfig(); err != nil || got != b {
		t.Errorf("NPLAB_LAB=beta: %q, %v; want %q", got, err, b)
	}
	t.Setenv("NPLAB_LAB", "nosuch")
	_, err = labKubeconfig()
	if want := "NPLAB_LAB=nosuch: lab \"nosuch\" is not running (no " + apiserver.KubeconfigPath(dir, "nosuch") + ")"; err == nil || err.Error() != want {
		t.Errorf("NPLAB_LAB=nosuch: %v, want %q", err, want)
	}
	// export KUBECONFIG=<a lab's>, as nplab up prints it, picks that lab.
	t.Setenv("NPLAB_LAB", "")
	t.Setenv("KUBECONFIG", a)
	if got, err := labKubeconfig(); err != nil || got != a {
		t.Errorf("KUBECONFIG=%s: %q, %v", a, got, err)
	}
	stopped := apiserver.KubeconfigPath(dir, "stopped")
	t.Setenv("KUBECONFIG", stopped)
	_, err = labKubeconfig()
	if want := "KUBECONFIG=" + stopped + ": lab \"stopped\" is not running (nplab ls lists the running labs)"; err == nil || err.Error() != want {
		t.Errorf("KUBECONFIG of a stopped lab: %v, want %q", err, want)
	}
	// A student's own cluster in $KUBECONFIG is not what nplab kubectl
	// talks to: with one lab running, it is that lab.
	if err := os.Remove(recordPath("beta")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "config"))
	if got, err := labKubeconfig(); err != nil || got != a {
		t.Errorf("KUBECONFIG of another cluster, one lab running: %q, %v; want the lab's %q", got, err, a)
	}
}

// TestValidateAgreesWithKubectl is the evidence for issue 10's "consider
// whether nplab validate should run the embedded kubectl against an
// in-process server": for the docs' manifests and the default lab, what
// validate prints (package lab/kubectl) is what the real kubectl prints
// against the lab's API, byte for byte — the apply lines, the errors and
// the get svc,pods -o wide tables (same seed, same clock) — except in one
// case the lab's package doc records on purpose: the same object twice in
// one file (the docs' backend-pods.yaml) is kubectl create's AlreadyExists
// in validate and up, where kubectl apply patches the first one.
func TestValidateAgreesWithKubectl(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // kubectl's discovery cache
	docs := filepath.Join("lab", "testdata", "docs")
	def := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(def, lab.DefaultManifest, 0o600); err != nil {
		t.Fatal(err)
	}
	const seed = 7
	start := time.Now()

	// validate, and kubectl apply then get against a served lab made the
	// same way (controllers paused and synced once, as validate does).
	both := func(t *testing.T, files ...string) (vOut, vErr, kOut, kErr string) {
		var out, errOut bytes.Buffer
		err := runValidate(&out, &errOut, strings.NewReader(""), &validateOptions{files: files, portRange: "30000-32767", nodes: 3, seed: seed})
		if code := exitCode(nil, err); code != 1 {
			t.Errorf("validate: exit %d, want 1 (something is rejected)", code)
		}
		l, err := lab.New(lab.Config{Name: "agree", Rand: seededRand(seed), Now: func() time.Time { return start }})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.PauseControllers()
		e, err := apiserver.Serve(l, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		kubectl := func(args ...string) (string, string, int) {
			var out, errOut bytes.Buffer
			code := kubectlcmd.Run(kubectlcmd.Options{Args: args, Kubeconfig: e.Kubeconfig, In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			return out.String(), raceNotice.ReplaceAllString(errOut.String(), ""), code
		}
		args := []string{"apply"}
		for _, f := range files {
			args = append(args, "-f", f)
		}
		applied, kErr, code := kubectl(args...)
		if code != 1 {
			t.Errorf("kubectl apply: exit %d, want 1", code)
		}
		l.SyncOnce()
		tables, _, _ := kubectl("get", "svc,pods", "-o", "wide")
		return out.String(), errOut.String(), applied + "\n" + tables, kErr
	}

	t.Run("same", func(t *testing.T) {
		var files []string
		for _, f := range []string{"frontend-service.yaml", "backend-service.yaml", "nodeport-service.yaml", "backend-service-300081.yaml"} {
			files = append(files, filepath.Join(docs, f))
		}
		vOut, vErr, kOut, kErr := both(t, append(files, def)...)
		if kOut != vOut {
			t.Errorf("stdout differs:\nvalidate:\n%s\nkubectl:\n%s", vOut, kOut)
		}
		if kErr != vErr {
			t.Errorf("stderr differs:\nvalidate:\n%s\nkubectl:\n%s", vErr, kErr)
		}
	})
	t.Run("the same pod twice", func(t *testing.T) {
		_, vErr, _, kErr := both(t, filepath.Join(docs, "backend-pods.yaml"))
		if want := `Error from server (AlreadyExists): error when creating "lab/testdata/docs/backend-pods.yaml": pods "backend" already exists` + "\n"; vErr != want {
			t.Errorf("validate: %q, want %q", vErr, want)
		}
		// kubectl apply patched the first pod, and the update was refused.
		if want := `The Pod "backend" is invalid: spec: Forbidden: pod updates may not change fields other than`; !strings.HasPrefix(kErr, want) {
			t.Errorf("kubectl: %q, want %q...", kErr, want)
		}
	})
}

// TestTUIHintSaysWhyKubectlCannotReachTheLab: the TUI's first status
// line names the lab's kubeconfig when its API is served, and says why
// kubectl cannot reach the lab when it is not (here: a run directory that
// cannot be made), rather than a command that would not work.
func TestTUIHintSaysWhyKubectlCannotReachTheLab(t *testing.T) {
	testenv.RequireRoot(t)
	saved := runDir
	t.Cleanup(func() { runDir = saved })
	name := func(p string) string { return p + string(rune('a'+rand.IntN(26))) + string(rune('a'+rand.IntN(26))) }
	ctx := t.Context()

	runDir = func() string { return "/dev/null/nplab" }
	l, err := startServed(ctx, lab.Config{Name: name("hintno"), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := kubectlHint(l); !strings.HasPrefix(got, "kubectl cannot reach this lab (its API is not served: ") || !strings.Contains(got, "/dev/null") {
		t.Errorf("without an API: hint %q, want why kubectl cannot reach the lab", got)
	}

	dir := t.TempDir()
	runDir = func() string { return dir }
	served, err := startServed(ctx, lab.Config{Name: name("hintok"), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer served.Close()
	cfg := apiserver.KubeconfigPath(dir, served.Name())
	if got := kubectlHint(served); got != "kubectl in another terminal: nplab kubectl get svc (or export KUBECONFIG="+cfg+")" {
		t.Errorf("with the API served: hint %q, want the command and %s", got, cfg)
	}
	if _, err := os.Stat(cfg); err != nil {
		t.Errorf("the hint's kubeconfig: %v", err)
	}

	// Closed (as the TUI closes its labs on quit), each lab takes its
	// files and its hint with it before waitServed returns.
	l.Close()
	served.Close()
	waitServed()
	for _, p := range []string{cfg, recordPath(served.Name())} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("after the lab closed, %s is still there (%v)", p, err)
		}
	}
	if _, ok := apiErrs.Load(l); ok {
		t.Error("after the lab closed, apiErrs still holds it")
	}
}

// TestKubectlDeleteGracePeriodAndForce: kubectl delete's options against a
// lab with a kubelet, as a cluster takes them. --dry-run=server deletes
// nothing. --grace-period=2 cuts an app's 60 s --delay-shutdown short (the
// kubelet kills it when the 2 s are up, and says so). --force
// --grace-period=0 takes the pod out of the API at once and its
// Deployment replaces it, while the old pod, on its node, still answers on
// its address — which no new pod gets until its kubelet is done; kubectl
// rollout status and get deployments see the Deployment whole again.
func TestKubectlDeleteGracePeriodAndForce(t *testing.T) {
	sl := startServedLab(t, "kg", 1)
	l, kubectl, must := sl.Lab, sl.kubectl, sl.must
	must("create", "deployment", "slow", "--replicas=3", "--image=registry.k8s.io/e2e-test-images/agnhost:2.53",
		"--", "/agnhost", "netexec", "--http-port=8080", "--delay-shutdown=60")
	must("wait", "--for=condition=Ready", "pod", "-l", "app=slow", "--timeout=60s")
	names := strings.Fields(must("get", "pods", "-l", "app=slow", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(names) != 3 {
		t.Fatalf("pods: %v", names)
	}

	if out := must("delete", "pod", names[0], "--dry-run=server"); !strings.Contains(out, "(server dry run)") {
		t.Errorf("delete --dry-run=server: %q", out)
	}
	if out := must("get", "pod", names[0], "-o", "jsonpath={.metadata.deletionTimestamp}"); out != "" {
		t.Errorf("after a server dry run, pod %s is terminating (%s)", names[0], out)
	}

	must("delete", "pod", names[0], "--grace-period=2") // waits until it is gone
	killed := false
	for _, e := range l.Events() {
		killed = killed || (e.Object == "pod/"+names[0] && strings.Contains(e.Message, "its grace period (2s) ended before its app's --delay-shutdown (1m0s); the kubelet killed it"))
	}
	if !killed {
		t.Errorf("no event says the kubelet killed %s when its 2 s grace period ended: %v", names[0], l.Events())
	}

	forced := names[1]
	ip := must("get", "pod", forced, "-o", "jsonpath={.status.podIP}")
	if out := must("delete", "pod", forced, "--force", "--grace-period=0"); !strings.Contains(out, `pod "`+forced+`" force deleted`) {
		t.Errorf("delete --force --grace-period=0: %q", out)
	}
	if out, code := kubectl("get", "pod", forced); code == 0 || !strings.Contains(out, "NotFound") {
		t.Errorf("get pod %s right after the force delete: exit %d %q, want NotFound", forced, code, out)
	}
	rep, err := l.Send(t.Context(), plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(netip.MustParseAddr(ip), 8080), Message: "/hostname"})
	if err != nil || rep.Body != forced {
		t.Errorf("the force-deleted pod at %s:8080 (its app in its --delay-shutdown): %q %v %v, want its hostname", ip, rep.Body, rep.Result, err)
	}
	// The tutorials' way to wait, and what kubectl get deployments reads.
	if out := must("rollout", "status", "deployment/slow", "--timeout=60s"); !strings.HasSuffix(out, "deployment \"slow\" successfully rolled out\n") {
		t.Errorf("rollout status: %q", out)
	}
	must("wait", "--for=condition=Available", "deployment/slow", "--timeout=10s")
	if out := must("get", "deployments", "slow", "--no-headers"); !regexp.MustCompile(`^slow\s+3/3\s+3\s+3\s`).MatchString(out) {
		t.Errorf("get deployments: %q, want READY 3/3, UP-TO-DATE 3, AVAILABLE 3", out)
	}
	if ips := must("get", "pods", "-l", "app=slow", "-o", "jsonpath={.items[*].status.podIP}"); strings.Contains(" "+ips+" ", " "+ip+" ") {
		t.Errorf("a new pod got %s while the force-deleted pod still has it: %s", ip, ips)
	}
}

// TestKubectlLogs: kubectl logs shows what the pod's app printed, in its
// own words: netexec's start-up lines, then a line per request it
// answered — so a student sees which pod a request through the nodePort
// reached. The API server's errors for a wrong container or a missing
// previous start are kubectl's, and -f streams a line as it is printed.
func TestKubectlLogs(t *testing.T) {
	sl := startServedLab(t, "kl", 2)
	l, kubectl, must, cfg := sl.Lab, sl.kubectl, sl.must, sl.cfg
	l.Apply("default.yaml", lab.DefaultManifest)
	must("rollout", "status", "deployment/web", "--timeout=60s")
	node := netip.AddrPortFrom(l.Nodes()[0].IP, 30080)
	rep, err := l.Send(t.Context(), plane.Request{From: "client", Protocol: "TCP", Target: node, Message: "/hostname"})
	if err != nil || rep.Result != plane.FlowOK {
		t.Fatalf("client → %s/hostname: %v %v", node, rep.Result, err)
	}
	pod := rep.Body
	logs := must("logs", pod)
	lines := strings.Split(strings.TrimSuffix(logs, "\n"), "\n")
	stamp := `^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d `
	if len(lines) < 3 || !regexp.MustCompile(stamp+`Started HTTP server on port 8080$`).MatchString(lines[0]) ||
		!regexp.MustCompile(stamp+`Started UDP server on port  8081$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`(?m)`+stamp+`GET /hostname$`).MatchString(logs) {
		t.Errorf("kubectl logs %s (the pod that answered):\n%s", pod, logs)
	}
	udp, err := l.Send(t.Context(), plane.Request{From: pod, Protocol: "UDP", Target: netip.AddrPortFrom(netip.MustParseAddr(must("get", "pod", pod, "-o", "jsonpath={.status.podIP}")), 8081), Message: "hostname"})
	if err != nil || udp.Body != pod {
		t.Fatalf("UDP hostname to %s: %q %v", pod, udp.Body, err)
	}
	if out := must("logs", pod, "--tail=1"); !regexp.MustCompile(stamp + `Sending udp hostName response\n$`).MatchString(out) {
		t.Errorf("kubectl logs --tail=1 after a UDP hostname: %q", out)
	}
	if out := must("logs", "deployment/web", "--tail=1"); out == "" {
		t.Error("kubectl logs deployment/web printed nothing")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", pod, "-c", "nope"}, "error: container nope is not valid for pod " + pod + " out of: agnhost\n"},
		{[]string{"logs", pod, "--previous"}, "Error from server (BadRequest): previous terminated container \"agnhost\" in pod \"" + pod + "\" not found\n"},
		{[]string{"logs", "nosuch"}, "error: error from server (NotFound): pods \"nosuch\" not found in namespace \"default\"\n"},
	} {
		if out, code := kubectl(tt.args...); code != 1 || out != tt.want {
			t.Errorf("kubectl %s: exit %d %q, want exit 1 %q", strings.Join(tt.args, " "), code, out, tt.want)
		}
	}

	// -f: a request made while following shows up; the follow ends with
	// the pod. (kubectlcmd.Run runs one kubectl at a time: nothing else
	// may run kubectl until the follow ends.)
	podIP := netip.MustParseAddr(must("get", "pod", pod, "-o", "jsonpath={.status.podIP}"))
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- kubectlcmd.Run(kubectlcmd.Options{Args: []string{"logs", "-f", "--tail=0", pod}, Kubeconfig: cfg,
			In: strings.NewReader(""), Out: pw, ErrOut: pw})
		pw.Close()
	}()
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if !raceNotice.MatchString(sc.Text() + "\n") {
				first <- sc.Text()
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	// Requests until one is followed (the first may come before kubectl's
	// request, which --tail=0 would not show).
	got := ""
	for i := 0; i < 50 && got == ""; i++ {
		if _, err := l.Send(t.Context(), plane.Request{From: "node-1", Protocol: "TCP", Target: netip.AddrPortFrom(podIP, 8080), Message: "/echo?msg=followed"}); err != nil {
			t.Fatal(err)
		}
		select {
		case got = <-first:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := l.Delete("pod", "", pod); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("kubectl logs -f did not end when its pod went")
	}
	if !regexp.MustCompile(stamp + `GET /echo\?msg=followed&code=$`).MatchString(got) {
		t.Errorf("kubectl logs -f: first line %q, want the /echo request", got)
	}
}

// TestRollingUpdateKeepsServing: kubectl rollout restart replaces every
// pod while requests through the nodePort keep being answered — by old
// pods, then new ones — as a rolling update with readiness probes does on
// a cluster (the pods serve on for their --delay-shutdown after SIGTERM,
// while the proxies stop sending them new connections).
func TestRollingUpdateKeepsServing(t *testing.T) {
	sl := startServedLab(t, "ru", 2)
	l, must := sl.Lab, sl.must
	m := strings.Replace(string(lab.DefaultManifest), `"--udp-port=8081"]`, `"--udp-port=8081", "--delay-shutdown=3"]`, 1)
	for _, r := range l.Apply("web.yaml", []byte(m)) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	must("rollout", "status", "deployment/web", "--timeout=60s")
	before := map[string]bool{}
	for _, p := range l.Pods() {
		before[p.Name] = true
	}

	stop := make(chan struct{})
	type result struct {
		answered map[string]int
		failed   []string
	}
	res := make(chan result, 1)
	go func() {
		r := result{answered: map[string]int{}}
		target := netip.AddrPortFrom(l.Nodes()[1].IP, 30080)
		for i := 0; i < 5000; i++ { // bounded; ends when told
			select {
			case <-stop:
				res <- r
				return
			default:
			}
			rep, err := l.Send(context.Background(), plane.Request{From: "client", Protocol: "TCP", Target: target, Message: "/hostname", Timeout: 10 * time.Second})
			if err != nil || rep.Result != plane.FlowOK {
				r.failed = append(r.failed, fmt.Sprintf("%v %v", rep.Result, err))
				continue
			}
			r.answered[rep.Body]++
			time.Sleep(5 * time.Millisecond)
		}
		res <- r
	}()
	must("rollout", "restart", "deployment/web")
	must("rollout", "status", "deployment/web", "--timeout=90s")
	time.Sleep(200 * time.Millisecond)
	close(stop)
	r := <-res
	t.Logf("during the rollout: answered by %v, %d failed", r.answered, len(r.failed))
	newPods := 0
	for name := range r.answered {
		if !before[name] {
			newPods++
		}
	}
	if len(r.failed) > 0 || newPods == 0 {
		t.Errorf("during the rollout: %d requests failed (%v); answered by %v (%d new pods)", len(r.failed), r.failed, r.answered, newPods)
	}
	for _, p := range l.Pods() {
		if before[p.Name] && p.DeletionTimestamp == nil {
			t.Errorf("old pod %s still runs after the rollout", p.Name)
		}
	}
}

// servedLab starts a lab with its API served, as the terminal UI does
// (records and kubeconfig in a directory of the test's), closed when the
// test ends, and the embedded kubectl against it: kubectl returns what it
// printed and its exit status, must fails the test on an error.
type servedLab struct {
	*lab.Lab
	t   *testing.T
	cfg string
}

func startServedLab(t *testing.T, name string, nodes int) servedLab {
	t.Helper()
	testenv.RequireRoot(t)
	t.Setenv("HOME", t.TempDir()) // kubectl's discovery cache
	saved := runDir
	t.Cleanup(func() { runDir = saved })
	dir := t.TempDir()
	runDir = func() string { return dir }
	l, err := startServed(t.Context(), lab.Config{Name: name + randName(4), Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return servedLab{Lab: l, t: t, cfg: kubeconfigPath(l.Name())}
}

func (s servedLab) kubectl(args ...string) (string, int) {
	var b bytes.Buffer
	code := runKubectl(&b, s.cfg, args...)
	return raceNotice.ReplaceAllString(b.String(), ""), code
}

func (s servedLab) must(args ...string) string {
	s.t.Helper()
	out, code := s.kubectl(args...)
	if code != 0 {
		s.t.Fatalf("kubectl %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}
