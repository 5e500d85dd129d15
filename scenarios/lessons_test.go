package scenarios

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/lab"
)

// Every built-in lesson loads, and its control-plane checks (exact API
// errors, allocations, object state) pass on lab.New, with no root; what
// needs the data plane is skipped there. (TestLessonsFakeDataPlane runs it
// on a model; the CLI's TestRunLessonsDataPlane, as root, for real: this
// package does not link the data plane.)
func TestLessonsControlPlane(t *testing.T) {
	for _, name := range Lessons {
		t.Run(name, func(t *testing.T) {
			sc, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Name != name || sc.Summary == "" || sc.Text == "" {
				t.Errorf("name %q, summary %q, text %d bytes: want the name %q, a summary and a text", sc.Name, sc.Summary, len(sc.Text), name)
			}
			rep := Run(context.Background(), sc, Options{ControlPlaneOnly: true, Seed: 1,
				Probe: func(Need) error { return nil }})
			var out bytes.Buffer
			_ = WriteText(&out, rep)
			if rep.Status != Pass {
				t.Errorf("status %s, want pass:\n%s", rep.Status, out.String())
			}
			ran := 0
			for _, st := range rep.Steps {
				if st.Status == Pass {
					ran++
				}
			}
			t.Logf("%d of %d steps ran on the control plane alone\n%s", ran, len(rep.Steps), out.String())
		})
	}
}

// Every built-in lesson passes on an in-memory model of the data plane
// (fakePlane): the runner's traffic, faults and checks end to end, with
// no root. SCTP is "not supported" there, so protocols ends unsupported,
// naming the sctp need.
func TestLessonsFakeDataPlane(t *testing.T) {
	for _, name := range Lessons {
		t.Run(name, func(t *testing.T) {
			sc, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			rep := Run(context.Background(), sc, Options{Start: startFake, Seed: 1,
				Probe: func(Need) error { return nil }})
			var out bytes.Buffer
			_ = WriteText(&out, rep)
			want := Pass
			if name == "protocols" {
				want = Unsupported
			}
			if rep.Status != want {
				t.Errorf("status %s, want %s:\n%s", rep.Status, want, out.String())
			}
			if want == Unsupported && !strings.Contains(rep.Reason, "it needs sctp") {
				t.Errorf("reason %q does not name the sctp need", rep.Reason)
			}
		})
	}
}

// Grading collision over the in-memory data plane, traffic included: a
// correct backend Service passes; the docs' backend on 30080 fails with the
// exact error and the hint; one that selects the wrong pods is refused and
// reaches nothing.
func TestCheckCollisionFakeDataPlane(t *testing.T) {
	sc, err := Builtin("collision")
	if err != nil {
		t.Fatal(err)
	}
	svc := func(selector, nodePort string) lab.File {
		return lab.File{Name: "backend-service.yaml", Data: []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: backend-service\nspec:\n  type: NodePort\n  selector:\n    app: " + selector + "\n  ports:\n  - port: 80\n    targetPort: 8080\n" + nodePort)}
	}
	for _, tt := range []struct {
		name     string
		file     lab.File
		status   Status
		observed string
	}{
		{"correct", svc("backend", ""), Pass, ""},
		{"docs' 30080", svc("backend", "    nodePort: 30080\n"), Fail, "provided port is already allocated"},
		{"wrong selector", svc("back-end", "    nodePort: 30081\n"), Fail, "no answer at all: 30 requests: 30 refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := Run(context.Background(), sc, Options{Start: startFake, Seed: 1, Check: true, Student: []lab.File{tt.file},
				Probe: func(Need) error { return nil }})
			var out bytes.Buffer
			_ = WriteText(&out, rep)
			if rep.Status != tt.status || !strings.Contains(out.String(), tt.observed) {
				t.Errorf("status %s, want %s with %q observed:\n%s", rep.Status, tt.status, tt.observed, out.String())
			}
			if tt.status == Fail && !strings.Contains(out.String(), "hint: The Service must be named backend-service") {
				t.Errorf("no hint:\n%s", out.String())
			}
		})
	}
}

// Every task of every lesson has checks of its own that fail until the
// student has done the work, and pass once it is done. In a terminal UI
// (Options.Interactive) a task applies nothing: a task whose step checked
// nothing (its checks all in a later step) would pass on `c` before the
// student did anything, and Session.Await would return at once. Here a
// student goes through each lesson: at each task, the check fails; the
// student applies the solution in the lab; Await sees the task pass.
func TestLessonTasksNeedTheStudent(t *testing.T) {
	for _, name := range Lessons {
		t.Run(name, func(t *testing.T) {
			sc, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			s, err := NewSession(ctx, sc, Options{Interactive: true, Start: startFake, Seed: 1,
				Probe: func(Need) error { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := 0; s.More(); i++ {
				s.Next(ctx)
				st := sc.Steps[i]
				if st.Task == nil {
					continue
				}
				r := s.Recheck(ctx, i)
				var out bytes.Buffer
				WriteStep(&out, r)
				if r.Status != Fail || len(r.Checks) == 0 {
					t.Errorf("step %d: task %q is done before the student did anything (%s, %d checks):\n%s", i+1, st.Name, r.Status, len(r.Checks), out.String())
				}
				for _, res := range s.Lab().ApplyFiles(files(st.Task.Solution)...) {
					if res.Err != nil {
						t.Fatalf("step %d: the solution: %v", i+1, res.Err)
					}
				}
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				r = s.Await(actx, i, 10*time.Millisecond)
				cancel()
				if r.Status != Pass {
					out.Reset()
					WriteStep(&out, r)
					t.Errorf("step %d: task %q does not pass once the student applied its solution:\n%s", i+1, st.Name, out.String())
				}
			}
		})
	}
}
