package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestRunRootlessDisabled: where the system allows no user namespace,
// `nplab run` as an unprivileged user still keeps its exit statuses: a
// lesson that needs the data plane exits 3 (this machine cannot run it),
// with --json an object saying why, naming the setting and sudo; the
// bands lesson, which needs no data plane, runs and passes on the
// control plane alone, as docs/scenarios.md says. (The user namespace is
// disabled as in TestRootlessDisabled: inside one of the test's own.)
func TestRunRootlessDisabled(t *testing.T) {
	requireMachineRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: no setpriv (util-linux) here to switch to an unprivileged user")
	}
	u := newUnprivileged(t)
	run := func(args ...string) (string, int) {
		t.Helper()
		out, err := u.withoutUserNamespaces(args...).Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			out = append(out, ee.Stderr...)
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}

	out, code := run("run", "--json", "--name", "rd"+randName(6), "basics")
	if code != exitUnsupported {
		t.Errorf("nplab run --json basics without root or user namespaces: exit %d, want %d:\n%s", code, exitUnsupported, out)
	}
	var rep struct {
		Status, Reason string
	}
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&rep); err != nil {
		t.Fatalf("no JSON object on stdout: %v\n%s", err, out)
	}
	if rep.Status != "unsupported" || !strings.HasPrefix(rep.Reason, "this machine cannot run this scenario: it needs a lab of real namespaces: ") {
		t.Errorf("status %q, reason %q; want unsupported, for want of the data plane", rep.Status, rep.Reason)
	}
	for _, want := range []string{"user.max_user_namespaces = 0", "sudo"} {
		if !strings.Contains(rep.Reason, want) {
			t.Errorf("the reason does not say %q: %s", want, rep.Reason)
		}
	}
	if last := out[strings.LastIndex(strings.TrimRight(out, "\n"), "\n")+1:]; !strings.HasPrefix(last, "CANNOT RUN HERE: ") || strings.Count(last, "\n") != 1 {
		t.Errorf("the last line %q is not the one-line reason", last)
	}

	out, code = run("run", "--name", "rd"+randName(6), "bands")
	if code != exitPass || !strings.HasSuffix(out, "PASS: all 8 steps passed\n") {
		t.Errorf("nplab run bands without root or user namespaces: exit %d, want 0:\n%s", code, out)
	}
}
