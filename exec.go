package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/internal/userns"
	"github.com/nplab/nplab/lab"
)

func init() { subcommands = append(subcommands, newExecCmd) }

func newExecCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "exec [--name LAB] HOST -- COMMAND [ARGS...]",
		Short: "Run a command in a lab host (a node, a pod or the client)",
		Long: `Run a command in the network namespace of a host of a running lab: a node
(node-1), a pod (by its name) or the outside client (client), as
"ip netns exec nplab-<lab>-<host>" does, with or without root. Its input,
output, terminal and exit status are the command's own. The lab is --name,
else the one NPLAB_LAB names (as for nplab kubectl), else the only running
lab (nplab ls lists them).`,
		Example: `  nplab exec client -- curl -sS http://172.18.0.2:30080/hostname
  nplab exec node-1 -- ss -ltnu
  nplab exec --name mine client -- bash       # a shell in the client`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0:
				return errors.New("name a host and a command: nplab exec HOST -- COMMAND [ARGS...]")
			case dash == 0:
				return errors.New("name the host before --: nplab exec HOST -- COMMAND [ARGS...]")
			case dash > 1 || (dash < 0 && len(args) > 1):
				return fmt.Errorf("one host, then -- and the command: nplab exec %s -- %s", args[0], strings.Join(args[1:], " "))
			case len(args) < 2:
				return fmt.Errorf("no command to run in %s: nplab exec %s -- COMMAND [ARGS...]", args[0], args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			host, argv := args[0], args[1:]
			if name == "" {
				name = os.Getenv("NPLAB_LAB") // as nplab kubectl picks its lab
			}
			if name != "" {
				if err := checkLabName(name); err != nil {
					return err
				}
			}
			rec, err := execLab(name)
			if err != nil {
				return err
			}
			if userns.Inside() {
				// In the lab's user and mount namespaces already
				// (entered by the rootless path below): its named
				// network namespaces are here.
				return lab.Exec(rec.Name, host, argv)
			}
			if rec.Rootless {
				return userns.Enter(rec.PID, append([]string{"exec", "--name", rec.Name, host, "--"}, argv...))
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("lab %q runs as root: enter its hosts with sudo nplab exec", rec.Name)
			}
			return lab.Exec(rec.Name, host, argv)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the lab (default: $NPLAB_LAB, else the only running lab)")
	return cmd
}

// execLab finds the lab `nplab exec` runs in, as `nplab kubectl` does:
// the one named, else the only running one. As root, a lab without a
// record (one `nplab run` started) is found by its state.
func execLab(name string) (upRecord, error) {
	labs, err := runningLabs()
	if err != nil {
		return upRecord{}, err
	}
	if os.Geteuid() == 0 {
		if infos, err := lab.Labs(); err == nil {
			for _, l := range infos {
				if l.Running && !hasLab(labs, l.Name) {
					labs = append(labs, upRecord{Name: l.Name, PID: l.PID})
				}
			}
		}
	}
	if name != "" {
		for _, l := range labs {
			if l.Name == name {
				return l, nil
			}
		}
		return upRecord{}, fmt.Errorf("lab %q is not running (nplab ls lists the running labs)", name)
	}
	switch len(labs) {
	case 0:
		return upRecord{}, errors.New("no lab is running: start one with `nplab up` (in another terminal, or `nplab up -d`)")
	case 1:
		return labs[0], nil
	}
	var names []string
	for _, l := range labs {
		names = append(names, l.Name)
	}
	return upRecord{}, fmt.Errorf("%d labs are running (%s): choose one with --name LAB or NPLAB_LAB=LAB", len(labs), strings.Join(names, ", "))
}

func hasLab(labs []upRecord, name string) bool {
	for _, l := range labs {
		if l.Name == name {
			return true
		}
	}
	return false
}
