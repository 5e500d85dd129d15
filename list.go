package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/scenarios"
)

func init() { subcommands = append(subcommands, newListCmd, newShowCmd) }

func newListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the built-in scenarios",
		Long:  `list prints the built-in scenarios, in teaching order: a name (for "nplab run NAME" and "nplab show NAME") and a one-line summary.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSUMMARY")
			for _, s := range scenarios.List() {
				fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Summary)
			}
			return tw.Flush()
		},
	}
}

func newShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Print a built-in scenario's file, to copy and adapt",
		Long: `show prints the file of a built-in scenario exactly as nplab runs it. Every
manifest in a built-in scenario is inline, so the printed file runs on its own:

  nplab show collision > my-lesson.yaml
  nplab run my-lesson.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := scenarios.BuiltinSource(args[0])
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
				return exitError{1}
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
