package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
)

// The checks every command makes of its flags before it prints or builds
// anything. Their messages are cobra's: `invalid argument "0" for "--nodes"
// flag: ...`.

// checkNodes checks --nodes: 1 to plane.MaxNodes.
func checkNodes(n int) error {
	if n < 1 || n > plane.MaxNodes {
		return flagError{fmt.Errorf(`invalid argument "%d" for "--nodes" flag: a lab has 1 to %d nodes`, n, plane.MaxNodes)}
	}
	return nil
}

// maxLabName and labNameRE are the data plane's rule for lab names
// (netsim.ValidateLabName): namespaces are nplab-<lab>-<host>, and
// interface names derived from it must fit in 15 bytes.
const maxLabName = 12

var labNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// checkLabName checks --name, once, with one message.
func checkLabName(name string) error {
	const rule = "a lab name is 1 to 12 lower-case letters, digits and '-', starting and ending with a letter or digit"
	switch {
	case name == "":
		return flagError{fmt.Errorf(`invalid argument "" for "--name" flag: the lab name must not be empty (%s)`, rule)}
	case len(name) > maxLabName || !labNameRE.MatchString(name):
		return flagError{fmt.Errorf(`invalid argument %q for "--name" flag: %s`, name, rule)}
	}
	return nil
}

// nodesPhrase is "1 node" or "3 nodes".
func nodesPhrase(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

// filenameUsage is the help of -f on every command that takes manifests.
const filenameUsage = `manifest to apply, as kubectl's -f: a file, a directory (its .yaml, .yml and .json files in name order) or - for stdin; repeatable, or comma-separated`

// readManifests reads what -f names, as kubectl does, before anything is
// sent: files in the order given, a directory's .yaml, .yml and .json files
// in name order (not its subdirectories), "-" for stdin (once). A path that
// does not exist is kubectl's `the path "x" does not exist`.
func readManifests(paths []string, stdin io.Reader) ([]lab.File, error) {
	var files []lab.File
	readStdin := false
	for _, p := range paths {
		if p == "-" {
			if readStdin {
				continue
			}
			readStdin = true
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			files = append(files, lab.File{Name: "-", Data: b})
			continue
		}
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the path %q does not exist", p)
		}
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files = append(files, lab.File{Name: p, Data: b})
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					names = append(names, e.Name())
				}
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("error reading %s: recognized file extensions are [.json .yaml .yml]", p)
		}
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(p, n))
			if err != nil {
				return nil, err
			}
			files = append(files, lab.File{Name: filepath.Join(p, n), Data: b})
		}
	}
	return files, nil
}

// noFileArgs is cobra.NoArgs, with a hint when the argument looks like a
// manifest: `did you mean -f nosuch.yaml?`.
func noFileArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unexpectedArg(cmd, args[0])
}

// usageStatus makes cmd's usage errors (a wrong flag or flag value, a
// missing or extra argument, a required flag not given) exit with
// exitInvalid, after the same message. run and check keep status 1 for a
// failed check: a grading script must not take a typo in its own command
// line for a student's failure. Required flags are checked with the
// arguments, before anything else runs.
func usageStatus(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{numberFlagError(c, err)}
	})
	args := cmd.Args
	cmd.Args = func(c *cobra.Command, a []string) error {
		if args != nil {
			if err := args(c, a); err != nil {
				return usageError{err}
			}
		}
		var missing []string
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if _, req := f.Annotations[cobra.BashCompOneRequiredFlag]; req && !f.Changed {
				missing = append(missing, f.Name)
			}
		})
		if len(missing) > 0 {
			return usageError{flagError{fmt.Errorf(`required flag(s) "%s" not set`, strings.Join(missing, `", "`))}}
		}
		return nil
	}
}

// usageError is a command-line mistake that exits with exitInvalid.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// scenarioArg is cobra.ExactArgs(1) for run and check, with the same hint
// for a second argument that looks like a manifest.
func scenarioArg(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return fmt.Errorf("%q needs a scenario: a built-in name (see \"nplab list\") or a scenario file", cmd.CommandPath())
	case len(args) > 1:
		return unexpectedArg(cmd, args[1])
	}
	return nil
}

func unexpectedArg(cmd *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q for %q", arg, cmd.CommandPath())
	if looksLikeFile(arg) && cmd.Flags().Lookup("filename") != nil {
		return fmt.Errorf("%s; did you mean -f %s?", msg, arg)
	}
	// A typo of a command ("nplab upp"), suggested as cobra does.
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		return fmt.Errorf("%s\n\nDid you mean this?\n\t%s\n\nRun '%s --help' for usage.", msg, strings.Join(s, "\n\t"), cmd.CommandPath())
	}
	return errors.New(msg)
}

func looksLikeFile(arg string) bool {
	switch strings.ToLower(filepath.Ext(arg)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	if strings.ContainsRune(arg, filepath.Separator) || arg == "-" {
		return true
	}
	_, err := os.Stat(arg)
	return err == nil
}

// nameArgs is cobra.NoArgs for commands that take a lab by --name, with a
// hint for the name given bare ("nplab clean demo").
func nameArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return fmt.Errorf("unknown command %q for %q; did you mean --name %s?", args[0], cmd.CommandPath(), args[0])
}

// numberFlagError words a flag that wants a number and got something else
// as a student reads it, not as strconv does ("parsing "1x": invalid
// syntax").
func numberFlagError(c *cobra.Command, err error) error {
	msg := err.Error()
	if i := strings.Index(msg, ": strconv.Parse"); i >= 0 {
		msg = msg[:i] + ": not a whole number"
	}
	return flagError{errors.New(msg)}
}

// flagError is a flag value (or a required flag missing) that a command
// refused: main prints it with kubectl's pointer to the command's --help
// under it.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

// seeHelp is the line kubectl puts under a flag error.
func seeHelp(c *cobra.Command) string {
	return fmt.Sprintf("See '%s --help' for usage.", c.CommandPath())
}
