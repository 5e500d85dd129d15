package lab

import (
	"strings"
	"testing"
)

// TestFailedSaveWarnsOnceInOrder: when the lab's store stops taking
// writes (a full disk; here, closed under it), the change still applies
// in memory, and one Warning says the objects are no longer saved, in the
// history right after the change, before Apply returns: not from a
// goroutine that may outlive the lab.
func TestFailedSaveWarnsOnceInOrder(t *testing.T) {
	l, err := New(Config{Name: "savefail", Nodes: 1, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.flushStore() // no fsync of the first objects is left to fail first
	if err := l.persist.st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		for _, r := range l.Apply(name+".yaml", []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: "+name+"\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n")) {
			if r.Err != nil {
				t.Fatalf("apply %s: %v (the lab goes on in memory)", name, r.Err)
			}
		}
	}
	var warnings []string
	for _, e := range l.Events() {
		if e.Type == EventWarning && strings.Contains(e.Message, "no longer saved") {
			warnings = append(warnings, e.Message)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "services/specs/default/a") {
		t.Errorf("warnings %q, want one, naming the first Service not saved", warnings)
	}
	if got := l.State().Services; len(got) < 3 {
		t.Errorf("%d Services in the state, want kubernetes, a and b", len(got))
	}
}
