package main

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
	"github.com/nplab/nplab/lab/apiserver"
)

// TestUpDetachKubectlDown is the issue's script: `nplab up -d`, `nplab
// ls`, the embedded kubectl against the running lab (the docs' 30080
// conflict, a replaced pod streamed by get -w, the tutorial's create +
// expose reached with curl from the outside client), the endpoint out of
// the client's reach, then `nplab down`, and nothing is left.
// raceNotice is the line a -race build of client-go logs at start.
var raceNotice = regexp.MustCompile(`(?m)^I\d{4} [^\n]*withrace\.go:\d+\] Data race detection enabled\n`)

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

	// The endpoint is on the host's loopback: the client cannot reach it.
	rec, _ := readRecord(lab)
	host := strings.TrimPrefix(rec.Server, "https://")
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
}
