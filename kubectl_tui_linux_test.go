//go:build linux

package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTUIServesKubectl: the terminal UI shows the kubectl hint once its
// lab runs, and `nplab kubectl` in another terminal drives that lab: it
// lists the pods on the screen, and a pod it deletes leaves the screen.
func TestTUIServesKubectl(t *testing.T) {
	lab := "k" + randName(5)
	u := startTmux(t, lab, "tui", "free")
	// One capture can catch a frame half drawn: wait for a whole one.
	s := u.waitScreen("every pod ready and the kubectl hint", 90*time.Second, func(s string) bool {
		return screenAllReady(s) && strings.Contains(s, "nplab kubectl get svc")
	})
	kubectl := func(args ...string) string {
		t.Helper()
		c := nplabCmd(append([]string{"kubectl"}, args...)...)
		c.Env = append(c.Env, "NPLAB_LAB="+lab, "HOME="+t.TempDir())
		b, err := c.CombinedOutput()
		out := raceNotice.ReplaceAllString(string(b), "")
		if err != nil {
			t.Fatalf("nplab kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	names := strings.Fields(kubectl("get", "pods", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(names) != 3 {
		t.Fatalf("nplab kubectl get pods against the UI's lab: %v", names)
	}
	for _, n := range names {
		if !strings.Contains(s, n) {
			t.Errorf("kubectl lists pod %s, the UI does not show it:\n%s", n, s)
		}
	}
	kubectl("delete", "pod", names[0])
	inTopology := regexp.MustCompile(`[●○◌✗…]\s+` + regexp.QuoteMeta(names[0]) + `\s`)
	u.waitScreen(names[0]+" gone from the topology", 60*time.Second, func(s string) bool {
		return !inTopology.MatchString(s) && screenAllReady(s)
	})
	u.keys("q")
	if code := u.paneDead(60 * time.Second); code != 0 {
		t.Errorf("q: exit status %d", code)
	}
	u.noNamespacesLeft()
}
