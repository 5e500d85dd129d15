package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/internal/userns"
)

// Rootless mode. Started by a user other than root (on Linux), a command
// that builds a lab — plain nplab, up, tui, run, check, bench — does not fail for want of
// root: it runs again, with the same arguments, in a new user namespace
// where the user is root, with private mount and network namespaces
// (package internal/userns), and builds its lab there exactly as root
// does. The kernel frees the lab's namespaces when that process ends.
// Records the user's shell needs (kubeconfig, the lab's record) are in
// userns.RunDir ($XDG_RUNTIME_DIR/nplab). `nplab exec` enters such a lab.

// labCommands are the commands that build a lab.
var labCommands = map[string]bool{"up": true, "tui": true, "run": true, "bench": true, "check": true}

// buildsLab reports whether cmd will build a lab in this process.
func buildsLab(cmd *cobra.Command) bool {
	if cmd.Parent() != nil && !labCommands[cmd.Name()] {
		return false
	}
	if cmd.Parent() != nil && cmd.Parent().Parent() != nil {
		return false // a subcommand of a subcommand (none builds a lab)
	}
	// `nplab up -d` starts the lab in a child process, which comes here
	// again without -d.
	if f := cmd.Flags().Lookup("detach"); f != nil && f.Value.String() == "true" && os.Getenv(detachedEnv) == "" {
		return false
	}
	return true
}

// reexecRootless is the root command's PersistentPreRunE: for a command
// that builds a lab, when not root, it runs this program again in a user
// namespace and ends with that run's exit status.
//
// Where the system allows no user namespace, `nplab run` and `nplab check`
// go on in this process instead of failing: a scenario that needs no data
// plane (the bands lesson) runs on the control plane alone, and one that
// does ends with exit status 3 (this machine cannot run it) and this
// reason, in its report as any other missing need.
func reexecRootless(cmd *cobra.Command, _ []string) error {
	if !buildsLab(cmd) || !userns.Needed() {
		return nil
	}
	code, err := userns.Run(userns.Options{Args: os.Args[1:]})
	if err != nil {
		if scenarioCommands[cmd.Name()] && cmd.Parent() != nil && cmd.Parent().Parent() == nil {
			noUserNamespace = err
			return nil
		}
		return err
	}
	return exitError{code}
}

// scenarioCommands report a machine that cannot run a scenario as their
// exit status 3, so they run on without a user namespace (see
// reexecRootless).
var scenarioCommands = map[string]bool{"run": true, "check": true}

// noUserNamespace is why `nplab run` or `nplab check`, started without
// root, could not run again in a user namespace (nil: it did not need to,
// or it did).
var noUserNamespace error
