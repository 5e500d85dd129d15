package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	goldenfile "github.com/nplab/nplab/internal/golden"
)

// runCLI runs nplab in-process with args, as a student would from a shell.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
	default:
		errOut.WriteString("error: " + err.Error() + "\n")
		code = 1
	}
	return out.String(), errOut.String(), code
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("lab", "testdata", "validate", name+".golden"), []byte(got))
}

func TestValidate(t *testing.T) {
	docs := func(name string) string { return filepath.Join("lab", "testdata", "docs", name) }
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"docs-in-order", []string{
			"-f", docs("frontend-service.yaml"),
			"-f", docs("backend-service.yaml"),
			"-f", docs("backend-service-300081.yaml"),
			"-f", docs("nodeport-service.yaml"),
			"-f", docs("backend-pods.yaml"),
			"-f", docs("backend-service-misindented.yaml"),
		}, 1},
		{"one-rejection", []string{"-f", docs("frontend-service.yaml"), "-f", docs("backend-service.yaml")}, 1},
		{"misindented-alone", []string{"-f", docs("backend-service-misindented.yaml")}, 1},
		{"default-twice", []string{"-f", "lab/testdata/default.yaml", "-f", "lab/testdata/default.yaml", "--nodes", "2"}, 0},
		{"range-full", []string{"-f", "lab/testdata/two-services.yaml", "--service-node-port-range", "30000"}, 1},
		{"missing-file", []string{"-f", "no-such.yaml"}, 1},
		// An unknown field and a wrong type are the API server's strict
		// decoding errors, each for its own object; the syntax error of a
		// later file still comes first, as kubectl reads every file first.
		{"decode-errors", []string{"-f", "lab/testdata/validate/b1.yaml", "-f", docs("backend-service-misindented.yaml")}, 1},
		{"bad-range", []string{"-f", "lab/testdata/default.yaml", "--service-node-port-range", "32767-30000"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "--seed", "7"}, tt.args...)
			stdout, stderr, code := runCLI(t, args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d\nstderr: %s", code, tt.code, stderr)
			}
			goldenFile(t, tt.name+".stdout", stdout)
			goldenFile(t, tt.name+".stderr", stderr)
		})
	}
}
