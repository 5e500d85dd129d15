package testenv

import (
	"testing"
)

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		env, feature string
		want         bool
	}{
		{"", "sctp", false},
		{"sctp", "sctp", true},
		{"root, sctp,netem", "netem", true},
		{"root,sctpx", "sctp", false},
	} {
		t.Setenv("NPLAB_REQUIRE", tc.env)
		if got := Required(tc.feature); got != tc.want {
			t.Errorf("NPLAB_REQUIRE=%q: Required(%q) = %v, want %v", tc.env, tc.feature, got, tc.want)
		}
	}
}
