package apps

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestInitFromContainer(t *testing.T) {
	tests := []struct {
		cmd, args []string
		d         time.Duration
		code      int32
		note      string
	}{
		{nil, nil, DefaultInitRun, 0, "succeeds"},
		{[]string{"sh", "-c", "until nslookup db; do echo waiting; done"}, nil, DefaultInitRun, 0, "succeeds"},
		{[]string{"sh", "-c", "sleep 5"}, nil, 5 * time.Second, 0, "exits with code 0"},
		{[]string{"sleep"}, []string{"3"}, 3 * time.Second, 0, "exits with code 0"},
		{[]string{"sh", "-c", "echo migrating; sleep 2; exit 3"}, nil, 2 * time.Second, 3, "exits with code 3"},
		{[]string{"false"}, nil, DefaultInitRun, 1, "exits with code 1"},
		{[]string{"sh", "-c", "sleep 99999"}, nil, maxInitRun, 0, "exits with code 0"},
		{[]string{"sh", "-c", "falsehood"}, nil, DefaultInitRun, 0, "succeeds"},
	}
	for _, tt := range tests {
		r := InitFromContainer(corev1.Container{Name: "i", Image: "busybox", Command: tt.cmd, Args: tt.args})
		if r.Duration != tt.d || r.Code != tt.code || !strings.Contains(r.Note, tt.note) || !strings.Contains(r.Note, "nplab runs no images") {
			t.Errorf("%q %q: %+v; want %v, code %d, note with %q", tt.cmd, tt.args, r, tt.d, tt.code, tt.note)
		}
		if (tt.code != 0) != (r.Message != "") {
			t.Errorf("%q: message %q", tt.cmd, r.Message)
		}
	}
}

// A program that refuses its arguments exits as it would.
func TestRefusesToStart(t *testing.T) {
	tests := []struct {
		c    corev1.Container
		exit *Exit
	}{
		{corev1.Container{Name: "e", Image: "hashicorp/http-echo"}, &Exit{127, "Missing -text option!"}},
		{corev1.Container{Name: "e", Image: "hashicorp/http-echo", Args: []string{"-text=hi"}}, nil},
		{corev1.Container{Name: "n", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"netexec", "--http-port=web"}},
			&Exit{1, `Error: invalid argument "web" for "--http-port" flag: strconv.ParseInt: parsing "web": invalid syntax`}},
		{corev1.Container{Name: "n", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"netexec", "--http-port=8080"}}, nil},
	}
	for _, tt := range tests {
		s, _ := FromContainer(tt.c)
		if (s.Exit == nil) != (tt.exit == nil) || (s.Exit != nil && *s.Exit != *tt.exit) {
			t.Errorf("%s %v: Exit %+v, want %+v", tt.c.Image, tt.c.Args, s.Exit, tt.exit)
		}
	}
}
