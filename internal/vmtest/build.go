package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Package is a Go package of the module whose tests the VM runs.
type Package struct {
	ImportPath string // "github.com/nplab/nplab/netsim"
	Dir        string // directory relative to the module root, "netsim" ("." for the root)
}

// Binary is a static test binary built from a Package.
type Binary struct {
	Package
	Path string // host path of the binary
}

// ModuleRoot returns the directory of the go.mod that dir is in.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod in %s or above", dir)
		}
	}
}

// ListTestPackages returns the packages matching patterns (relative to
// modRoot, "./..." for the whole module) that have test files, in go list's
// order, leaving out those whose import path is in skip. Equivalent to:
//
//	go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' ./...
func ListTestPackages(ctx context.Context, modRoot string, patterns []string, skip ...string) ([]Package, error) {
	args := append([]string{"list", "-e", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}"}, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = modRoot
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w%s", strings.Join(patterns, " "), err, stderrOf(err))
	}
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		importPath, dir, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || skipped[importPath] {
			continue
		}
		rel, err := filepath.Rel(modRoot, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("package %s is outside the module (%s)", importPath, dir)
		}
		pkgs = append(pkgs, Package{ImportPath: importPath, Dir: rel})
	}
	return pkgs, nil
}

// BuildError is a package whose test binary did not build; Output is the
// compiler's.
type BuildError struct {
	Package Package
	Output  string
	Err     error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("could not build the test binary of %s: %v\n%s", e.Package.ImportPath, e.Err, e.Output)
}

func (e *BuildError) Unwrap() error { return e.Err }

// BuildTestBinaries compiles each package's tests into a static binary in
// outDir, two at a time. Equivalent, per package, to:
//
//	CGO_ENABLED=0 go test -c -ldflags=-s\ -w -o OUT/<dir>.test ./<dir>
//
// Static, because the VM has no C library; stripped, because the binaries
// live in the VM's memory. It returns the binaries that built, in the
// packages' order, and a *BuildError for each that did not, so one broken
// package does not stop the others from being tested.
func BuildTestBinaries(ctx context.Context, modRoot string, pkgs []Package, outDir string) ([]Binary, []error) {
	results := make([]Binary, len(pkgs))
	errs := make([]error, len(pkgs))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := strings.ReplaceAll(p.Dir, string(filepath.Separator), "_")
			if name == "." {
				name = "root"
			}
			out := filepath.Join(outDir, name+".test")
			cmd := exec.CommandContext(ctx, "go", "test", "-c", "-ldflags=-s -w", "-o", out, "./"+filepath.ToSlash(p.Dir))
			cmd.Dir = modRoot
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if output, err := cmd.CombinedOutput(); err != nil {
				errs[i] = &BuildError{Package: p, Output: string(output), Err: err}
				return
			}
			if _, err := os.Stat(out); err != nil {
				// go test -c writes nothing for a package without test functions.
				errs[i] = &BuildError{Package: p, Err: errors.New("go test -c wrote no binary"), Output: ""}
				return
			}
			results[i] = Binary{Package: p, Path: out}
		}()
	}
	wg.Wait()
	var bins []Binary
	var failed []error
	for i := range pkgs {
		if errs[i] != nil {
			failed = append(failed, errs[i])
		} else {
			bins = append(bins, results[i])
		}
	}
	return bins, failed
}
