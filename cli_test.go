package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/testenv"
)

// runBinary runs nplab as a subprocess (the test binary standing in for
// it), with stdin, and returns what a user sees.
func runBinary(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := nplabCmd(args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("nplab %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// TestFlagErrorsComeFirst: a bad flag, name or path is one error line in
// cobra's and kubectl's words (a flag's with kubectl's "See '... --help'
// for usage." under it), exit 1, and nothing else is printed (no
// "Starting lab" banner, nothing built).
func TestFlagErrorsComeFirst(t *testing.T) {
	const nameRule = "a lab name is 1 to 12 lower-case letters, digits and '-', starting and ending with a letter or digit"
	// run and check exit 2 for a mistake in their command line (1 is a
	// failed check there); every other command exits 1, as kubectl does.
	type flagErr struct {
		args []string
		want string
		code int
	}
	tests := []flagErr{
		{[]string{"up", "--nodes", "0"}, "error: invalid argument \"0\" for \"--nodes\" flag: a lab has 1 to 250 nodes\nSee 'nplab up --help' for usage.", 1},
		{[]string{"--nodes", "251"}, "error: invalid argument \"251\" for \"--nodes\" flag: a lab has 1 to 250 nodes\nSee 'nplab --help' for usage.", 1},
		{[]string{"validate", "-f", "lab/testdata/default.yaml", "--nodes", "0"}, "error: invalid argument \"0\" for \"--nodes\" flag: a lab has 1 to 250 nodes\nSee 'nplab validate --help' for usage.", 1},
		{[]string{"up", "--name", "NB5"}, `error: invalid argument "NB5" for "--name" flag: ` + nameRule + "\nSee 'nplab up --help' for usage.", 1},
		{[]string{"up", "--name", ""}, `error: invalid argument "" for "--name" flag: the lab name must not be empty (` + nameRule + `)` + "\nSee 'nplab up --help' for usage.", 1},
		{[]string{"clean", "--name", "NB5"}, `error: invalid argument "NB5" for "--name" flag: ` + nameRule + "\nSee 'nplab clean --help' for usage.", 1},
		{[]string{"run", "--name", "NB5", "basics"}, `error: invalid argument "NB5" for "--name" flag: ` + nameRule + "\nSee 'nplab run --help' for usage.", exitInvalid},
		{[]string{"check", "--name", "NB5", "basics", "-f", "nosuch.yaml"}, `error: invalid argument "NB5" for "--name" flag: ` + nameRule + "\nSee 'nplab check --help' for usage.", exitInvalid},
		{[]string{"up", "--service-node-port-range", "32767-30000"}, "error: invalid argument \"32767-30000\" for \"--service-node-port-range\" flag: end port cannot be less than start port: 32767-30000\nSee 'nplab up --help' for usage.", 1},
		{[]string{"up", "--proxy-mode", "ipvs"}, "error: invalid argument \"ipvs\" for \"--proxy-mode\" flag: must be \"random\" or \"roundrobin\"\nSee 'nplab up --help' for usage.", 1},
		// One wording for a missing path, on every command that takes -f.
		{[]string{"up", "-f", "nosuch.yaml"}, `error: the path "nosuch.yaml" does not exist`, 1},
		{[]string{"up", "-f", "lab/testdata/default.yaml,nosuch.yaml"}, `error: the path "nosuch.yaml" does not exist`, 1},
		{[]string{"validate", "-f", "nosuch.yaml"}, `error: the path "nosuch.yaml" does not exist`, 1},
		{[]string{"check", "basics", "-f", "nosuch.yaml"}, `error: the path "nosuch.yaml" does not exist`, 1},
		// A manifest given without -f gets a hint.
		{[]string{"validate", "nosuch.yaml"}, `error: unknown command "nosuch.yaml" for "nplab validate"; did you mean -f nosuch.yaml?`, 1},
		{[]string{"up", "web.yml"}, `error: unknown command "web.yml" for "nplab up"; did you mean -f web.yml?`, 1},
		{[]string{"nosuch.yaml"}, `error: unknown command "nosuch.yaml" for "nplab"; did you mean -f nosuch.yaml?`, 1},
		{[]string{"check", "basics", "mine.yaml"}, `error: unknown command "mine.yaml" for "nplab check"; did you mean -f mine.yaml?`, exitInvalid},
		{[]string{"run", "--sede", "7", "basics"}, "error: unknown flag: --sede\nSee 'nplab run --help' for usage.", exitInvalid},
		{[]string{"run", "basics", "--seed", "x"}, "error: invalid argument \"x\" for \"--seed\" flag: not a whole number\nSee 'nplab run --help' for usage.", exitInvalid},
		{[]string{"run"}, `error: "nplab run" needs a scenario: a built-in name (see "nplab list") or a scenario file`, exitInvalid},
		{[]string{"check", "basics"}, "error: required flag(s) \"filename\" not set\nSee 'nplab check --help' for usage.", exitInvalid},
		{[]string{"up", "frobnicate"}, `error: unknown command "frobnicate" for "nplab up"`, 1},
		// A lesson builds its own lab: a flag that shapes a free lab is refused, not ignored.
		{[]string{"tui", "collision", "--nodes", "5"}, `error: --nodes is for a free lab (nplab tui free --nodes 5, or with -f your manifests): "collision" builds the lab it describes, its nodes, NodePort range and proxy mode included`, 1},
		{[]string{"tui", "basics", "--proxy-mode", "roundrobin"}, `error: --proxy-mode is for a free lab (nplab tui free --proxy-mode roundrobin, or with -f your manifests): "basics" builds the lab it describes, its nodes, NodePort range and proxy mode included`, 1},
		// A lab named without --name, a number that is not one.
		{[]string{"clean", "demo"}, `error: unknown command "demo" for "nplab clean"; did you mean --name demo?`, 1},
		{[]string{"down", "demo"}, `error: unknown command "demo" for "nplab down"; did you mean --name demo?`, 1},
		{[]string{"up", "--nodes", "1x"}, "error: invalid argument \"1x\" for \"--nodes\" flag: not a whole number\nSee 'nplab up --help' for usage.", 1},
		// A typo of a command or of a lesson gets cobra's suggestion.
		{[]string{"upp"}, "error: unknown command \"upp\" for \"nplab\"\n\nDid you mean this?\n\tup\n\nRun 'nplab --help' for usage.", 1},
		{[]string{"kubeclt", "get", "svc"}, "error: unknown command \"kubeclt\" for \"nplab\"\n\nDid you mean this?\n\tkubectl\n\nRun 'nplab --help' for usage.", 1},
		{[]string{"show", "colision"}, `error: no built-in scenario "colision"; did you mean collision? (the built-in ones: basics, own-port, collision, bands, protocols, readiness, traffic-policy, load-balancer, every-node, docs-examples)`, 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := runBinary(t, "", tt.args...)
			want := tt.code
			if code != want || stderr != tt.want+"\n" || stdout != "" {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit %d, no stdout, stderr %q", code, stdout, stderr, want, tt.want)
			}
		})
	}
}

// TestManifestPaths: -f as kubectl has it. A list, repeated flags, a
// directory and stdin all apply the same files in the same order.
func TestManifestPaths(t *testing.T) {
	docs := filepath.Join("lab", "testdata", "docs")
	front, back := filepath.Join(docs, "frontend-service.yaml"), filepath.Join(docs, "backend-service.yaml")
	dir := t.TempDir()
	for name, src := range map[string]string{"1-frontend.yaml": front, "2-backend.yml": back} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a manifest"), 0o644); err != nil {
		t.Fatal(err)
	}
	frontData, _ := os.ReadFile(front)

	want, wantErr, wantCode := runBinary(t, "", "validate", "--seed", "7", "-f", front, "-f", back)
	if wantCode != 1 || !strings.Contains(wantErr, "provided port is already allocated") {
		t.Fatalf("validate -f %s -f %s: exit %d, stderr %q; want the collision", front, back, wantCode, wantErr)
	}
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"comma", "", []string{"-f", front + "," + back}},
		{"directory", "", []string{"-f", dir}},
		{"stdin", string(frontData), []string{"-f", "-", "-f", back}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, tt.stdin, append([]string{"validate", "--seed", "7"}, tt.args...)...)
			if stdout != want || code != wantCode {
				t.Errorf("exit %d, stdout:\n%s\nwant exit %d, stdout:\n%s", code, stdout, wantCode, want)
			}
			// The error names the file it came from; the collision is
			// the same.
			if !strings.Contains(stderr, "provided port is already allocated") {
				t.Errorf("stderr %q", stderr)
			}
		})
	}
	// An empty directory is kubectl's error too.
	_, stderr, code := runBinary(t, "", "validate", "-f", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "recognized file extensions are [.json .yaml .yml]") {
		t.Errorf("validate -f EMPTYDIR: exit %d, stderr %q", code, stderr)
	}
}

// TestVersion: --version prints the module version, the commit (or why
// there is none) and the Go version.
func TestVersion(t *testing.T) {
	stdout, stderr, code := runBinary(t, "", "--version")
	if code != 0 || stderr != "" {
		t.Fatalf("nplab --version: exit %d, stderr %q", code, stderr)
	}
	if !regexp.MustCompile(`^nplab \S+, commit \S+.*, go1\.\d+`).MatchString(stdout) || strings.Count(stdout, "\n") != 1 {
		t.Errorf("nplab --version printed %q; want one line: nplab VERSION, commit ..., goX", stdout)
	}
}

// TestVersionOf: what --version prints for the builds a student makes. The
// test binary records no commit (go test does not), so the commit lines
// are checked on the build information go build writes in a git clone
// (go version -m shows it).
func TestVersionOf(t *testing.T) {
	clone := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/nplab/nplab", Version: "v0.0.0-20261201050400-538c083b56d5"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "538c083b56d540839d17edbd0a4b4b301059db34"},
			{Key: "vcs.time", Value: "2026-12-01T05:04:00Z"}, {Key: "vcs.modified", Value: "false"}}}
	edited := *clone
	edited.Settings = append(slices.Clone(clone.Settings[:3]), debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	tagged := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/nplab/nplab", Version: "v1.2.3"}}
	goRun := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/nplab/nplab", Version: "(devel)"}}
	for _, tt := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{clone, "nplab v0.0.0-20261201050400-538c083b56d5, commit 538c083b56d540839d17edbd0a4b4b301059db34 (2026-12-01T05:04:00Z), go1.26.8"},
		{&edited, "nplab v0.0.0-20261201050400-538c083b56d5, commit 538c083b56d540839d17edbd0a4b4b301059db34 (2026-12-01T05:04:00Z) with uncommitted changes, go1.26.8"},
		{tagged, "nplab v1.2.3, commit unknown (Go records it only for go build or go install in a git clone; not for go run, go test or -buildvcs=false), go1.26.8"},
		{goRun, "nplab (devel), commit unknown (Go records it only for go build or go install in a git clone; not for go run, go test or -buildvcs=false), go1.26.8"},
	} {
		if got := versionOf(tt.info); got != tt.want {
			t.Errorf("versionOf(%s):\n got %s\nwant %s", tt.info.Main.Version, got, tt.want)
		}
	}
}

// TestHelpShowsSeedAndExamples: --seed is in up's and validate's help, and
// up's help says how it runs without root and has examples without sudo.
func TestHelpShowsSeedAndExamples(t *testing.T) {
	up, _, _ := runBinary(t, "", "up", "--help")
	for _, want := range []string{"Without root it runs in a user namespace", "Examples:", "  nplab up -f my-lab.yaml", "--seed uint", "-f, --filename strings"} {
		if !strings.Contains(up, want) {
			t.Errorf("nplab up --help lacks %q:\n%s", want, up)
		}
	}
	if strings.Contains(up, "sudo nplab") {
		t.Errorf("nplab up --help still asks for sudo:\n%s", up)
	}
	validate, _, _ := runBinary(t, "", "validate", "--help")
	if !strings.Contains(validate, "--seed uint") {
		t.Errorf("nplab validate --help lacks --seed:\n%s", validate)
	}
}

// svcAndPods reads `kubectl get svc,pods -o wide` output: each Service's
// CLUSTER-IP and PORT(S), and the pod names.
func svcAndPods(out string) (svcs []string, pods []string) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 4 && strings.HasPrefix(f[0], "service/"):
			svcs = append(svcs, f[0]+" "+f[2]+" "+f[4])
		case len(f) > 0 && strings.HasPrefix(f[0], "pod/"):
			pods = append(pods, f[0])
		}
	}
	slices.Sort(pods)
	return svcs, pods
}

// TestSeedSameOnUpAndValidate: the same --seed gives the same nodePorts,
// ClusterIPs and pod names in validate and in a running lab, so a lesson
// can quote them. (Also: a one-node lab says "1 node".)
func TestSeedSameOnUpAndValidate(t *testing.T) {
	testenv.RequireRoot(t)
	manifest := filepath.Join("testdata", "seed.yaml")
	vout, verr, code := runBinary(t, "", "validate", "--seed", "11", "--nodes", "1", "-f", manifest)
	if code != 0 {
		t.Fatalf("validate: exit %d: %s", code, verr)
	}
	vs, vp := svcAndPods(vout)
	if len(vs) < 2 {
		t.Fatalf("validate printed no services:\n%s", vout)
	}

	lab := "s" + randName(5)
	cmd, log := startUp(t, lab, "--seed", "11", "--nodes", "1", "-f", manifest)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = waitExit(t, cmd, 30*time.Second)
	}()
	us, up := svcAndPods(log.String())
	if !slices.Equal(vs, us) || !slices.Equal(vp, up) {
		t.Errorf("with --seed 11, validate and up differ:\nvalidate: %q %q\nup:       %q %q", vs, vp, us, up)
	}
	if want := fmt.Sprintf("Starting lab %q: 1 node, an outside client", lab); !strings.Contains(log.String(), want) {
		t.Errorf("nplab up --nodes 1 output lacks %q:\n%s", want, log.String())
	}
}

// TestNameInUse: a second lab with a running lab's name is refused before
// anything is printed, naming the process that runs it; clean refuses it
// too. clean of a lab nplab has no record of is "not found", exit 1.
func TestNameInUse(t *testing.T) {
	testenv.RequireRoot(t)
	lab := "n" + randName(5)
	cmd, _ := startUp(t, lab)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = waitExit(t, cmd, 30*time.Second)
	}()
	stdout, stderr, code := runBinary(t, "", "up", "--name", lab)
	want := fmt.Sprintf("error: lab %q is already running (pid %d): stop it first, or start this one with another --name\n", lab, cmd.Process.Pid)
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("second nplab up --name %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", lab, code, stdout, stderr, want)
	}
	_, stderr, code = runBinary(t, "", "clean", "--name", lab)
	if want := fmt.Sprintf("is still running (pid %d)", cmd.Process.Pid); code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("nplab clean of a running lab: exit %d, stderr %q; want %q", code, stderr, want)
	}
	if ns := labNamespaces(t, lab); len(ns) != 8 {
		t.Errorf("the running lab has %d namespaces after the refusals, want 8", len(ns))
	}

	_, stderr, code = runBinary(t, "", "clean", "--name", "nosuch"+randName(4))
	if code != 1 || !strings.HasPrefix(stderr, "error: lab \"nosuch") || !strings.Contains(stderr, "\" not found") {
		t.Errorf("nplab clean of an unknown lab: exit %d, stderr %q; want exit 1 and lab \"...\" not found", code, stderr)
	}
}

// TestUpDiesWithItsParent: as under `go run`, nplab runs as the child of
// another process; a SIGTERM to that parent alone (which kills it) still
// removes the lab: nplab gets SIGTERM from the kernel (PR_SET_PDEATHSIG).
// Also when whoever read nplab's output is gone too (a closed pipe must
// not kill nplab with SIGPIPE before it removed the lab).
func TestUpDiesWithItsParent(t *testing.T) {
	testenv.RequireRoot(t)
	for _, closeOutput := range []bool{false, true} {
		t.Run(fmt.Sprintf("output closed %v", closeOutput), func(t *testing.T) { testUpDiesWithParent(t, closeOutput) })
	}
}

func testUpDiesWithParent(t *testing.T, closeOutput bool) {
	lab := "p" + randName(5)
	// sh stands in for `go run`: it starts nplab as a child and waits
	// (the trailing command keeps sh from exec'ing it).
	parent := exec.Command("sh", "-c", `"$0" up --name "$1" --ready-timeout 20s; echo nplab exited`, os.Args[0], lab)
	parent.Env = append(os.Environ(), "NPLAB_TEST_MAIN=1")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	parent.Stdout, parent.Stderr = pw, pw
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() {
		_ = parent.Process.Kill()
		_ = nplabCmd("clean", "--name", lab).Run()
	})
	log := &lockedLog{}
	ready := make(chan struct{})
	go func() {
		w := &lineWriter{log: log, match: "Events (", ready: ready}
		_, _ = io.Copy(w, pr)
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("nplab up did not get ready within 60s:\n%s", log.String())
	}
	if ns := labNamespaces(t, lab); len(ns) != 8 {
		t.Fatalf("while up, %d namespaces of lab %s, want 8", len(ns), lab)
	}
	if closeOutput {
		pr.Close()
	}
	// Only the parent is signalled, as `kill <pid of go run>` would.
	if err := parent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for len(labNamespaces(t, lab)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("30s after its parent got SIGTERM, the lab's namespaces are still there: %v\n%s", labNamespaces(t, lab), log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !closeOutput {
		pr.Close()
	}
}

// lineWriter collects output lines and closes ready at the first line that
// starts with match.
type lineWriter struct {
	log   *lockedLog
	match string
	ready chan struct{}
	buf   []byte
	once  bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		w.log.add(line)
		if !w.once && strings.HasPrefix(line, w.match) {
			w.once = true
			close(w.ready)
		}
	}
}
