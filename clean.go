package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
)

func init() { subcommands = append(subcommands, newCleanCmd) }

func newCleanCmd() *cobra.Command {
	var name string
	var all bool
	cmd := &cobra.Command{
		Use:   "clean (--name LAB | --all)",
		Short: "Remove what a killed lab left behind (only nplab's own namespaces)",
		Long: `Remove the namespaces and links a lab created, using the state file the lab
keeps under /run/nplab. Nothing that is not recorded there is touched, whatever
its name.`,
		Example: `  sudo nplab clean --name demo
  sudo nplab clean --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (name == "") == !all {
				return errors.New("name one lab with --name LAB, or use --all")
			}
			if !all {
				if err := checkLabName(name); err != nil {
					return err
				}
			}
			if os.Geteuid() != 0 {
				return errors.New("nplab clean removes network namespaces and needs root: run it with sudo")
			}
			out := cmd.OutOrStdout()
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
				return fmt.Errorf("lab %q not found (nplab has no record of it under /run/nplab)", name)
			}
			if err := lab.Clean(name); err != nil {
				return err
			}
			removeLabFiles(name) // labs.go
			fmt.Fprintf(out, "lab %q removed\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the lab to remove")
	cmd.Flags().BoolVar(&all, "all", false, "remove every lab this machine has a state file for")
	return cmd
}
