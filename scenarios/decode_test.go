package scenarios

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/internal/golden"
)

// Every file under testdata/invalid gives errors naming the file, the line
// and the key; testdata/invalid/NAME.golden holds them.
func TestInvalidScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/invalid/*.yaml")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			sc, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) = %v, want an error", f, sc.Name)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not a *scenarios.Error", err, err)
			}
			for _, e := range err.(Errors) {
				if e.File != f || e.Line < 1 {
					t.Errorf("error %q: file %q line %d, want file %q and a line", e, e.File, e.Line, f)
				}
			}
			golden.Check(t, filepath.Join("testdata", "invalid", name+".golden"), []byte(err.Error()+"\n"))
		})
	}
}

// A valid scenario decodes to what testdata/valid/NAME.golden shows, with
// its defaults filled in and its manifests read.
func TestValidScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			sc, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, ms := range []Manifests{sc.Manifests, sc.Steps[2].Task.Solution} {
				for _, m := range ms {
					if len(m.Data) == 0 {
						t.Errorf("manifest %q was not read", m.Name)
					}
				}
			}
			js, err := json.MarshalIndent(sc, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "valid", name+".golden.json"), append(js, '\n'))
		})
	}
}

func TestParseTable(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // the error, or "" for none
	}{
		{"minimal", "name: a\nsteps:\n  - text: hello\n", ""},
		{"step name from text", "name: a\nsteps:\n  - text: |\n      first line\n      second\n", ""},
		{"no steps", "name: a\n", "s.yaml:1: steps: a scenario needs at least one step"},
		{"no name", "steps: [{text: x}]\n", "s.yaml:1: name: a scenario needs a name (lower case letters, digits and '-')"},
		{"top-level list", "- a\n", "s.yaml:1: want a mapping, got a list"},
		{"unknown top key", "name: a\nstep: []\nsteps: [{text: x}]\n", "s.yaml:2: step: unknown key (known keys: cluster, manifests, name, needs, steps, summary, text, title)"},
		{"count too big", "name: a\nsteps:\n- text: x\n  traffic: {to: node-1:30080, count: 20000}\n", "s.yaml:4: steps[0].traffic.count: 20000: a traffic step sends 1 to 10000 requests"},
		{"node target without port", "name: a\nsteps:\n- text: x\n  traffic: {to: node-1}\n", `s.yaml:4: steps[0].traffic.to: "node-1": a node target needs a port: node-1:30080, or node-1:SERVICE for a Service's nodePort`},
		{"service target", "name: a\nsteps:\n- text: x\n  traffic: {to: 'web:80', protocol: udp}\n", ""},
		{"node service target", "name: a\nsteps:\n- text: x\n  traffic: {to: 'node-*:web'}\n", ""},
		{"ip target", "name: a\nsteps:\n- text: x\n  traffic: {to: '10.96.0.10:80'}\n", ""},
		{"bad port", "name: a\nsteps:\n- text: x\n  traffic: {to: 'node-1:70000'}\n", `s.yaml:4: steps[0].traffic.to: "node-1:70000": port 70000 is not 1-65535`},
		{"inline without name", "name: a\nsteps:\n- text: x\n  apply: {inline: 'kind: Pod'}\n", ""},
		{"manifest both", "name: a\nsteps:\n- text: x\n  apply: {inline: 'kind: Pod', file: a.yaml}\n", "s.yaml:4: steps[0].apply: a manifest has exactly one of file and inline"},
		{"file without dir", "name: a\nsteps:\n- text: x\n  apply: a.yaml\n", `s.yaml:4: steps[0].apply: manifest "a.yaml": this scenario was given without its directory, so only inline manifests work`},
		{"delete ref", "name: a\nsteps:\n- text: x\n  delete: svc/web\n", ""},
		{"delete bad ref", "name: a\nsteps:\n- text: x\n  delete: web\n", `s.yaml:4: steps[0].delete: want KIND/NAME (service/web, pod/backend, deployment/web), got "web"`},
		{"delete unknown kind", "name: a\nsteps:\n- text: x\n  delete: job/web\n", `s.yaml:4: steps[0].delete: unknown kind "job" (known: deployment, pod, service)`},
		{"pod fault selector", "name: a\nsteps:\n- text: x\n  fault: {kind: stop-app, selector: {app: web}, onNode: node-2}\n", ""},
		{"pod fault no pod", "name: a\nsteps:\n- text: x\n  fault: {kind: stop-app}\n", "s.yaml:4: steps[0].fault.pod: a stop-app fault names its pod: pod NAME, or selector (with onNode or all)"},
		{"bad loss", "name: a\nsteps:\n- text: x\n  fault: {kind: impair, node: node-1, loss: 150%}\n", `s.yaml:4: steps[0].fault.loss: want a percentage from 0% to 100%, got "150%"`},
		{"bad rate", "name: a\nsteps:\n- text: x\n  fault: {kind: impair, node: node-1, rate: fast}\n", `s.yaml:4: steps[0].fault.rate: want a rate such as 8000bit, 500kbit or 1mbit, got "fast"`},
		{"bad duration", "name: a\nsteps:\n- text: x\n  wait: {timeout: soon}\n", `s.yaml:4: steps[0].wait.timeout: want a duration such as 500ms or 10s, got "soon"`},
		{"ready count for pod", "name: a\nsteps:\n- text: x\n  wait: {until: [{pod: web, ready: 2}]}\n", "s.yaml:4: steps[0].wait.until[0].ready: a pod is ready: true or false"},
		{"unknown need", "name: a\nneeds: [gpu]\nsteps: [{text: x}]\n", `s.yaml:2: needs[0]: unknown need "gpu" (known: dataplane, netem, sctp)`},
		{"task without solution", "name: a\nsteps:\n- text: x\n  task: {hints: [a]}\n", "s.yaml:4: steps[0].task.solution: a task needs a solution, so that `nplab run` proves it can be solved"},
		{"bool expected", "name: a\nsteps:\n- text: x\n  traffic: {to: node-1:1}\n  expect: {sticky: yes please}\n", `s.yaml:5: steps[0].expect.sticky: want true or false, got "yes please"`},
		{"results key", "name: a\nsteps:\n- text: x\n  traffic: {to: node-1:1}\n  expect: {results: {fine: 3}}\n", "s.yaml:5: steps[0].expect.results.fine: unknown result (known: dropped, error, ok, refused, reset, timed out)"},
		{"empty apply", "name: a\nsteps:\n- text: x\n  apply: []\n", "s.yaml:4: steps[0].apply: apply needs at least one manifest"},
		{"null apply", "name: a\nsteps:\n- text: x\n  apply:\n", "s.yaml:4: steps[0].apply: apply needs at least one manifest"},
		{"empty delete", "name: a\nsteps:\n- text: x\n  delete: []\n", "s.yaml:4: steps[0].delete: delete needs KIND/NAME or a manifest"},
		{"null traffic", "name: a\nsteps:\n- text: x\n  traffic:\n", "s.yaml:4: steps[0].traffic: want a value, got nothing"},
		{"flow sequence key", "name: a\nsteps:\n- text: x\n  {a: b}: c\n", "s.yaml:4: steps[0]: a key must be a single value, got a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tt.src), nil)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Parse:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// FuzzParse: no input makes Parse panic or take over 2s, and every error
// names the file and a line.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid", "builtin"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("name: a\nsteps: [{text: x, traffic: {to: 'node-*:web'}, expect: {reaches: {selector: {app: web}}}}]\n"))
	f.Add([]byte("{{{"))
	f.Add([]byte("a: &x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Every input must answer within 2s (issue 13): run Parse with a
		// timer and fail with the input if it is still running.
		done := make(chan error, 1)
		go func() {
			_, err := Parse("fuzz.yaml", data, func(string) ([]byte, error) { return []byte("kind: Pod"), nil })
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Parse took over 2s on %q", data)
		}
		if err == nil {
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error %T %v is not scenarios.Errors", err, err)
		}
		for _, e := range es {
			if e.File != "fuzz.yaml" || e.Line < 1 {
				t.Fatalf("error %q names no line", e)
			}
		}
	})
}

// The complete example of docs/scenarios.md is a valid scenario.
func TestDocsExample(t *testing.T) {
	md, err := os.ReadFile("../docs/scenarios.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(md), "## A complete example\n\n```yaml\n")
	src, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("docs/scenarios.md has no complete example")
	}
	var read []string
	sc, err := Parse("docs-example.yaml", []byte(src), func(name string) ([]byte, error) {
		read = append(read, name)
		return []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Steps) != 5 || len(read) != 3 {
		t.Errorf("%d steps and %d files read (%v), want 5 and 3", len(sc.Steps), len(read), read)
	}
}
