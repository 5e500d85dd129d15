package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// resumeEnv carries the answer of `nplab up -d`'s question to its
// background process, which has no terminal to ask on: "true" resumes,
// "false" starts afresh.
const resumeEnv = "NPLAB_RESUME"

// chooseResume decides whether `nplab up` resumes the lab stored under its
// name (see lab.Config.Resume): --resume yes (and nothing stored is an
// error), --fresh no (the stored lab is deleted), nothing stored no; else
// it asks on a terminal (y/N), and without one says how to choose instead
// of waiting for an answer that cannot come. It returns the lab's state
// directory. A lab of that name that is running is left alone: runUp
// refuses to start it again.
func (o *upOptions) chooseResume(cmd *cobra.Command) (bool, string, error) {
	dir, err := lab.StateDir(o.name)
	if err != nil {
		return false, "", err
	}
	if _, ok := runningLab(o.name); ok {
		return false, dir, nil
	}
	stored := lab.HasStoredLab(dir)
	switch {
	case o.resume:
		if !stored {
			return false, dir, fmt.Errorf("lab %q has nothing to resume: no stored lab in %s (start it without --resume)", o.name, dir)
		}
		return true, dir, nil
	case o.fresh:
		return false, dir, lab.RemoveStoredLab(dir)
	case !stored:
		return false, dir, nil
	}
	if v := os.Getenv(resumeEnv); v != "" {
		resume, err := strconv.ParseBool(v)
		return resume, dir, err
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(in.Fd()) {
		return false, dir, fmt.Errorf("lab %q was stopped, and its objects are kept in %s. Resume it (the same Services, nodePorts, ClusterIPs and pods) with:\n  nplab up --name %s --resume\nor delete them and start clean with:\n  nplab up --name %s --fresh",
			o.name, dir, o.name, o.name)
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Lab %q was stopped, and its objects are kept in %s.\nResume it (the same Services, nodePorts, ClusterIPs and pods)? [y/N] ", o.name, dir)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a == "y" || a == "yes" {
		return true, dir, nil
	}
	fmt.Fprintf(out, "Starting lab %q afresh; its stored objects are deleted.\n", o.name)
	return false, dir, lab.RemoveStoredLab(dir)
}

// runningLab reports whether a lab of that name runs on this machine, and
// its process: a root lab's state file under /run/nplab, or the record a
// lab keeps in the user's run directory (a rootless lab's only trace: the
// state file of a lab in a user namespace is in that namespace's /run).
func runningLab(name string) (pid int, ok bool) {
	if labs, err := lab.Labs(); err == nil {
		for _, l := range labs {
			if l.Name == name && l.Running {
				return l.PID, true
			}
		}
	}
	if rec, err := readRecord(name); err == nil && alive(rec.PID) { // labs.go
		return rec.PID, true
	}
	return 0, false
}

// changedShape is what a resumed lab is started with: the flags the user
// gave (checked against the stored lab), zero for the others (the stored
// lab's), and how to name its nodes before it is built.
func (o *upOptions) changedShape(cmd *cobra.Command, mode plane.ProxyMode) (int, string, plane.ProxyMode, string) {
	f := cmd.Flags()
	nodes, portRange, phrase := 0, "", "its nodes"
	if f.Changed("nodes") {
		nodes, phrase = o.nodes, nodesPhrase(o.nodes)
	}
	if f.Changed("service-node-port-range") {
		portRange = o.portRange
	}
	if !f.Changed("proxy-mode") {
		mode = ""
	}
	return nodes, portRange, mode, phrase
}

// cleanKilled removes what a killed lab of that name left behind (its
// namespaces, as `nplab clean --name` does), so it can be resumed after a
// crash; a lab with nothing left is not an error.
func cleanKilled(out io.Writer, name string) error {
	labs, err := lab.Labs()
	if err != nil {
		return nil
	}
	for _, l := range labs {
		if l.Name != name || l.Running {
			continue
		}
		fmt.Fprintf(out, "Removing what the killed lab %q left behind (as nplab clean --name %s)...\n", name, name)
		var nf *plane.NotFoundError
		if err := lab.Clean(name); err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("lab %q: removing what the killed lab left: %w", name, err)
		}
		removeLabFiles(name)
	}
	return nil
}
