package scenarios

import (
	"strings"
	"testing"
)

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"basic", "basics"},
		{"colision", "collision"},
		{"Collision", "collision"},
		{"readyness", "readiness"},
		{"traffic", "traffic-policy"},
		{"every-nodes", "every-node"},
		{"ownport", "own-port"},
		{"kubectl", ""},
		{"xy", ""},
	} {
		if got := Suggest(tc.in); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	_, err := Open("basic")
	if err == nil || !strings.Contains(err.Error(), "did you mean basics?") {
		t.Errorf("Open(basic) = %v, want a did-you-mean basics", err)
	}
	_, err = BuiltinSource("colision")
	if err == nil || !strings.Contains(err.Error(), "did you mean collision?") {
		t.Errorf("BuiltinSource(colision) = %v, want a did-you-mean collision", err)
	}
}
