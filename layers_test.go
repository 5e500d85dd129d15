package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFrontEndsUseTheLabAPI: the front ends — the CLI (this package), the
// terminal UI and the scenario runner — import nothing below package lab's
// public API: not the data plane (nodes) nor the network (netsim). They
// link it only through lab/dataplane, which registers it (design.md, "The
// layers"). Every file counts, whatever its build constraints.
func TestFrontEndsUseTheLabAPI(t *testing.T) {
	below := []string{"github.com/nplab/nplab/nodes", "github.com/nplab/nplab/netsim"}
	for _, dir := range []string{".", "tui", "scenarios"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, b := range below {
					if path == b || strings.HasPrefix(path, b+"/") {
						t.Errorf("%s imports %s: a front end uses package lab's API only", name, path)
					}
				}
			}
		}
	}
}
