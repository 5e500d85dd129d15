package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
)

func init() { subcommands = append(subcommands, newCheckCmd) }

func newCheckCmd() *cobra.Command {
	o := &scenarioOptions{}
	var files []string
	cmd := &cobra.Command{
		Use:   "check SCENARIO -f FILE [-f FILE...]",
		Short: "Grade a student: run a scenario with the student's manifests in place of its tasks' solutions",
		Long: `check runs a scenario as "nplab run" does, but each task step applies the
student's manifests instead of the scenario's solution: a file goes to the
first task that names one of its objects in "supplies" (a file that names
none goes to the first task). Each check is reported with what was expected
and observed, and the scenario's hint where it fails.

A student file that does not parse is a failed check (exit 1) with kubectl's
parse error as what was observed. Exit statuses are those of "nplab run".`,
		Example: `  sudo nplab check collision -f backend-service.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			student := make([]lab.File, 0, len(files))
			for _, name := range files {
				b, err := os.ReadFile(name)
				if errors.Is(err, fs.ErrNotExist) {
					fmt.Fprintf(cmd.ErrOrStderr(), "error: the path %q does not exist\n", name)
					return exitError{exitFailed}
				}
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
					return exitError{exitFailed}
				}
				student = append(student, lab.File{Name: name, Data: b})
			}
			return runScenario(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o, student)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "the student's manifest (repeatable)")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}
