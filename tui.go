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
	"github.com/nplab/nplab/scenarios"
	"github.com/nplab/nplab/tui"
)

func init() { subcommands = append(subcommands, newTUICmd) }

// lessonEntries are the picker's built-in lessons, before "free lab",
// each on a lab named labName.
func lessonEntries(labName string, start func(context.Context, lab.Config) (*lab.Lab, error)) []tui.Entry {
	var out []tui.Entry
	for _, name := range scenarios.Lessons {
		if sc, err := scenarios.Builtin(name); err == nil {
			out = append(out, tui.ScenarioEntry(sc, labName, start))
		}
	}
	return out
}

// scenarioFile opens `nplab tui FILE`: a scenario file, with its errors
// (file, line, key) before anything is built.
func scenarioFile(path, labName string, start func(context.Context, lab.Config) (*lab.Lab, error)) (tui.Entry, error) {
	sc, err := scenarios.Load(path)
	if err != nil {
		return tui.Entry{}, err
	}
	return tui.ScenarioEntry(sc, labName, start), nil
}

func newTUICmd() *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "tui [NAME|FILE] [-f manifest.yaml...]",
		Short: "Open the terminal UI on a lesson, a scenario file or your manifests",
		Long: `Open the terminal UI: a lab where traffic fans out from every node to the
pods, and every hop explains itself. With NAME, a built-in lesson; with FILE,
a scenario file; with -f, a free lab of your manifests; with --nodes,
--service-node-port-range or --proxy-mode alone, a free lab of that shape;
with nothing, the lesson picker. Quitting (q, Ctrl-C, SIGTERM, a closed terminal) removes the lab.`,
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
	// The UI's lab lives as long as the UI and is not stored: these are
	// nplab up's (runTUI says so if they are given).
	for _, f := range upOnlyFlags {
		_ = cmd.Flags().MarkHidden(f)
	}
	return cmd
}

// upOnlyFlags are flags of nplab up that the terminal UI has no use for.
var upOnlyFlags = []string{"detach", "resume", "fresh"}

// labShapeFlags shape a free lab; a lesson or scenario sets its own.
// freeLab is the free lab's name in the picker (nplab tui free).
var labShapeFlags = []string{"nodes", "service-node-port-range", "proxy-mode"}

const freeLab = "free"

// runDefault is plain `nplab`: the lesson picker on a terminal, `nplab up`
// (events logged as lines) when stdin or stdout is not one, so pipes and
// CI keep working.
func runDefault(cmd *cobra.Command, o *upOptions) error {
	// -d, --resume and --fresh ask for nplab up's lab, on a terminal too.
	if o.detach || o.resume || o.fresh {
		return runUp(cmd, o)
	}
	if isTerminal(os.Stdin) && isTerminal(os.Stdout) {
		return runTUI(cmd, o, "")
	}
	return runUp(cmd, o)
}

func runTUI(cmd *cobra.Command, o *upOptions, arg string) error {
	for _, name := range upOnlyFlags {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return fmt.Errorf("--%s is a flag of nplab up: the terminal UI's lab runs while the UI runs and is removed when it quits (nplab up --%s ... for that)", name, name)
		}
	}
	if arg != "" && arg != freeLab {
		// A lesson or scenario builds the lab it describes; these would
		// be ignored without a word.
		for _, name := range labShapeFlags {
			if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
				return fmt.Errorf("--%s is for a free lab (nplab tui free --%s %s, or with -f your manifests): %q builds the lab it describes, its nodes, NodePort range and proxy mode included", name, name, f.Value, arg)
			}
		}
	}
	// The flags, in nplab up's words, before the screen is taken.
	mode, err := o.check()
	if err != nil {
		return err
	}
	if len(o.files) > 0 && arg != "" {
		return errors.New("give a lesson or scenario, or manifests with -f, not both")
	}
	for _, f := range o.files {
		if f == "-" {
			return errors.New(`-f -: the terminal UI reads its keys from stdin, so manifests cannot come from there; give files or a directory (or use nplab up -f -)`)
		}
	}
	// Read every manifest first (files and directories, as nplab up): a
	// missing one costs nothing.
	files, err := readManifests(o.files, nil)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("nplab tui creates network namespaces and needs root: run it with sudo")
	}
	start := startServed
	if o.seed != 0 {
		start = func(ctx context.Context, cfg lab.Config) (*lab.Lab, error) {
			if cfg.Rand == nil {
				cfg.Rand = seededRand(o.seed)
			}
			return startServed(ctx, cfg)
		}
	}
	newLab := func(ctx context.Context) (*lab.Lab, error) {
		return start(ctx, lab.Config{Name: o.name, Nodes: o.nodes, NodePortRange: o.portRange, ProxyMode: mode})
	}
	entries := append(lessonEntries(o.name, start), tui.FreeLab(newLab))

	opts := tui.Options{Entries: entries, ProxyMode: mode, AltScreen: true,
		HintFor: kubectlHint,
		In:      cmd.InOrStdin(), Out: cmd.OutOrStdout()}
	shaped := ""
	for _, name := range labShapeFlags {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			shaped = name
		}
	}
	switch {
	case len(o.files) > 0:
		e := tui.ManifestEntry("manifests", strings.Join(o.files, ", "), "your manifests, no steps", newLab, files...)
		opts.Open = &e
	case arg != "":
		e, err := openLesson(arg, entries, o.name, start)
		if err != nil {
			return err
		}
		opts.Open = &e
	case shaped != "":
		// --nodes and the like shape a free lab; the lessons build their
		// own, so the picker would offer them only to ignore the flag.
		e := entries[len(entries)-1]
		opts.Open = &e
	}
	if !isTerminal(cmd.InOrStdin()) || !isTerminal(cmd.OutOrStdout()) {
		return errors.New("nplab tui needs a terminal for its input and output (nplab up runs a lab without one and logs its events)")
	}
	err = tui.Run(cmd.Context(), opts)
	waitServed() // Run closed the labs; their endpoints go before we exit
	return err
}

// isTerminal reports whether f is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(file.Fd())
}

// openLesson is `nplab tui NAME|FILE`: a built-in lesson by name, else a
// scenario file.
func openLesson(arg string, entries []tui.Entry, labName string, start func(context.Context, lab.Config) (*lab.Lab, error)) (tui.Entry, error) {
	var names []string
	for _, e := range entries {
		if e.Name == arg {
			return e, nil
		}
		names = append(names, e.Name)
	}
	if _, err := os.Stat(arg); err == nil {
		return scenarioFile(arg, labName, start)
	}
	return tui.Entry{}, fmt.Errorf("no lesson %q and no such file (lessons: %s)", arg, strings.Join(names, ", "))
}
