package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/scenarios"
)

func init() { subcommands = append(subcommands, newRunCmd) }

// The exit statuses of `nplab run` and `nplab check`.
const (
	exitPass        = 0 // every check passed
	exitFailed      = 1 // a check failed
	exitInvalid     = 2 // the scenario is invalid (file, line, key), or the command line
	exitUnsupported = 3 // this machine cannot run it (root, SCTP, netem)
)

// scenarioOptions are the flags run and check share.
type scenarioOptions struct {
	json             bool
	junit            string
	name             string
	seed             uint64
	controlPlaneOnly bool
	probeScale       float64
}

func (o *scenarioOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "print one JSON object: the scenario, its steps and their checks with what was observed")
	f.StringVar(&o.junit, "junit", "", "also write the result as a JUnit XML file")
	f.StringVar(&o.name, "name", "", `lab name (namespaces are nplab-<name>-<host>); default "s-" and the scenario's name`)
	f.Uint64Var(&o.seed, "seed", 0, "seed the random allocations (clusterIPs, nodePorts, pod names); 0 means random")
	f.BoolVar(&o.controlPlaneOnly, "control-plane-only", false, "run on the control plane alone (no root): traffic and data-plane faults are skipped")
	f.Float64Var(&o.probeScale, "probe-scale", 0, "multiply readiness probe times (tests use 0.05); 0 means real time")
	_ = f.MarkHidden("seed")
	_ = f.MarkHidden("control-plane-only")
	_ = f.MarkHidden("probe-scale")
}

// check validates the flags before anything is printed or built.
func (o *scenarioOptions) check() error {
	if o.name != "" {
		if err := checkLabName(o.name); err != nil {
			return usageError{err}
		}
	}
	return nil
}

func newRunCmd() *cobra.Command {
	o := &scenarioOptions{}
	cmd := &cobra.Command{
		Use:   "run SCENARIO",
		Short: "Run a scenario headless: each step with ✓ or ✗, tasks solved by the scenario's solutions",
		Long: `run runs a scenario (a built-in name, see "nplab list", or a scenario file)
from start to end without a terminal UI: it builds the lab, applies the
manifests, and runs each step, sending traffic and injecting faults. A task
step applies the scenario's own solution, so a passing run proves that the
lesson can be solved. Each step is printed with ✓ or ✗, and under a failed
check what was expected and what was observed.

Exit status, always with a one-line reason:
  0  every check passed
  1  a check failed
  2  the scenario is invalid (file, line and key), or the command line is
     (a wrong flag, no scenario named)
  3  this machine cannot run it (not root, and no user namespace allowed
     either; no SCTP or netem where a step needs them, naming the missing
     module)

Without root, run (and check) runs the lab in a user namespace of its own,
as "nplab up" does.`,
		Example: `  nplab run collision
  nplab run my-lesson.yaml --json
  nplab run basics --junit basics.xml`,
		Args: scenarioArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return runScenario(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o, nil)
		},
	}
	o.addFlags(cmd)
	usageStatus(cmd)
	return cmd
}

// runScenario runs (student == nil) or grades a scenario, prints the
// report and returns the exit status as an exitError.
func runScenario(ctx context.Context, stdout, stderr io.Writer, arg string, o *scenarioOptions, student []lab.File) error {
	sc, err := scenarios.Open(arg)
	if err == nil && student != nil && !hasTask(sc) {
		// Nothing would grade the student's files: say so rather than pass.
		err = fmt.Errorf("%s has no task step, so nplab check has nothing to grade your files with (nplab list: collision, docs-examples and others have tasks)", sc.Name)
	}
	if err != nil {
		// Every error (file:line: key: what), then the one-line reason;
		// --json and --junit say the same.
		rep := scenarios.InvalidReport(arg, err)
		if student != nil {
			rep.Mode = "check"
		}
		for _, e := range rep.Errors {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintln(stderr, rep.Reason)
		if o.json {
			if err := scenarios.WriteJSON(stdout, rep); err != nil {
				return err
			}
		}
		if o.junit != "" {
			if err := writeJUnit(o.junit, rep); err != nil {
				fmt.Fprintf(stderr, "error: writing %s: %v\n", o.junit, err)
			}
		}
		return exitError{exitInvalid}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C and kill stop the run; the lab is removed either way.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A closed output pipe must not kill the run before the lab is removed.
	signal.Ignore(syscall.SIGPIPE)

	opts := scenarios.Options{
		Check: student != nil, Student: student,
		LabName: o.name, Seed: o.seed, ControlPlaneOnly: o.controlPlaneOnly, ProbeScale: o.probeScale,
	}
	if noUserNamespace != nil {
		// Not root, and no user namespace to be root in (rootless.go):
		// the data plane is what this machine lacks, and why.
		why := strings.Join(strings.Fields(noUserNamespace.Error()), " ")
		opts.Probe = func(n scenarios.Need) error {
			if n == scenarios.NeedDataPlane {
				return errors.New(why)
			}
			return scenarios.Probe(n)
		}
	}
	if !o.json {
		fmt.Fprintf(stdout, "%s: %s\n", sc.Name, sc.Title)
		opts.OnStep = func(r scenarios.StepResult) { scenarios.WriteStep(stdout, r) }
	}
	rep := scenarios.Run(ctx, sc, opts)
	if o.json {
		if err := scenarios.WriteJSON(stdout, rep); err != nil {
			return err
		}
	}
	if o.junit != "" {
		if err := writeJUnit(o.junit, rep); err != nil {
			fmt.Fprintf(stderr, "error: writing %s: %v\n", o.junit, err)
		}
	}
	// The one-line reason: on stdout after the steps, or on stderr
	// beside the JSON.
	line := fmt.Sprintf("%s: %s", map[scenarios.Status]string{
		scenarios.Pass: "PASS", scenarios.Fail: "FAIL", scenarios.Unsupported: "CANNOT RUN HERE",
	}[rep.Status], rep.Reason)
	if o.json {
		fmt.Fprintln(stderr, line)
	} else {
		fmt.Fprintln(stdout, line)
	}
	if code := rep.ExitCode(); code != exitPass {
		return exitError{code}
	}
	return nil
}

func writeJUnit(file string, rep *scenarios.Report) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := scenarios.WriteJUnit(f, rep); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// hasTask reports whether a scenario has a task step (what check grades).
func hasTask(sc *scenarios.Scenario) bool {
	for _, st := range sc.Steps {
		if st.Task != nil {
			return true
		}
	}
	return false
}
