package kubectlcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/apiserver"
)

// These tests drive a control-plane lab (lab.New: no root, no namespaces)
// through its API endpoint with the embedded kubectl. The root package's
// tests do the same against a running `nplab up -d` with real traffic.

type kubectl struct {
	t   *testing.T
	cfg string
	l   *lab.Lab
}

func newLab(t *testing.T) *kubectl {
	t.Helper()
	t.Setenv("HOME", t.TempDir()) // kubectl's discovery cache
	l, err := lab.New(lab.Config{Name: "kt"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e, err := apiserver.Serve(l, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &kubectl{t: t, cfg: e.Kubeconfig, l: l}
}

func (k *kubectl) run(stdin string, args ...string) (string, string, int) {
	k.t.Helper()
	var out, errOut bytes.Buffer
	code := Run(Options{Args: args, Kubeconfig: k.cfg, In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

func (k *kubectl) ok(args ...string) string {
	k.t.Helper()
	out, errOut, code := k.run("", args...)
	if code != 0 {
		k.t.Fatalf("kubectl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func docs(name string) string { return filepath.Join("..", "..", "lab", "testdata", "docs", name) }

func TestApplyDocsConflict(t *testing.T) {
	k := newLab(t)
	if out := k.ok("apply", "-f", docs("frontend-service.yaml")); out != "service/frontend-service created\n" {
		t.Errorf("frontend: %q", out)
	}
	out, errOut, code := k.run("", "apply", "-f", docs("backend-service.yaml"))
	want := "The Service \"backend-service\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("backend: exit %d, out %q, err %q\nwant err %q", code, out, errOut, want)
	}
	// Applying the same file again is "unchanged": kubectl's own three-way
	// merge over the last-applied annotation, patched through the server.
	if out := k.ok("apply", "-f", docs("frontend-service.yaml")); out != "service/frontend-service unchanged\n" {
		t.Errorf("again: %q", out)
	}
}

func TestGetDescribeJSONPath(t *testing.T) {
	k := newLab(t)
	k.l.Apply("default.yaml", lab.DefaultManifest)
	_ = k.l.WaitIdle(t.Context())
	out := k.ok("get", "svc", "-o", "wide")
	if !regexp.MustCompile(`(?m)^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE +SELECTOR\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^web +NodePort +10\.\S+ +<none> +80:30080/TCP,80:30080/UDP +\S+ +app=web$`).MatchString(out) {
		t.Errorf("get svc -o wide:\n%s", out)
	}
	// kubectl's describe, line by line (the addresses vary).
	out = k.ok("describe", "svc", "web")
	ip, eps := `10\.\d+\.\d+\.\d+`, `10\.244\.\d+\.\d+:%d,10\.244\.\d+\.\d+:%d,10\.244\.\d+\.\d+:%d`
	want := regexp.MustCompile(`^Name:                     web
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 app=web
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       ` + ip + `
IPs:                      ` + ip + `
Port:                     http  80/TCP
TargetPort:               8080/TCP
NodePort:                 http  30080/TCP
Endpoints:                ` + strings.ReplaceAll(eps, "%d", "8080") + `
Port:                     udp  80/UDP
TargetPort:               8081/UDP
NodePort:                 udp  30080/UDP
Endpoints:                ` + strings.ReplaceAll(eps, "%d", "8081") + `
Session Affinity:         None
External Traffic Policy:  Cluster
Internal Traffic Policy:  Cluster
Events:
  Type    Reason     Age   From   Message
  ----    ------     ----  ----   -------
  Normal  ClusterIP  \S+ +nplab  clusterIP ` + ip + ` allocated
  Normal  NodePort   \S+ +nplab  nodePort 30080 \(TCP port 80, UDP port 80\) allocated
$`)
	if !want.MatchString(out) {
		t.Errorf("describe svc web:\n%s", out)
	}
	if out := k.ok("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"); out != "30080" {
		t.Errorf("jsonpath: %q", out)
	}
	out = k.ok("get", "pods")
	if strings.Count(out, "Running") != 3 {
		t.Errorf("get pods:\n%s", out)
	}
	out = k.ok("get", "nodes", "-o", "wide")
	if !strings.Contains(out, "172.18.0.2") || strings.Count(out, "Ready") != 3 {
		t.Errorf("get nodes -o wide:\n%s", out)
	}
}

// kubectl apply --server-side gets the endpoint's 415 and says so, for an
// object that does not exist yet as for one that does (it was a NotFound
// for a new object).
func TestServerSideApplyIsRefusedClearly(t *testing.T) {
	k := newLab(t)
	const want = "error: Server-side apply not available on the server: (the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (nplab does not do server-side apply))\n"
	for _, when := range []string{"new", "existing"} {
		out, errOut, code := k.run("", "apply", "--server-side", "-f", docs("frontend-service.yaml"))
		if code != 1 || out != "" || errOut != want {
			t.Errorf("%s object: exit %d, out %q, err %q\nwant err %q", when, code, out, errOut, want)
		}
		k.ok("apply", "-f", docs("frontend-service.yaml"))
	}
}

func TestServerDryRunAllocatesNothing(t *testing.T) {
	k := newLab(t)
	before := len(k.l.Services())
	out := k.ok("apply", "--dry-run=server", "-f", docs("frontend-service.yaml"))
	if out != "service/frontend-service created (server dry run)\n" {
		t.Errorf("dry run: %q", out)
	}
	if len(k.l.Services()) != before {
		t.Error("a server dry run stored a Service")
	}
	// And allocated nothing: 30080 is still free for a real create.
	if out := k.ok("apply", "-f", docs("frontend-service.yaml")); out != "service/frontend-service created\n" {
		t.Errorf("after the dry run: %q", out)
	}
	// kubectl delete sends its dry run in the DeleteOptions body.
	if out := k.ok("delete", "svc", "frontend-service", "--dry-run=server"); !strings.Contains(out, "(server dry run)") {
		t.Errorf("delete --dry-run=server: %q", out)
	}
	if _, err := k.l.Get("service", "frontend-service"); err != nil {
		t.Errorf("a server dry run of delete deleted the Service: %v", err)
	}
}

func TestScaleDeleteEdit(t *testing.T) {
	k := newLab(t)
	k.l.Apply("default.yaml", lab.DefaultManifest)
	_ = k.l.WaitIdle(t.Context())
	if out := k.ok("scale", "deployment", "web", "--replicas=5"); out != "deployment.apps/web scaled\n" {
		t.Errorf("scale: %q", out)
	}
	_ = k.l.WaitIdle(t.Context())
	if n := len(k.l.Pods()); n != 5 {
		t.Errorf("%d pods after scale, want 5", n)
	}

	eps := k.ok("get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].targetRef.name}")
	victim := strings.Fields(eps)[0]
	if out := k.ok("delete", "pod", victim); out != "pod \""+victim+"\" deleted from default namespace\n" {
		t.Errorf("delete: %q", out)
	}
	_ = k.l.WaitIdle(t.Context())
	after := k.ok("get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].targetRef.name}")
	if strings.Contains(after, victim) || after == eps {
		t.Errorf("endpoints did not change: %q → %q", eps, after)
	}

	// kubectl patch, each patch type the endpoint takes, in this order.
	for _, p := range [][2]string{
		{"json", `[{"op":"replace","path":"/spec/ports/0/nodePort","value":30091}]`},
		{"merge", `{"metadata":{"labels":{"tier":"web"}}}`},
		{"strategic", `{"spec":{"ports":[{"port":80,"protocol":"TCP","nodePort":30080}]}}`},
	} {
		if out := k.ok("patch", "svc", "web", "--type="+p[0], "-p", p[1]); out != "service/web patched\n" {
			t.Errorf("patch --type=%s: %q", p[0], out)
		}
	}
	if out := k.ok("get", "svc", "web", "-o", "jsonpath={.metadata.labels.tier} {.spec.ports[0].nodePort}"); out != "web 30080" {
		t.Errorf("after the patches: %q", out)
	}

	// kubectl edit through KUBE_EDITOR changes the nodePort.
	t.Setenv("KUBE_EDITOR", "sed -i -e s/30080/30123/g")
	if out := k.ok("edit", "svc", "web"); out != "service/web edited\n" {
		t.Errorf("edit: %q", out)
	}
	if out := k.ok("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"); out != "30123" {
		t.Errorf("after edit: %q", out)
	}
}

func TestTutorialImperative(t *testing.T) {
	k := newLab(t)
	if out := k.ok("create", "deployment", "hello-node", "--image=registry.k8s.io/e2e-test-images/agnhost:2.53", "--", "/agnhost", "netexec", "--http-port=8080"); out != "deployment.apps/hello-node created\n" {
		t.Errorf("create deployment: %q", out)
	}
	if out := k.ok("expose", "deployment", "hello-node", "--type=NodePort", "--port=8080"); out != "service/hello-node exposed\n" {
		t.Errorf("expose: %q", out)
	}
	_ = k.l.WaitIdle(t.Context())
	out := k.ok("get", "svc", "hello-node", "-o", "jsonpath={.spec.type} {.spec.ports[0].nodePort}")
	if !regexp.MustCompile(`^NodePort 3\d{4}$`).MatchString(out) {
		t.Errorf("expose made %q", out)
	}
}

func TestNoLabIsKubectlsError(t *testing.T) {
	var out, errOut bytes.Buffer
	cfg := filepath.Join(t.TempDir(), "none")
	_ = os.WriteFile(cfg, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\ncurrent-context: c\n"), 0o600)
	code := Run(Options{Args: []string{"get", "svc"}, Kubeconfig: cfg, In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	if code == 0 || !strings.Contains(errOut.String(), "was refused") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}

func TestExplainNodePort(t *testing.T) {
	k := newLab(t)
	out := k.ok("explain", "service.spec.ports.nodePort")
	for _, want := range []string{"KIND:       Service", "FIELD: nodePort <integer>", "The port on each node on which this service is exposed"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}

// TestEveryResourceIsServed: discovery lists the resources (kubectl
// api-resources), and kubectl gets each: the default namespace, the
// controllers' endpoints and endpointslices, the lab's events.
func TestEveryResourceIsServed(t *testing.T) {
	k := newLab(t)
	k.l.Apply("default.yaml", lab.DefaultManifest)
	_ = k.l.WaitIdle(t.Context())
	out := k.ok("api-resources", "--no-headers", "-o", "name")
	want := "namespaces\nnodes\nservices\nendpoints\npods\nevents\ndeployments.apps\nreplicasets.apps\nendpointslices.discovery.k8s.io\n"
	if got := strings.Join(sortedLines(out), "\n") + "\n"; got != strings.Join(sortedLines(want), "\n")+"\n" {
		t.Errorf("api-resources:\n%s\nwant\n%s", out, want)
	}
	if out := k.ok("get", "ns"); !regexp.MustCompile(`(?m)^default +Active +\S+$`).MatchString(out) {
		t.Errorf("get ns:\n%s", out)
	}
	if out := k.ok("get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "jsonpath={.items[*].endpoints[*].addresses[0]}"); len(strings.Fields(out)) != 3 {
		t.Errorf("get endpointslices of web: %q, want the 3 pods' addresses", out)
	}
	// kubectl's columns, with an AGE (it read <unknown>: the slices had no
	// creationTimestamp).
	if out := k.ok("get", "endpointslices", "-l", "kubernetes.io/service-name=web"); !regexp.MustCompile(`(?m)^NAME +ADDRESSTYPE +PORTS +ENDPOINTS +AGE\nweb-1 +IPv4 +8080,8081 +\S+ +\d+[smh]\S*\n$`).MatchString(out) {
		t.Errorf("get endpointslices:\n%s", out)
	}
	if out := k.ok("get", "events", "--field-selector", "involvedObject.name=web"); !strings.Contains(out, "nodePort 30080 (TCP port 80, UDP port 80) allocated") {
		t.Errorf("get events:\n%s", out)
	}
	// The Deployment's ReplicaSet, named as its pods' owner; get all lists
	// it with the pods, Services and Deployments, as on a cluster.
	pod := k.l.Pods()[0]
	rs := pod.OwnerReferences[0].Name
	if out := k.ok("get", "rs"); !regexp.MustCompile(`(?m)^NAME +DESIRED +CURRENT +READY +AGE\n` + rs + ` +3 +3 +3 +\S+\n$`).MatchString(out) {
		t.Errorf("get rs:\n%s\nwant %s 3 3 3", out, rs)
	}
	all := k.ok("get", "all")
	for _, want := range []string{"pod/" + pod.Name + " ", "service/web ", "deployment.apps/web ", "replicaset.apps/" + rs + " "} {
		if !strings.Contains(all, want) {
			t.Errorf("get all lacks %q:\n%s", want, all)
		}
	}
	if out := k.ok("get", "deploy", "web", "--no-headers"); !regexp.MustCompile(`^web +3/3 +3 +3 `).MatchString(out) {
		t.Errorf("get deploy: %q, want READY 3/3, UP-TO-DATE 3, AVAILABLE 3", out)
	}
}

func sortedLines(s string) []string {
	lines := strings.Fields(s)
	sort.Strings(lines)
	return lines
}

// TestExecSaysWhatToUse: kubectl exec, attach and port-forward cannot
// work on nplab's pods (no container processes, nothing forwarded to the
// host); the error says so and names the command that does the job.
func TestExecSaysWhatToUse(t *testing.T) {
	k := newLab(t)
	k.l.Apply("default.yaml", lab.DefaultManifest)
	_ = k.l.WaitIdle(t.Context())
	p := k.l.Pods()[0].Name
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", p, "--", "hostname"}, "error: unable to upgrade connection: nplab's pods run no container processes to exec into: for a shell or a command in pod " + p + "'s network namespace, use nplab exec " + p + " -- COMMAND\n"},
		{[]string{"port-forward", p, "8080:8080"}, "nplab does not forward ports from a pod to this host"},
	} {
		_, errOut, code := k.run("", tt.args...)
		if code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("kubectl %s: exit %d %q, want exit 1 and %q", strings.Join(tt.args, " "), code, errOut, tt.want)
		}
	}
}
