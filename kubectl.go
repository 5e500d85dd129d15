package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/internal/kubectlcmd"
	"github.com/nplab/nplab/lab/apiserver"
)

func init() { subcommands = append(subcommands, newKubectlCmd) }

func newKubectlCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl [ARGS...]",
		Short: "kubectl itself, against a running lab",
		Long: `Run kubectl (k8s.io/kubectl, built in) against a running lab. Its
kubeconfig is the lab named by NPLAB_LAB, else $KUBECONFIG when it is a lab's
(as nplab up prints it), else the only running lab's
(/run/nplab/<lab>.kubeconfig; without root,
$XDG_RUNTIME_DIR/nplab/<lab>.kubeconfig); --kubeconfig wins over all. A
$KUBECONFIG of another cluster is not used: nplab kubectl is for labs.
Everything it prints, errors included, is kubectl's own.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") && len(args) == 1 {
				args = []string{"--help"}
			}
			cfg := ""
			if !hasKubeconfigFlag(args) {
				var err error
				// kubectl's help, completion and client version need no
				// lab: they work with none running, or several.
				if cfg, err = labKubeconfig(); err != nil && !needsNoServer(args) {
					return err
				}
			}
			code := kubectlcmd.Run(kubectlcmd.Options{Args: args, Kubeconfig: cfg,
				In: cmd.InOrStdin(), Out: cmd.OutOrStdout(), ErrOut: cmd.ErrOrStderr()})
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
}

func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}

// needsNoServer reports whether kubectl args only print something of
// kubectl's own: no arguments or help (kubectl's usage), -h/--help on any
// command, completion, options, version --client.
func needsNoServer(args []string) bool {
	if len(args) == 0 {
		return true
	}
	switch args[0] {
	case "help", "completion", "options":
		return true
	}
	client := false
	for _, a := range args {
		if a == "--" {
			break
		}
		switch a {
		case "-h", "--help":
			return true
		case "--client", "--client=true":
			client = true
		}
	}
	return client && args[0] == "version"
}

// labKubeconfig is the kubeconfig `nplab kubectl` uses: NPLAB_LAB's lab,
// else $KUBECONFIG when it is a lab's kubeconfig, else the only running
// lab's.
func labKubeconfig() (string, error) {
	if name := os.Getenv("NPLAB_LAB"); name != "" {
		p := apiserver.KubeconfigPath(runDir(), name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("NPLAB_LAB=%s: lab %q is not running (no %s)", name, name, p)
		}
		return p, nil
	}
	// $KUBECONFIG counts when it is a lab's (`export KUBECONFIG=...` as
	// nplab up prints it picks one of several labs); a student's own
	// cluster in it must not be what `nplab kubectl` changes.
	if env := os.Getenv("KUBECONFIG"); env != "" && filepath.Dir(filepath.Clean(env)) == filepath.Clean(runDir()) &&
		strings.HasSuffix(env, ".kubeconfig") {
		if _, err := os.Stat(env); err != nil {
			name := strings.TrimSuffix(filepath.Base(env), ".kubeconfig")
			return "", fmt.Errorf("KUBECONFIG=%s: lab %q is not running (nplab ls lists the running labs)", env, name)
		}
		return env, nil
	}
	labs, err := runningLabs()
	if err != nil {
		return "", err
	}
	switch len(labs) {
	case 0:
		return "", errors.New("no lab is running: start one with `nplab up -d` (or name a kubeconfig with --kubeconfig)")
	case 1:
		return labs[0].Kubeconfig, nil
	}
	var names []string
	for _, l := range labs {
		names = append(names, l.Name)
	}
	return "", fmt.Errorf("%d labs are running (%s): choose one with NPLAB_LAB=<name> or --kubeconfig", len(labs), strings.Join(names, ", "))
}
