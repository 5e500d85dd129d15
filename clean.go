package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
)

func init() { subcommands = append(subcommands, newCleanCmd) }

func newCleanCmd() *cobra.Command {
	var name string
	var all, forget bool
	cmd := &cobra.Command{
		Use:   "clean (--name LAB | --all)",
		Short: "Remove what a killed lab left behind (only nplab's own namespaces)",
		Long: `Remove the namespaces and links a lab created, using the state file the lab
keeps under /run/nplab. Nothing that is not recorded there is touched, whatever
its name. A lab run without root leaves no namespaces (the kernel removed them
with its process): for those, clean removes the records a killed one left in
$XDG_RUNTIME_DIR/nplab. A stopped lab's objects, kept for nplab up --resume
(nplab ls lists them), stay unless --forget is given.`,
		Example: `  sudo nplab clean --name demo
  sudo nplab clean --all
  sudo nplab clean --name demo --forget   # and the objects it kept for up --resume
  nplab clean --all          # without root: your rootless labs' records`,
		Args: nameArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (name == "") == !all {
				return errors.New("name one lab with --name LAB, or use --all")
			}
			if !all {
				if err := checkLabName(name); err != nil {
					return err
				}
			}
			err := clean(cmd, name, all)
			if !forget {
				return err
			}
			if nothing := (nothingToClean{}); errors.As(err, &nothing) {
				if nothing.stored == "" {
					return err // nothing kept either
				}
				err = nil
			}
			return errors.Join(err, forgetStored(cmd.OutOrStdout(), cmd.ErrOrStderr(), name, all))
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the lab to remove")
	cmd.Flags().BoolVar(&all, "all", false, "remove every lab this machine has a state file for")
	cmd.Flags().BoolVar(&forget, "forget", false, "also delete the objects a stopped lab kept for nplab up --resume")
	return cmd
}

// clean is nplab clean without --forget.
func clean(cmd *cobra.Command, name string, all bool) error {
	out := cmd.OutOrStdout()
	// Not root: the user's labs ran in user namespaces of their
	// own, and only their records can be left. (Root, in a user
	// namespace too, sees its labs' state as root does.)
	if os.Geteuid() != 0 {
		return cleanRootless(out, cmd.ErrOrStderr(), name, all)
	}
	if all {
		labs, err := lab.CleanAll()
		for _, l := range labs {
			removeLabFiles(l) // labs.go
			fmt.Fprintf(out, "lab %q removed\n", l)
		}
		// A lab that is still running was not left behind: say so
		// and leave it, but do not fail for it.
		var failed []error
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				if errors.Is(e, lab.ErrLabRunning) {
					fmt.Fprintf(cmd.ErrOrStderr(), "skipped: %v\n", e)
				} else {
					failed = append(failed, e)
				}
			}
		} else if err != nil {
			failed = append(failed, err)
		}
		if len(labs) == 0 && err == nil {
			fmt.Fprintln(out, "no labs to remove")
		}
		return errors.Join(failed...)
	}
	labs, err := lab.Labs()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(labs, func(l lab.LabInfo) bool { return l.Name == name }) {
		return notFound(name, "/run/nplab")
	}
	if err := lab.Clean(name); err != nil {
		return err
	}
	removeLabFiles(name) // labs.go
	fmt.Fprintf(out, "lab %q removed\n", name)
	return nil
}

// cleanRootless is nplab clean without root. A rootless lab's namespaces
// live in its user namespace and went with its process; what a killed one
// leaves is its records (kubeconfig, record, up -d's log) in the user's run
// directory. A lab whose process still runs is left alone.
func cleanRootless(out, errOut io.Writer, name string, all bool) error {
	var names []string
	if all {
		paths, _ := filepath.Glob(filepath.Join(runDir(), "*"))
		seen := map[string]bool{}
		for _, p := range paths {
			base := filepath.Base(p)
			for _, ext := range []string{".up.json", ".kubeconfig", ".log"} {
				if n, ok := strings.CutSuffix(base, ext); ok && checkLabName(n) == nil && !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
		sort.Strings(names)
	} else {
		names = []string{name}
	}
	removed := 0
	for _, n := range names {
		if rec, err := readRecord(n); err == nil && alive(rec.PID) {
			if !all {
				return fmt.Errorf("lab %q is still running (process %d): stop it with nplab down --name %s", n, rec.PID, n)
			}
			fmt.Fprintf(errOut, "skipped: lab %q is still running (process %d): stop it with nplab down --name %s\n", n, rec.PID, n)
			continue
		}
		left, _ := filepath.Glob(filepath.Join(runDir(), n+".*"))
		if len(left) == 0 {
			if !all {
				return notFound(n, runDir())
			}
			continue
		}
		removeLabFiles(n) // labs.go
		removed++
		fmt.Fprintf(out, "lab %q removed (its namespaces went with its process; its records are gone now)\n", n)
	}
	if all && removed == 0 {
		fmt.Fprintln(out, "no labs to remove")
	}
	return nil
}

// nothingToClean is clean's error for a lab that left nothing behind;
// for a stopped lab whose objects are kept (nplab ls lists it), it says
// where they are and how to forget them.
type nothingToClean struct{ name, dir, stored string }

func (e nothingToClean) Error() string {
	if e.stored != "" {
		return fmt.Sprintf("lab %q left nothing to clean: it is stopped, with its objects kept in %s for nplab up --name %s --resume (nplab clean --name %s --forget deletes them)", e.name, e.stored, e.name, e.name)
	}
	return fmt.Sprintf("lab %q not found (nplab has no record of it under %s)", e.name, e.dir)
}

func notFound(name, dir string) error {
	e := nothingToClean{name: name, dir: dir}
	if d, err := lab.StateDir(name); err == nil && lab.HasStoredLab(d) {
		e.stored = d
	}
	return e
}

// forgetStored is clean --forget: it deletes the objects stopped labs
// kept for nplab up --resume (one, or with all every one), never a
// running lab's.
func forgetStored(out, errOut io.Writer, name string, all bool) error {
	names := []string{name}
	if all {
		var err error
		if names, err = lab.StoredLabs(); err != nil {
			return err
		}
	}
	var failed []error
	for _, n := range names {
		d, err := lab.StateDir(n)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		if !lab.HasStoredLab(d) {
			if !all {
				fmt.Fprintf(out, "lab %q kept no objects\n", n)
			}
			continue
		}
		if rec, err := readRecord(n); err == nil && alive(rec.PID) {
			fmt.Fprintf(errOut, "skipped: lab %q is running (process %d): its objects are in use\n", n, rec.PID)
			continue
		}
		if err := lab.RemoveStoredLab(d); err != nil {
			failed = append(failed, fmt.Errorf("lab %q: deleting its objects in %s: %w", n, d, err))
			continue
		}
		fmt.Fprintf(out, "lab %q: its kept objects (%s) deleted\n", n, d)
	}
	return errors.Join(failed...)
}
