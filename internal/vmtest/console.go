package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Result is one package's verdict in the VM.
type Result struct {
	Package string // import path
	Passed  bool
}

// Report is what a VM run printed on its console.
type Report struct {
	Kernel  string   // the kernel release the VM booted, from the NPLAB-VMTEST-BOOTED line
	Results []Result // one per package marker, in the order printed
	Done    bool     // the final marker was printed: every binary ran
	Passed  bool     // the final marker said PASS
	Warn    []string // NPLAB-VMTEST-WARN lines (a module that did not load)
	// Modprobe lists the modules the kernel asked for on demand and did not
	// get (NPLAB-VMTEST-MODPROBE lines): candidates for DefaultModules.
	Modprobe []string

	// ExitCode is qemu's exit status, set by Boot: 1 when the guest reported
	// success through isa-debug-exit, 3 for failure, anything else if the
	// guest never got there (crash, timeout, poweroff).
	ExitCode int
}

// Result returns the verdict for the package with this import path.
func (r *Report) Result(pkg string) (Result, bool) {
	for _, res := range r.Results {
		if res.Package == pkg {
			return res, true
		}
	}
	return Result{}, false
}

// Check returns nil when the run finished, every package in want has a PASS
// marker, and qemu exited with the guest's success code; otherwise an error
// naming what went wrong.
func (r *Report) Check(want []string) error {
	var problems []string
	for _, pkg := range want {
		res, ok := r.Result(pkg)
		switch {
		case !ok:
			problems = append(problems, pkg+": no result (the VM stopped before it ran)")
		case !res.Passed:
			problems = append(problems, pkg+": FAIL")
		}
	}
	if !r.Done {
		problems = append(problems, "the VM did not finish (no NPLAB-VMTEST-DONE line)")
	} else if !r.Passed {
		problems = append(problems, "the VM reported NPLAB-VMTEST-DONE FAIL")
	}
	if r.ExitCode != 1 && r.Done && r.Passed {
		problems = append(problems, fmt.Sprintf("qemu exited with status %d, want 1 (guest success through isa-debug-exit)", r.ExitCode))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("VM test failed:\n\t%s", strings.Join(problems, "\n\t"))
}

var (
	markerRE = regexp.MustCompile(`NPLAB-VMTEST (\S+) (PASS|FAIL)\b`)
	doneRE   = regexp.MustCompile(`NPLAB-VMTEST-DONE (PASS|FAIL)\b`)
	bootedRE = regexp.MustCompile(`NPLAB-VMTEST-BOOTED (\S+)`)
	warnRE   = regexp.MustCompile(`NPLAB-VMTEST-WARN (.*)$`)
	probeRE  = regexp.MustCompile(`NPLAB-VMTEST-MODPROBE (\S+)`)
	// escapeRE matches terminal escape sequences the firmware prints.
	escapeRE = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_]|c)`)
)

// ParseConsole reads a VM's serial console until EOF and returns what its
// marker lines say. Lines end in "\r\n"; markers are found anywhere in a line,
// since the first line may carry escape codes and kernel messages may share
// a line with test output. Each cleaned line (no "\r", no escape codes) is
// passed to each, if not nil, as it arrives.
func ParseConsole(r io.Reader, each func(line string)) (*Report, error) {
	rep := &Report{}
	br := bufio.NewReader(r)
	for {
		raw, err := br.ReadString('\n')
		if raw != "" {
			line := CleanLine(raw)
			if each != nil {
				each(line)
			}
			rep.add(line)
		}
		if err == io.EOF {
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
	}
}

// CleanLine removes carriage returns, the line end and terminal escape
// sequences from a console line.
func CleanLine(raw string) string {
	line := strings.TrimRight(raw, "\r\n")
	line = escapeRE.ReplaceAllString(line, "")
	return strings.ReplaceAll(line, "\r", "")
}

func (rep *Report) add(line string) {
	if m := doneRE.FindStringSubmatch(line); m != nil {
		rep.Done = true
		rep.Passed = m[1] == "PASS"
		return
	}
	if m := markerRE.FindStringSubmatch(line); m != nil {
		rep.Results = append(rep.Results, Result{Package: m[1], Passed: m[2] == "PASS"})
		return
	}
	if m := bootedRE.FindStringSubmatch(line); m != nil {
		rep.Kernel = m[1]
		return
	}
	if m := warnRE.FindStringSubmatch(line); m != nil {
		rep.Warn = append(rep.Warn, m[1])
		return
	}
	if m := probeRE.FindStringSubmatch(line); m != nil {
		rep.Modprobe = append(rep.Modprobe, m[1])
	}
}
