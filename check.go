package main

import (
	"github.com/spf13/cobra"
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
parse error as what was observed. Exit statuses are those of "nplab run";
a scenario with no task step is exit 2 (there is nothing to grade).`,
		Example: `  nplab check collision -f backend-service.yaml`,
		Args:    scenarioArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			student, err := readManifests(files, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return runScenario(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o, student)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "the student's manifests: "+filenameUsage)
	_ = cmd.MarkFlagRequired("filename")
	usageStatus(cmd)
	return cmd
}
