package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/scenarios"
	"github.com/nplab/nplab/tui"
)

func init() { subcommands = append(subcommands, newTUICmd) }

// lessonEntries are the picker's built-in lessons, before "free lab",
// each on a lab named labName.
func lessonEntries(labName string) []tui.Entry {
	var out []tui.Entry
	for _, name := range scenarios.Lessons {
		if sc, err := scenarios.Builtin(name); err == nil {
			out = append(out, tui.ScenarioEntry(sc, labName, startServed))
		}
	}
	return out
}

// scenarioFile opens `nplab tui FILE`: a scenario file, with its errors
// (file, line, key) before anything is built.
func scenarioFile(path, labName string) (tui.Entry, error) {
	sc, err := scenarios.Load(path)
	if err != nil {
		return tui.Entry{}, err
	}
	return tui.ScenarioEntry(sc, labName, startServed), nil
}

func newTUICmd() *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "tui [NAME|FILE] [-f manifest.yaml...]",
		Short: "Open the terminal UI on a lesson, a scenario file or your manifests",
		Long: `Open the terminal UI: a lab where traffic fans out from every node to the
pods, and every hop explains itself. With NAME, a built-in lesson; with FILE,
a scenario file; with -f, a free lab of your manifests; with nothing, the
lesson picker. Quitting (q, Ctrl-C, SIGTERM, a closed terminal) removes the lab.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			return runTUI(cmd, o, arg)
		},
	}
	o.addFlags(cmd)
	_ = cmd.Flags().MarkHidden("ready-timeout") // the UI shows pods getting ready
	return cmd
}

// runDefault is plain `nplab`: the lesson picker on a terminal, `nplab up`
// (events logged as lines) when stdin or stdout is not one, so pipes and
// CI keep working.
func runDefault(cmd *cobra.Command, o *upOptions) error {
	if term.IsTerminal(os.Stdin.Fd()) && term.IsTerminal(os.Stdout.Fd()) {
		return runTUI(cmd, o, "")
	}
	return runUp(cmd, o)
}

func runTUI(cmd *cobra.Command, o *upOptions, arg string) error {
	if os.Geteuid() != 0 {
		return errors.New("nplab tui creates network namespaces and needs root: run it with sudo")
	}
	mode, err := plane.ParseProxyMode(o.proxyMode)
	if err != nil {
		return fmt.Errorf(`invalid argument %q for "--proxy-mode" flag: must be "random" or "roundrobin"`, o.proxyMode)
	}
	newLab := func(ctx context.Context) (*lab.Lab, error) {
		return startServed(ctx, lab.Config{Name: o.name, Nodes: o.nodes, NodePortRange: o.portRange, ProxyMode: mode})
	}
	entries := append(lessonEntries(o.name), tui.FreeLab(newLab))

	opts := tui.Options{Entries: entries, ProxyMode: mode, AltScreen: true,
		Hint: fmt.Sprintf("kubectl in another terminal: nplab kubectl get svc (or export KUBECONFIG=%s)", kubeconfigPath(o.name)),
		In:   cmd.InOrStdin(), Out: cmd.OutOrStdout()}
	switch {
	case len(o.files) > 0 && arg != "":
		return errors.New("give a lesson or scenario, or manifests with -f, not both")
	case len(o.files) > 0:
		// Read every file first: a missing one costs nothing.
		var files []lab.File
		for _, f := range o.files {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("the path %q does not exist or cannot be read: %w", f, err)
			}
			files = append(files, lab.File{Name: f, Data: b})
		}
		e := tui.ManifestEntry("manifests", strings.Join(o.files, ", "), "your manifests, no steps", newLab, files...)
		opts.Open = &e
	case arg != "":
		e, err := openLesson(arg, entries, o.name)
		if err != nil {
			return err
		}
		opts.Open = &e
	}
	return tui.Run(cmd.Context(), opts)
}

// openLesson is `nplab tui NAME|FILE`: a built-in lesson by name, else a
// scenario file.
func openLesson(arg string, entries []tui.Entry, labName string) (tui.Entry, error) {
	var names []string
	for _, e := range entries {
		if e.Name == arg {
			return e, nil
		}
		names = append(names, e.Name)
	}
	if _, err := os.Stat(arg); err == nil {
		return scenarioFile(arg, labName)
	}
	return tui.Entry{}, fmt.Errorf("no lesson %q and no such file (lessons: %s)", arg, strings.Join(names, ", "))
}
