// Command nplab is a NodePort lab: a Kubernetes-shaped network of real Linux
// network namespaces with the Kubernetes control plane and kube-proxy
// emulated on top. See README.md.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/internal/userns"
	"github.com/nplab/nplab/lab/apiserver"
	_ "github.com/nplab/nplab/lab/dataplane" // lab.Start builds real namespaces
)

func main() {
	// Rootless mode (rootless.go): this process was re-executed in a user
	// namespace; finish its mounts before anything else runs, and serve
	// the Kubernetes API on the host's loopback, where the user is.
	if userns.Inside() {
		if err := userns.Setup(); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		apiserver.Listen = userns.ListenHost
	}
	// Under `go run` (or any parent), nplab goes when its parent goes, and
	// removes its lab on the way out (see dieWithParent).
	// A detached lab (`nplab up -d`, labs.go) is meant to run on after the
	// command that started it.
	if os.Getenv(detachedEnv) == "" {
		dieWithParent()
	}
	stop := startProfile() // profile.go
	cmd, err := newRootCmd().ExecuteC()
	stop()
	if err != nil {
		os.Exit(exitCode(cmd, err))
	}
}

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode prints err as kubectl does (with, under a flag error, where
// cmd's help is) and says what status to exit with.
func exitCode(cmd *cobra.Command, err error) int {
	if e, ok := err.(exitError); ok {
		return e.code
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	if fe := (flagError{}); errors.As(err, &fe) && cmd != nil {
		fmt.Fprintln(os.Stderr, seeHelp(cmd))
	}
	if _, ok := err.(usageError); ok {
		return exitInvalid
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "nplab",
		Short:         "A NodePort lab on real network namespaces",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `nplab builds a small Kubernetes-shaped cluster out of Linux network
namespaces and lets you watch, poke and break type: NodePort Services.
With no command, on a terminal, it opens the lesson picker (as "nplab tui"
does); when stdin or stdout is not a terminal it runs the default lab and logs
its events (as "nplab up" does, and with its flags).`,
		Example: upExamples,
		Version: version(),
		Args:    noFileArgs,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(numberFlagError) // every command inherits it
	// Not root: a command that builds a lab runs again in a user namespace
	// (rootless.go), once its flags have been checked.
	root.PersistentPreRunE = reexecRootless
	// Plain "nplab": the lesson picker on a terminal, else the default lab
	// in the foreground (tui.go).
	up := &upOptions{}
	up.addFlags(root)
	root.RunE = func(cmd *cobra.Command, _ []string) error { return runDefault(cmd, up) }
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by each command's file (validate.go, up.go, ...).
var subcommands []func() *cobra.Command
